//! A slow or hung server behind a proxy (on real redis-servers started by the harness): the
//! timeout is the longest a decision waits, in lease mode too (#28.2), and a connection that
//! hangs is rebuilt (#28.1, one server).
//!
//! Real clock: a real server and a real socket cannot run on paused time.

mod support;

use std::time::Duration;

use support::{Redis, SlowProxy};
use tokio::time::Instant;
use weir_rate_limit::{Ask, Quota, Store, Tier};
use weir_redis::{FailurePolicy, RedisStore};

const ASK: Ask = Ask {
    cost: 1,
    max_wait: Duration::ZERO,
};

/// #28.2: a lease decision whose batch Redis refuses is followed by a single request; the two
/// share one deadline. Each reply takes 250 ms against a 400 ms timeout: the batch is refused
/// at 250 ms, and the single request, which would answer at 500 ms, is cut at 400 ms, where
/// the failure policy decides. (With a timeout per call the decision waited 500 ms and
/// came from Redis.)
#[tokio::test]
async fn a_refused_batch_and_its_single_request_share_one_deadline() {
    let redis = Redis::start().await;
    let proxy = SlowProxy::start(redis.port()).await;
    let timeout = Duration::from_millis(400);
    let probe_every = Duration::from_secs(5);
    let (store, handle) = RedisStore::builder(proxy.url())
        .lease(10, Duration::from_secs(10))
        .timeout(timeout)
        .probe_every(probe_every)
        .failure_policy(FailurePolicy::FailClosed)
        .build_with_handle()
        .expect("valid config");
    // A batch of 10 never fits in a burst of 5: every fetch is refused, then the request is
    // decided alone.
    let tier = Tier::new("default", [Quota::per_hour(5)]);
    // Without delay (the connection made): the refused batch and the single request, both
    // answered by Redis.
    let d = store
        .decide(Some(&1u32), &tier, ASK, Instant::now())
        .await
        .expect("a decision");
    assert!(d.is_admitted());
    assert_eq!((handle.decisions(), handle.fallbacks()), (2, 0));

    proxy.set_delay(Duration::from_millis(250));
    let started = Instant::now();
    let d = store
        .decide(Some(&2u32), &tier, ASK, Instant::now())
        .await
        .expect("a decision");
    let took = started.elapsed();
    // The batch was answered (refused), the single request was not: the policy decided.
    assert_eq!((handle.decisions(), handle.fallbacks()), (3, 1));
    assert!(!d.is_admitted());
    assert_eq!(d.retry_after(), probe_every);
    // Loose, for a loaded machine: the decision did not wait for both replies plus a margin.
    assert!(took < timeout + Duration::from_millis(500), "{took:?}");
}

/// #28.1 on one server: the server's address moves (a proxy or a DNS name now points at
/// another server) while the open connection hangs. redis-rs's connection manager reconnects
/// on a broken connection, not on timeouts; the store rebuilds the connection after repeated
/// timeouts and is back on Redis within `probe_every + timeout` and a rebuild.
#[tokio::test]
async fn a_hung_connection_to_one_server_is_rebuilt() {
    let old = Redis::start().await;
    let new = Redis::start().await;
    let proxy = SlowProxy::start(old.port()).await;
    let probe_every = Duration::from_millis(300);
    let (store, handle) = RedisStore::builder(proxy.url())
        .timeout(Duration::from_millis(100))
        .probe_every(probe_every)
        .failure_policy(FailurePolicy::FailClosed)
        .build_with_handle()
        .expect("valid config");
    let tier = Tier::new("default", [Quota::per_hour(1_000)]);
    let decide = || store.decide(Some(&1u32), &tier, ASK, Instant::now());
    assert!(decide().await.expect("a decision").is_admitted());
    assert_eq!(handle.decisions(), 1);

    proxy.move_to(new.port());
    let moved = Instant::now();
    while handle.decisions() == 1 {
        // Generous for a loaded machine: the bound is 300 ms + 100 ms + a rebuild.
        assert!(
            moved.elapsed() < Duration::from_secs(5),
            "still on the hung connection ({} fallbacks, {} refreshes)",
            handle.fallbacks(),
            handle.refreshes()
        );
        let _ = decide().await.expect("a decision");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(handle.refreshes() >= 1);
    assert!(handle.fallbacks() >= 1);
    // The key's state is on the new server now.
    assert!(decide().await.expect("a decision").is_admitted());
    let mut conn = new.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("weir:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1);
}
