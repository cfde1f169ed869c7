//! #15.10 on Redis: an admin reads one key's remaining units and resets one key through the
//! limiter's handle, on the state every instance shares. Two limiters, each with its own store
//! and connection (two instances of one service), on one real redis-server or one real
//! three-node Redis Cluster; then Redis killed: an error, never a made-up answer.
//!
//! These tests run on the real clock: a real Redis cannot be paused. No test sleeps.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use support::Backend;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, key::Header, wire::RateLimitInfo};
use weir_rate_limit::{
    AdminStore, FixedWindow, Gcra, Quota, RateLimitHandle, RateLimitLayer, SlidingWindow, Tier,
    TokenBucket,
};
use weir_redis::{FailurePolicy, RedisAlgorithm, RedisStore};

const WEEK: Duration = Duration::from_secs(7 * 86_400);
const CLIENT: HeaderName = HeaderName::from_static("x-client");

/// One instance's limiter, per `x-client`: 3 a day and 5 a week, stacked (two Redis keys in
/// one Cluster slot), on its own store.
fn limiter<A: RedisAlgorithm + Default>(
    backend: &Backend,
) -> RateLimitLayer<Header, RedisStore<A>, weir_rate_limit::DefaultTier> {
    let store = backend
        .builder()
        .algorithm(A::default())
        .failure_policy(FailurePolicy::FailOpen)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("valid config");
    RateLimitLayer::builder()
        .quota(Quota::per_day(3).named("daily"))
        .quota(Quota::new(5, WEEK).named("weekly"))
        .key(Header::new(CLIENT))
        .build_with_store(store)
        .expect("valid limit")
}

/// One request from `client` through `layer`: whether it was admitted.
async fn admitted<L>(layer: &L, client: &'static str) -> bool
where
    L: Layer<
        tower::util::ServiceFn<
            fn(Request<()>) -> std::future::Ready<Result<&'static str, Infallible>>,
        >,
    >,
    L::Service: Service<Request<()>, Error = BoxError>,
{
    let inner: fn(Request<()>) -> std::future::Ready<Result<&'static str, Infallible>> =
        |_| std::future::ready(Ok("ok"));
    let svc = layer.layer(service_fn(inner));
    let req = Request::builder()
        .header(CLIENT, client)
        .body(())
        .expect("request");
    match svc.oneshot(req).await {
        Ok(_) => true,
        Err(e) => {
            assert!(
                weir_core::Error::find(&*e).is_some_and(weir_core::Error::is_rate_limited),
                "a refusal, not {e}"
            );
            false
        }
    }
}

fn key(client: &'static str) -> HeaderValue {
    HeaderValue::from_static(client)
}

/// Units left per quota, by name.
fn left(infos: &[RateLimitInfo]) -> Vec<(String, u64)> {
    infos
        .iter()
        .map(|i| (i.policy().to_owned(), i.remaining_units()))
        .collect()
}

fn units(daily: u64, weekly: u64) -> Vec<(String, u64)> {
    vec![("daily".to_owned(), daily), ("weekly".to_owned(), weekly)]
}

async fn remaining<St, T, C, O, P>(
    handle: &RateLimitHandle<Header, St, T, C, O, P>,
    client: &'static str,
) -> Vec<(String, u64)>
where
    St: AdminStore<HeaderValue>,
    T: weir_rate_limit::TierOf<HeaderValue>,
{
    let infos = handle
        .remaining_async(&key(client))
        .await
        .expect("redis answers");
    left(&infos)
}

/// Spend on one instance, read and reset on the other.
async fn two_instances<A: RedisAlgorithm + Default>(backend: &Backend) {
    let (a, b) = (limiter::<A>(backend), limiter::<A>(backend));
    let (ha, hb) = (a.handle(), b.handle());
    // A key never seen reads as fresh, and reading it stores nothing.
    assert_eq!(remaining(&hb, "alice").await, units(3, 5));
    assert!(backend.scan("*").await.is_empty(), "a read wrote a key");
    assert!(admitted(&a, "alice").await);
    assert!(admitted(&a, "alice").await);
    // The other instance reads what the first spent, in Redis; reading charges nothing.
    for _ in 0..5 {
        assert_eq!(remaining(&hb, "alice").await, units(1, 3));
    }
    assert!(admitted(&a, "alice").await);
    assert_eq!(remaining(&hb, "alice").await, units(0, 2));
    assert!(!admitted(&b, "alice").await, "the daily quota is spent");
    // The daily quota is fully restored within a day (two for the sliding-window counter,
    // whose count still weighs on the next window).
    let infos = hb.remaining_async(&key("alice")).await.expect("redis");
    assert!(infos[0].reset_after() <= Duration::from_secs(2 * 86_400));
    assert!(infos[0].reset_after() > Duration::ZERO);
    // Another key is untouched.
    assert_eq!(remaining(&ha, "bob").await, units(3, 5));
    // A reset on the second instance: the first admits again.
    assert!(hb.reset_async(&key("alice")).await.expect("redis answers"));
    assert_eq!(remaining(&ha, "alice").await, units(3, 5));
    assert!(admitted(&a, "alice").await);
    assert_eq!(remaining(&hb, "alice").await, units(2, 4));
    // A key with no state: nothing to reset.
    assert!(!ha.reset_async(&key("carol")).await.expect("redis answers"));
}

#[tokio::test]
async fn an_admin_reads_and_resets_a_key_across_instances() {
    two_instances::<Gcra>(&Backend::single().await).await;
}

#[tokio::test]
async fn an_admin_reads_and_resets_a_key_across_instances_on_a_cluster() {
    two_instances::<Gcra>(&Backend::cluster().await).await;
}

/// The read mode of every script: the windows and the token bucket as GCRA. Their windows are
/// a day and a week from the Unix epoch: only a test running across 00:00 UTC could see one
/// end.
#[tokio::test]
async fn every_algorithm_reads_and_resets_without_charging() {
    let backend = Backend::single().await;
    two_instances::<TokenBucket>(&backend).await;
    flush(&backend).await;
    two_instances::<FixedWindow>(&backend).await;
    flush(&backend).await;
    two_instances::<SlidingWindow>(&backend).await;
}

async fn flush(backend: &Backend) {
    let mut conn = backend.connection(0).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
}

/// The store's own admin calls on the keys the limiter writes.
#[tokio::test]
async fn the_store_reads_the_keys_the_limiter_writes() {
    let backend = Backend::single().await;
    let layer = limiter::<Gcra>(&backend);
    assert!(admitted(&layer, "alice").await);
    let store = layer.handle().store().clone();
    let tier = Tier::new(
        "default",
        [
            Quota::per_day(3).named("daily"),
            Quota::new(5, WEEK).named("weekly"),
        ],
    );
    let verdicts = store.peek(&key("alice"), &tier).await.expect("redis");
    let remaining: Vec<u64> = verdicts.iter().map(|v| v.remaining() + 1).collect();
    assert_eq!(remaining, [2, 4]);
    assert_eq!(store.window_origin(), std::time::SystemTime::UNIX_EPOCH);
}

/// Redis killed: the admin calls answer an error within the store's timeout, not a fresh
/// state, and the limiter's own failure policy is not involved.
#[tokio::test]
async fn an_outage_is_an_error_not_a_fresh_answer() {
    let mut backend = Backend::single().await;
    let layer = limiter::<Gcra>(&backend);
    let handle = layer.handle();
    assert!(admitted(&layer, "alice").await);
    assert_eq!(remaining(&handle, "alice").await, units(2, 4));
    backend.kill(0);
    let read = handle.remaining_async(&key("alice")).await;
    assert!(read.is_err(), "a read during an outage answered {read:?}");
    let reset = handle.reset_async(&key("alice")).await;
    assert!(
        reset.is_err(),
        "a reset during an outage answered {reset:?}"
    );
    // The error is the store's: a Redis error.
    let error = read.expect_err("an error");
    assert!(
        error.downcast_ref::<redis::RedisError>().is_some(),
        "{error}"
    );
    assert_eq!(
        layer.handle().store().handle().fallbacks(),
        0,
        "an admin call went to the failure policy"
    );
}

/// Lease mode: leased units count as spent in the read (Redis charged them when it lent them),
/// and a reset drops the resetting instance's lease, so its next request leases afresh from
/// the reset state instead of spending units from before the reset.
#[tokio::test]
async fn a_reset_drops_the_instances_lease() {
    let backend = Backend::single().await;
    let leasing = |b: &Backend| {
        let store = b
            .builder()
            .lease(3, Duration::from_secs(60))
            .timeout(Duration::from_secs(1))
            .build()
            .expect("valid config");
        RateLimitLayer::builder()
            .quota(Quota::per_day(10).named("daily"))
            .key(Header::new(CLIENT))
            .build_with_store(store)
            .expect("valid limit")
    };
    let (a, b) = (leasing(&backend), leasing(&backend));
    let (ha, hb) = (a.handle(), b.handle());
    let daily = |n: u64| vec![("daily".to_owned(), n)];
    assert!(admitted(&a, "alice").await);
    // One request, a batch of 3 leased: Redis counts 3 spent.
    assert_eq!(remaining(&hb, "alice").await, daily(7));
    assert!(ha.reset_async(&key("alice")).await.expect("redis answers"));
    assert_eq!(remaining(&hb, "alice").await, daily(10));
    // Had the lease survived, this request would spend it and Redis would still read 10.
    assert!(admitted(&a, "alice").await);
    assert_eq!(remaining(&hb, "alice").await, daily(7));
}

/// #19: a limiter on Redis shows on a status page (`build_with_store_registered`): its
/// refusals, Redis's decisions, and, with Redis killed, the outage (`degraded`, the failure
/// policy's decisions, the errors), read from memory by a snapshot that never waits.
#[tokio::test]
async fn a_redis_limiter_registers_and_its_snapshot_shows_the_outage() {
    let mut backend = Backend::single().await;
    let registry = weir_core::inspect::Registry::new();
    let store: RedisStore<Gcra> = backend
        .builder()
        .failure_policy(FailurePolicy::FailOpen)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("valid config");
    let (layer, _handle) = RateLimitLayer::builder()
        .name("redis-edge")
        .quota(Quota::per_day(2))
        .key(Header::new(CLIENT))
        .registry(&registry)
        .build_with_store_registered(store)
        .expect("valid limit");
    let shown = || {
        let all = registry.snapshot();
        assert_eq!(all.len(), 1, "one layer registered");
        all.into_iter().next().expect("one")
    };
    assert_eq!(shown().pattern, "rate_limit");
    assert_eq!(shown().layer.as_str(), "redis-edge");
    assert!(
        registry.handles()[0].actions().is_empty(),
        "no sync admin action"
    );

    let answers = [
        admitted(&layer, "alice").await,
        admitted(&layer, "alice").await,
        admitted(&layer, "alice").await,
    ];
    assert_eq!(answers, [true, true, false]);
    let healthy = shown();
    assert_eq!(healthy.counter_value("rejected"), Some(1));
    assert_eq!(healthy.counter_value("redis_decisions"), Some(3));
    assert_eq!(healthy.gauge_value("degraded"), Some(0.0));
    assert_eq!(healthy.counter_value("fallbacks"), Some(0));

    backend.kill(0);
    // Fail-open: admitted by the failure policy, counted as such.
    assert!(admitted(&layer, "alice").await);
    let down = shown();
    assert_eq!(down.gauge_value("degraded"), Some(1.0));
    assert_eq!(down.counter_value("fallbacks"), Some(1));
    assert!(down.counter_value("redis_errors") >= Some(1), "{down:?}");
    assert_eq!(down.counter_value("redis_decisions"), Some(3));
    assert_eq!(down.counter_value("rejected"), Some(1));
}

/// `build_with_store_registered` without a registry is a `ConfigError` naming it; the same
/// name twice in one registry is a duplicate; `build_with_store` still refuses a registry.
#[tokio::test]
async fn registering_a_redis_limiter_checks_the_registry() {
    let backend = Backend::single().await;
    let store = || -> RedisStore<Gcra> { backend.builder().build().expect("valid config") };
    let missing = RateLimitLayer::builder()
        .quota(Quota::per_day(2))
        .build_with_store_registered(store())
        .expect_err("no registry");
    assert!(missing.is_missing());
    assert_eq!(missing.field(), "registry");

    let registry = weir_core::inspect::Registry::new();
    let build = || {
        RateLimitLayer::builder()
            .name("twice")
            .quota(Quota::per_day(2))
            .registry(&registry)
            .build_with_store_registered(store())
    };
    assert!(build().is_ok());
    let twice = build().expect_err("a duplicate");
    assert!(twice.is_duplicate(), "{twice}");

    let conflict = RateLimitLayer::builder()
        .quota(Quota::per_day(2))
        .registry(&registry)
        .build_with_store(store())
        .expect_err("a conflict");
    assert!(conflict.is_conflict());
    assert_eq!(conflict.field(), "registry");
}
