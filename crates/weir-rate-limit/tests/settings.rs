//! #15.9: absurd settings never panic, in debug builds (these tests) as in release: a
//! `ConfigError` naming the field, or a documented clamp.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error};
use weir_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, RateLimitLayer, SlidingLog, SlidingWindow,
    TokenBucket,
};

fn echo() -> impl Service<
    (u64, u32),
    Response = u32,
    Error = Infallible,
    Future = std::future::Ready<Result<u32, Infallible>>,
> + Clone {
    service_fn(|(_, cost): (u64, u32)| std::future::ready(Ok(cost)))
}

/// Sends a request of `key` costing `cost`: admitted, or refused with a weir error.
async fn send<S>(svc: &mut S, key: u64, cost: u32) -> bool
where
    S: Service<(u64, u32), Response = u32, Error = BoxError>,
{
    match svc.ready().await.expect("ready").call((key, cost)).await {
        Ok(_) => true,
        Err(err) => {
            let err = Error::find(&*err).expect("a weir error");
            assert!(err.is_rate_limited() || err.is_never_admissible(), "{err}");
            false
        }
    }
}

/// Runs requests of extreme costs and keys through a limiter with `algorithm`, `quota`,
/// `max_keys`, `idle` and a wait of `max_wait` (none if zero), across a long time.
async fn exercise<A: Algorithm>(
    algorithm: A,
    quota: Quota,
    max_keys: usize,
    idle: Duration,
    max_wait: Duration,
) {
    let builder = RateLimitLayer::builder()
        .quota(quota.clone())
        .algorithm(algorithm)
        .key(|req: &(u64, u32)| Some(req.0))
        .cost(|req: &(u64, u32)| req.1)
        .max_keys(max_keys)
        .idle_timeout(idle);
    let layer = if max_wait.is_zero() {
        builder.build()
    } else {
        builder.wait(max_wait).build()
    }
    .expect("valid");
    let mut svc = layer.layer(echo());
    for step in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_secs(1),
        Duration::from_secs(86_400 * 365),
    ] {
        advance(step).await;
        for (key, cost) in [
            (0, 1),
            (0, u32::MAX),
            (u64::MAX, 1),
            (7, u32::MAX / 2),
            (7, 1),
        ] {
            // Wait mode may wait up to `max_wait`; a paused clock moves on by itself.
            let _ =
                tokio::time::timeout(Duration::from_secs(3_600), send(&mut svc, key, cost)).await;
        }
    }
    assert!(send(&mut svc, 1 << 40, 1).await || quota.rate() > 0);
}

/// #15.9: `max_keys(0)` (clamped to 1), `max_keys(usize::MAX)`, zero and huge idle timeouts,
/// the largest rates, the shortest and longest periods a quota accepts, costs of `u32::MAX`
/// and an unbounded wait neither panic nor overflow, with every algorithm.
#[tokio::test(start_paused = true)]
async fn absurd_but_valid_settings_never_panic() {
    let quotas = [
        Quota::new(u32::MAX, Duration::from_nanos(1)),
        Quota::new(1, Duration::from_nanos(1)),
        Quota::new(u32::MAX, Duration::from_secs(86_400 * 365 * 400)),
        Quota::new(1, Duration::from_secs(86_400 * 365 * 400)),
        Quota::per_second(3).burst(u32::MAX),
    ];
    let keys = [0, 1, usize::MAX];
    let idles = [Duration::ZERO, Duration::from_secs(600), Duration::MAX];
    let waits = [Duration::ZERO, Duration::MAX];
    for quota in &quotas {
        for &max_keys in &keys {
            for &idle in &idles {
                for &wait in &waits {
                    exercise(Gcra, quota.clone(), max_keys, idle, wait).await;
                    exercise(TokenBucket, quota.clone(), max_keys, idle, wait).await;
                    exercise(LeakyBucket, quota.clone(), max_keys, idle, wait).await;
                    exercise(FixedWindow, quota.clone(), max_keys, idle, wait).await;
                    exercise(SlidingWindow, quota.clone(), max_keys, idle, wait).await;
                    exercise(SlidingLog, quota.clone(), max_keys, idle, wait).await;
                }
            }
        }
    }
}

/// #15.9, #17.5: settings no quota can mean never make an invalid quota: a zero is raised to
/// the least valid value, a span past 500 years shortened, and a preset given 0 is a
/// `ConfigError` naming the preset and the rule.
#[test]
fn settings_no_quota_can_mean_are_clamped_or_config_errors() {
    assert_eq!(Quota::new(0, Duration::from_secs(1)).rate(), 1);
    assert_eq!(
        Quota::new(1, Duration::ZERO).period(),
        Duration::from_millis(1)
    );
    assert_eq!(Quota::per_second(1).burst(0).burst_size(), 1);
    let year = Duration::from_secs(365 * 86_400);
    assert_eq!(Quota::new(1, Duration::MAX).period(), year * 500);
    assert!(Quota::per_day(1).burst(u32::MAX).burst_size() <= 500 * 365);
    let err = RateLimitLayer::per_minute(0).build().expect_err("zero");
    assert!(err.is_zero());
    assert_eq!(err.field(), "per_minute");
    assert_eq!(
        err.to_string(),
        "rate limit: `per_minute` must be at least 1"
    );
}
