//! #25 on Redis: a quota applied at run time travels with the next script call, and the state
//! a key already has in Redis carries over by the scripts' arithmetic: a spent key stays spent
//! under a lowered quota, a raised one takes effect at once, a change of period neither frees
//! room nor stops the refills. On a real redis-server, at explicit instants (`decide_at`), and
//! through a limiter's handle on the server's clock.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use support::Redis;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::reconfigure::Reconfigure;
use weir_rate_limit::{
    Ask, FixedWindow, Gcra, Quota, RateLimitLayer, RateLimitSettings, SlidingWindow, Tier,
    TokenBucket,
};
use weir_redis::{FailurePolicy, RedisAlgorithm, RedisStore};

/// A Unix time every period used here divides (a whole day, hour and minute).
const BASE: Duration = Duration::from_secs(1_700_006_400);
const S: Duration = Duration::from_secs(1);

fn store<A: RedisAlgorithm + Default>(redis: &Redis, prefix: &str) -> RedisStore<A> {
    RedisStore::builder(redis.url())
        .algorithm(A::default())
        .prefix(prefix)
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid config")
}

async fn admits<A: RedisAlgorithm>(store: &RedisStore<A>, quota: &Quota, at: Duration) -> bool {
    let tier = Tier::new("default", [quota.clone()]);
    let ask = Ask {
        cost: 1,
        max_wait: Duration::ZERO,
    };
    store
        .decide_at(Some(&9u32), &tier, ask, BASE + at)
        .await
        .expect("redis decides")
        .is_admitted()
}

/// Spends `n` at `at`; all admitted.
async fn spend<A: RedisAlgorithm>(store: &RedisStore<A>, quota: &Quota, n: u32, at: Duration) {
    for i in 0..n {
        assert!(admits(store, quota, at).await, "unit {i} of {n}");
    }
}

/// GCRA: a key that spent its day under 100/day is still refused under 50/day (a reset would
/// admit 50 more), and under 200/day it is admitted after one new emission interval (432 s,
/// where the old quota needed 864 s).
#[tokio::test]
async fn gcra_state_in_redis_carries_over() {
    let redis = Redis::start().await;
    let store = store::<Gcra>(&redis, "g:");
    let day = Quota::per_day(100);
    spend(&store, &day, 100, Duration::ZERO).await;
    assert!(!admits(&store, &day, S).await);
    assert!(
        !admits(&store, &Quota::per_day(50), 60 * S).await,
        "lowered: the spent key was reset"
    );
    let raised = Quota::per_day(200);
    assert!(!admits(&store, &raised, 431 * S).await);
    assert!(
        admits(&store, &raised, 432 * S).await,
        "raised: one new emission interval"
    );
    // A raised burst is room at once: 100 more than the spent day.
    let wide = Quota::per_day(200).burst(300);
    let mut at_once = 0;
    while admits(&store, &wide, 432 * S).await {
        at_once += 1;
    }
    assert_eq!(at_once, 100);
}

/// Token bucket: 10/s spent, then 10/min. The tokens carry (none left), refills count the new
/// minutes (the old state's tick counted seconds: read as minutes it would never refill), and
/// the next minute's refill comes on the minute.
#[tokio::test]
async fn token_bucket_state_in_redis_carries_over_a_new_period() {
    let redis = Redis::start().await;
    let store = store::<TokenBucket>(&redis, "t:");
    let second = Quota::per_second(10);
    spend(&store, &second, 10, Duration::ZERO).await;
    let minute = Quota::per_minute(10);
    assert!(
        !admits(&store, &minute, 1_500 * Duration::from_millis(1)).await,
        "no tokens made by the change"
    );
    assert!(!admits(&store, &minute, 59 * S).await);
    spend(&store, &minute, 10, 60 * S).await;
    assert!(!admits(&store, &minute, 61 * S).await);
}

/// Window counters: 100 spent in a minute, then 50 an hour: the minute's count stays counted in
/// the hour that holds it (a reset would admit 50 more), and the next hour starts afresh.
#[tokio::test]
async fn window_counts_in_redis_carry_over_a_new_period() {
    async fn check<A: RedisAlgorithm + Default>(redis: &Redis, prefix: &str) {
        let store = store::<A>(redis, prefix);
        let minute = Quota::per_minute(100);
        spend(&store, &minute, 100, 10 * S).await;
        let hour = Quota::per_hour(50);
        assert!(
            !admits(&store, &hour, 30 * S).await,
            "{prefix} the minute's count was dropped"
        );
        assert!(!admits(&store, &hour, 3_000 * S).await);
        assert!(
            admits(&store, &hour, 7_300 * S).await,
            "{prefix} a later hour"
        );
    }
    let redis = Redis::start().await;
    check::<FixedWindow>(&redis, "f:").await;
    check::<SlidingWindow>(&redis, "s:").await;
}

/// Through the limiter: `apply` on the handle of a limiter built on the Redis store changes
/// what the next call sends, and the key's state in Redis carries over (server clock).
#[tokio::test]
async fn apply_on_the_handle_changes_the_next_script_call() {
    let redis = Redis::start().await;
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_day(3))
        .key(|n: &u32| Some(*n))
        .build_with_store(store::<Gcra>(&redis, "h:"))
        .expect("valid");
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }));
    let mut admitted = 0;
    for _ in 0..4 {
        admitted += usize::from(svc.ready().await.expect("ready").call(1).await.is_ok());
    }
    assert_eq!(admitted, 3);
    // A raised burst: room at once for the same key, on the state Redis holds.
    handle
        .apply(RateLimitSettings::new().quota(Quota::per_day(3).burst(5)))
        .expect("valid");
    let mut more = 0;
    for _ in 0..4 {
        more += usize::from(svc.ready().await.expect("ready").call(1).await.is_ok());
    }
    assert_eq!(more, 2, "the 2 units the raised burst adds, not a fresh 5");
    assert_eq!(handle.settings().quotas(), [Quota::per_day(3).burst(5)]);
}
