//! #15.4: wait mode under random arrivals and random drops of waiting requests (paused time):
//! whatever is cancelled, at most the quota reaches the service in any window.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::time::{Instant, sleep, sleep_until};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_rate_limit::{Algorithm, Gcra, LeakyBucket, Quota, RateLimitLayer, TokenBucket};

fn config() -> Config {
    Config {
        cases: 300,
        rng_seed: RngSeed::Fixed(0x5745_4934),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One request: milliseconds after the previous one, its cost, and after how many
/// milliseconds (if at all) its caller drops it.
type Arrival = (u64, u32, Option<u64>);

fn arrivals() -> impl Strategy<Value = Vec<Arrival>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..300],
            1u32..=2,
            prop::option::of(0u64..600),
        ),
        1..40,
    )
}

fn quota() -> impl Strategy<Value = Quota> {
    (1u32..5, 100u64..1_000, 1u32..4).prop_map(|(rate, period_ms, burst)| {
        Quota::new(rate, Duration::from_millis(period_ms)).burst(burst)
    })
}

/// Runs the arrivals through a limiter with `algorithm` in wait mode (an hour at most), drops
/// the requests as told, and returns when each admitted request reached the service, with its
/// cost, sorted by time.
fn reached<A: Algorithm>(
    algorithm: A,
    quota: &Quota,
    arrivals: &[Arrival],
) -> Vec<(Duration, u32)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let start = Instant::now();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let service = service_fn(move |cost: u32| {
            record.lock().expect("lock").push((start.elapsed(), cost));
            std::future::ready(Ok::<_, Infallible>(cost))
        });
        let layer = RateLimitLayer::builder()
            .quota(quota.clone())
            .algorithm(algorithm)
            .cost(|cost: &u32| *cost)
            .wait(Duration::from_secs(3_600))
            .build()
            .expect("valid");
        let svc = layer.layer(service);
        // (when, request index, whether it is the drop)
        let mut events = Vec::new();
        let mut at = Duration::ZERO;
        for (i, &(gap, _, drop)) in arrivals.iter().enumerate() {
            at += Duration::from_millis(gap);
            events.push((at, i, false));
            if let Some(after) = drop {
                events.push((at + Duration::from_millis(after), i, true));
            }
        }
        events.sort_by_key(|&(when, i, drop)| (when, drop, i));
        let mut tasks: Vec<Option<tokio::task::JoinHandle<()>>> =
            arrivals.iter().map(|_| None).collect();
        for (when, i, drop) in events {
            sleep_until(start + when).await;
            if drop {
                if let Some(task) = &tasks[i] {
                    task.abort();
                }
            } else {
                let mut svc = svc.clone();
                let cost = arrivals[i].1;
                tasks[i] = Some(tokio::spawn(async move {
                    let _ = svc.ready().await.expect("ready").call(cost).await;
                }));
            }
        }
        sleep(Duration::from_secs(7_200)).await;
        let mut seen = seen.lock().expect("lock").clone();
        seen.sort_unstable();
        seen
    })
}

/// tokio's timer fires at whole milliseconds of the runtime's clock: a waiter reaches the
/// service up to a millisecond after its turn, so two spans between calls may look that much
/// shorter than the turns they were booked on.
const TIMER: Duration = Duration::from_millis(1);

/// Units that reached the service from the `i`-th to the `j`-th call, inclusive.
fn units(calls: &[(Duration, u32)], i: usize, j: usize) -> u64 {
    calls[i..=j].iter().map(|&(_, c)| u64::from(c)).sum()
}

proptest! {
    #![proptest_config(config())]

    /// #15.4 GCRA: in any window of length `T`, at most `burst + ⌊T / interval⌋` units reach
    /// the service, however waiting requests are dropped (a turn given back in the middle of
    /// the queue would book two later requests on one instant).
    #[test]
    fn gcra_keeps_its_bound_whatever_waiters_are_dropped(quota in quota(), arrivals in arrivals()) {
        let calls = reached(Gcra, &quota, &arrivals);
        let interval = quota.emission_interval().as_nanos();
        for i in 0..calls.len() {
            for j in i..calls.len() {
                let span = (calls[j].0 - calls[i].0 + TIMER).as_nanos();
                let bound = u64::from(quota.burst_size()) + (span / interval) as u64;
                prop_assert!(units(&calls, i, j) <= bound, "{:?} {:?}", quota, calls);
            }
        }
    }

    /// #15.4 leaky bucket: each request reaches the service `cost × interval` after the one
    /// before it at the earliest, however waiting requests are dropped.
    #[test]
    fn leaky_bucket_keeps_its_spacing_whatever_waiters_are_dropped(quota in quota(), arrivals in arrivals()) {
        let calls = reached(LeakyBucket, &quota, &arrivals);
        let interval = quota.emission_interval();
        for pair in calls.windows(2) {
            let ((a, cost), (b, _)) = (pair[0], pair[1]);
            prop_assert!(b - a + TIMER >= interval * cost, "{:?}", calls);
        }
    }

    /// #15.4 token bucket: in any window of length `T`, at most
    /// `burst + rate × (⌊T / period⌋ + 1)` units reach the service, however waiting requests
    /// are dropped.
    #[test]
    fn token_bucket_keeps_its_bound_whatever_waiters_are_dropped(quota in quota(), arrivals in arrivals()) {
        let calls = reached(TokenBucket, &quota, &arrivals);
        let period = quota.period().as_nanos();
        for i in 0..calls.len() {
            for j in i..calls.len() {
                let span = (calls[j].0 - calls[i].0 + TIMER).as_nanos();
                let refills = (span / period) as u64 + 1;
                let bound = u64::from(quota.burst_size()) + u64::from(quota.rate()) * refills;
                prop_assert!(units(&calls, i, j) <= bound, "{:?} {:?}", quota, calls);
            }
        }
    }
}
