//! #15.9: absurd settings never panic, in debug builds (these tests) as in release: a
//! `ConfigError` naming the field, or a documented clamp.
//!
//! Why a debug run speaks for release builds: the one difference Rust makes between them in
//! arithmetic is overflow checking (debug panics, release wraps). These tests run with the
//! checks on, so an input that passes here overflowed nowhere, and a release build computes the
//! very same values; every other panic (`Duration` overflow, division by zero, an index) is the
//! same in both. The property test below drives each algorithm's arithmetic with the extreme
//! settings and times a quota accepts (rates and bursts of `u32::MAX`, periods from 1 ns to the
//! 500-year clamp, costs of `u32::MAX`, instants at the clock's saturation near 584 years,
//! unbounded waits, cancelled reservations) and checks the answers are the saturated ones: a
//! wait within the allowed wait, and for GCRA and the leaky bucket the bound `burst + rate × T / period` computed in
//! `u128`, which a wrapped schedule would break at once.

use std::convert::Infallible;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
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

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(1),
        Just(2),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        any::<u32>()
    ]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX / 2),
        any::<u64>()
    ]
}

/// Quotas from the extremes a quota accepts: the clamps of `Quota::new` apply.
fn extreme_quota() -> impl Strategy<Value = Quota> {
    (extreme_u32(), extreme_u64(), extreme_u32())
        .prop_map(|(rate, nanos, burst)| Quota::new(rate, Duration::from_nanos(nanos)).burst(burst))
}

/// Arrivals at increasing instants (saturating at `u64::MAX`, where the clock saturates) with
/// extreme costs, and whether to cancel each one's reservation right away.
fn extreme_arrivals() -> impl Strategy<Value = Vec<(u64, u32, bool)>> {
    prop::collection::vec((extreme_u64(), extreme_u32(), any::<bool>()), 1..40).prop_map(|steps| {
        let mut t = 0_u64;
        steps
            .into_iter()
            .map(|(gap, cost, cancel)| {
                t = t.saturating_add(gap % 4_000_000_000_000_000_000);
                (t, cost, cancel)
            })
            .collect()
    })
}

/// Runs the arrivals through `algorithm` with `max_wait`, cancelling some reservations, and
/// returns the service instants (`u128`: arrival plus wait) and costs of the admitted ones.
fn run<A: Algorithm>(
    algorithm: &A,
    quota: &Quota,
    arrivals: &[(u64, u32, bool)],
    max_wait: u64,
) -> Result<Vec<(u128, u128)>, TestCaseError> {
    let state = algorithm.new_state(quota);
    let mut kept = Vec::new();
    for &(t, cost, cancel) in arrivals {
        let verdict = algorithm.acquire(&state, quota, cost, t, max_wait);
        let _ = algorithm.peek(&state, quota, cost, t);
        let _ = A::rest_at(&state);
        if !verdict.is_admitted() {
            prop_assert!(verdict.wait() == 0);
            continue;
        }
        prop_assert!(
            verdict.wait() <= max_wait,
            "wait {} > {}",
            verdict.wait(),
            max_wait
        );
        if cancel {
            let end = t.saturating_add(verdict.reset());
            algorithm.release_reserved(&state, quota, cost, end, t);
        } else {
            kept.push((u128::from(t) + u128::from(verdict.wait()), u128::from(cost)));
        }
    }
    Ok(kept)
}

proptest! {
    #![proptest_config(Config {
        cases: 1_000,
        rng_seed: RngSeed::Fixed(0x0F15_0009),
        failure_persistence: None,
        ..Config::default()
    })]

    /// #15.9: every algorithm's arithmetic saturates under the extremes (no overflow: these
    /// tests run with overflow checks), and GCRA and the leaky bucket keep their bound, in
    /// `u128`, even with cancellations and at the clock's end: a wrapped or saturated schedule
    /// would admit far past it.
    #[test]
    fn extreme_settings_saturate_and_keep_the_bound(
        q in extreme_quota(),
        arrivals in extreme_arrivals(),
        max_wait in extreme_u64(),
    ) {
        let (rate, period) = (u128::from(q.rate()), q.period().as_nanos());
        for served in [
            run(&Gcra, &q, &arrivals, max_wait)?,
            run(&LeakyBucket, &q, &arrivals, max_wait)?,
        ] {
            let mut served = served;
            served.sort_unstable();
            for i in 0..served.len() {
                let mut units = 0;
                for later in &served[i..] {
                    units += later.1;
                    let span = later.0 - served[i].0;
                    let bound = u128::from(q.burst_size()) + rate * span / period + 1;
                    prop_assert!(units <= bound, "{} units in {} ns > {}", units, span, bound);
                }
            }
        }
        run(&TokenBucket, &q, &arrivals, max_wait)?;
        run(&FixedWindow, &q, &arrivals, max_wait)?;
        run(&SlidingWindow, &q, &arrivals, max_wait)?;
        run(&SlidingLog, &q, &arrivals, max_wait)?;
    }
}
