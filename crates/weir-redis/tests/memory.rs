//! #15.15: a client's key never sizes Redis memory. On a real redis-server started by the
//! harness: a 64 KiB API key costs Redis what a 5-byte one does.

mod support;

use std::time::Duration;

use support::Redis;
use tokio::time::Instant;
use weir_rate_limit::{Ask, Quota, Store, Tier};
use weir_redis::{FailurePolicy, RedisStore};

const ASK: Ask = Ask {
    cost: 1,
    max_wait: Duration::ZERO,
};

/// `MEMORY USAGE` of every weir key, with the key names.
async fn usage(redis: &Redis) -> Vec<(String, u64)> {
    let mut conn = redis.connection().await;
    let mut all = Vec::new();
    for key in redis.scan("weir:*").await {
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        all.push((key, bytes));
    }
    all
}

/// #15.15: the Redis key of a 64 KiB client key has the same fixed-size name as any other (a
/// digest in the hash tag), so 267 such requests no longer pin megabytes; two long keys that
/// differ only in their last byte still get their own limits.
#[tokio::test]
async fn a_long_client_key_costs_redis_what_a_short_one_does() {
    let redis = Redis::start().await;
    let store = RedisStore::builder(redis.url())
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("valid config");
    let tier = Tier::new("default", [Quota::per_day(3), Quota::per_minute(2)]);
    let long_a = "a".repeat(65_536);
    let mut long_b = long_a.clone();
    long_b.pop();
    long_b.push('b');
    let short = "alice".to_owned();
    for key in [&long_a, &long_b, &short] {
        let mut admitted = 0;
        for _ in 0..3 {
            let d = store
                .decide(Some(key), &tier, ASK, Instant::now())
                .await
                .expect("a decision");
            admitted += usize::from(d.is_admitted());
        }
        // Each key has its own state: 2 of the per-minute quota.
        assert_eq!(admitted, 2, "key of {} bytes", key.len());
    }
    let keys = usage(&redis).await;
    // Two quotas for each of the three client keys.
    assert_eq!(keys.len(), 6, "{keys:?}");
    let short_name = String::from_utf8(store.key_name(Some(&short), &tier, 0)).expect("utf-8");
    let short_bytes = keys
        .iter()
        .find(|(k, _)| *k == short_name)
        .map(|(_, b)| *b)
        .expect("the short key's state");
    for (name, bytes) in &keys {
        // Every name is the prefix, a 32-digit digest in the hash tag, the tier and the quota.
        assert!(name.len() < 100, "{name}");
        assert!(!name.contains("aaaa"), "the client's key is not in {name}");
        // The same memory as the short key's (the quota suffix may differ by a few bytes).
        assert!(
            *bytes <= short_bytes + 16,
            "{name}: {bytes} B vs {short_bytes} B"
        );
    }
}
