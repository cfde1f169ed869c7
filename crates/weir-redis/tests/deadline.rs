//! #28.2: the timeout is the longest a decision waits, in lease mode too. On a real
//! redis-server started by the harness, behind a proxy that holds its replies.
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
