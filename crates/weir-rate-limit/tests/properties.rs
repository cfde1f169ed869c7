//! Property tests of every algorithm's invariant over arbitrary arrival sequences (seeded,
//! thousands of cases per property).

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::time::Instant;
use weir_core::keyed::KeyedConfig;
use weir_rate_limit::{
    Algorithm, Ask, FixedWindow, Gcra, LeakyBucket, MemoryStore, Now, Quota, SlidingLog,
    SlidingWindow, Store, Tier, TokenBucket,
};

fn config() -> Config {
    Config {
        cases: 2_000,
        rng_seed: RngSeed::Fixed(0x5745_4952),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Arrivals: increasing timestamps (ns) with a cost each.
fn arrivals() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec((0u64..400_000_000, 1u32..4), 1..120).prop_map(|gaps| {
        let mut t = 0;
        gaps.into_iter()
            .map(|(gap, cost)| {
                // Many arrivals at the same instant, some spread out.
                t += if gap % 3 == 0 { 0 } else { gap };
                (t, cost)
            })
            .collect()
    })
}

fn quota() -> impl Strategy<Value = Quota> {
    (1u32..20, 1u64..2_000, 1u32..10).prop_map(|(rate, period_ms, burst)| {
        Quota::new(rate, Duration::from_millis(period_ms)).burst(burst)
    })
}

/// Runs the arrivals through `algorithm` (reject mode) and returns the admitted (time, cost).
fn admitted<A: Algorithm>(
    algorithm: &A,
    quota: &Quota,
    arrivals: &[(u64, u32)],
) -> Vec<(u64, u64)> {
    let state = algorithm.new_state(quota);
    arrivals
        .iter()
        .filter(|&&(t, cost)| algorithm.acquire(&state, quota, cost, t, 0).is_admitted())
        .map(|&(t, cost)| (t, u64::from(cost)))
        .collect()
}

/// Feeds the arrivals to two fresh states, one through `admit` (the plain happy path), one
/// through `acquire` with no wait, and checks each arrival gets the same answer and leaves the
/// two states alike (the next arrival would be answered the same).
fn admit_is_acquire_without_wait<A: Algorithm>(
    algorithm: &A,
    quota: &Quota,
    arrivals: &[(u64, u32)],
) -> Result<(), TestCaseError> {
    let (plain, full) = (algorithm.new_state(quota), algorithm.new_state(quota));
    for &(t, cost) in arrivals {
        let admitted = algorithm.admit(&plain, quota, cost, t);
        let verdict = algorithm.acquire(&full, quota, cost, t, 0);
        prop_assert_eq!(admitted, verdict.is_admitted(), "at {}", t);
        prop_assert_eq!(
            algorithm.peek(&plain, quota, 1, t),
            algorithm.peek(&full, quota, 1, t),
            "state after {}",
            t
        );
    }
    Ok(())
}

/// Every closed interval between two admitted arrivals, with the units admitted in it.
fn intervals(admitted: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for i in 0..admitted.len() {
        let mut sum = 0;
        for later in &admitted[i..] {
            sum += later.1;
            out.push((admitted[i].0, later.0, sum));
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gcra_admits_at_most_burst_plus_rate_times_t(q in quota(), arrivals in arrivals()) {
        let t = q.emission_interval().as_nanos() as u64;
        let got = admitted(&Gcra, &q, &arrivals);
        for (start, end, units) in intervals(&got) {
            let bound = u64::from(q.burst_size()) + (end - start) / t;
            prop_assert!(units <= bound, "{units} units in [{start}, {end}] > {bound}");
        }
    }

    #[test]
    fn token_bucket_admits_at_most_burst_plus_rate_per_refill(q in quota(), arrivals in arrivals()) {
        let p = q.period().as_nanos() as u64;
        let got = admitted(&TokenBucket, &q, &arrivals);
        for (start, end, units) in intervals(&got) {
            let bound = u64::from(q.burst_size()) + u64::from(q.rate()) * ((end - start) / p + 1);
            prop_assert!(units <= bound, "{units} units in [{start}, {end}] > {bound}");
        }
    }

    #[test]
    fn sliding_log_never_exceeds_the_limit_in_any_window(q in quota(), arrivals in arrivals()) {
        let p = q.period().as_nanos() as u64;
        let got = admitted(&SlidingLog, &q, &arrivals);
        for (start, end, units) in intervals(&got) {
            if end - start < p {
                prop_assert!(units <= u64::from(q.rate()), "{units} in [{start}, {end}]");
            }
        }
    }

    #[test]
    fn fixed_window_edge_burst_is_at_most_twice_the_rate(q in quota(), arrivals in arrivals()) {
        let p = q.period().as_nanos() as u64;
        let rate = u64::from(q.rate());
        let got = admitted(&FixedWindow, &q, &arrivals);
        for (start, end, units) in intervals(&got) {
            if end - start < p {
                prop_assert!(units <= 2 * rate, "{units} in [{start}, {end}]");
            }
            if start / p == end / p {
                prop_assert!(units <= rate, "{units} in one window");
            }
        }
    }

    #[test]
    fn sliding_window_stays_within_twice_the_rate(q in quota(), arrivals in arrivals()) {
        let p = q.period().as_nanos() as u64;
        let rate = u64::from(q.rate());
        let got = admitted(&SlidingWindow, &q, &arrivals);
        for (start, end, units) in intervals(&got) {
            if end - start < p {
                prop_assert!(units <= 2 * rate, "{units} in [{start}, {end}]");
            }
            if start / p == end / p {
                prop_assert!(units <= rate, "{units} in one window");
            }
        }
    }

    #[test]
    fn leaky_bucket_departures_are_spaced_by_the_interval(q in quota(), arrivals in arrivals()) {
        let t = q.emission_interval().as_nanos() as u64;
        let state = LeakyBucket.new_state(&q);
        let mut departures = Vec::new();
        for &(now, _) in &arrivals {
            let v = LeakyBucket.acquire(&state, &q, 1, now, u64::MAX);
            if v.is_admitted() {
                prop_assert!(v.wait() <= t * u64::from(q.burst_size()), "queue bound");
                departures.push(now + v.wait());
            }
        }
        departures.sort_unstable();
        for pair in departures.windows(2) {
            prop_assert!(pair[1] - pair[0] >= t, "{pair:?}");
        }
    }

    /// The plain happy path (`Algorithm::admit`, no verdict built) admits and charges exactly
    /// what a full decision with no wait does, for every algorithm.
    #[test]
    fn admit_decides_and_charges_as_acquire(q in quota(), arrivals in arrivals()) {
        admit_is_acquire_without_wait(&Gcra, &q, &arrivals)?;
        admit_is_acquire_without_wait(&TokenBucket, &q, &arrivals)?;
        admit_is_acquire_without_wait(&LeakyBucket, &q, &arrivals)?;
        admit_is_acquire_without_wait(&FixedWindow, &q, &arrivals)?;
        admit_is_acquire_without_wait(&SlidingLog, &q, &arrivals)?;
        admit_is_acquire_without_wait(&SlidingWindow, &q, &arrivals)?;
    }

    /// Through the store, keyed: a plain `decide_now` answers `Admitted` exactly when a full
    /// decision admits at once, and a refusal carries the same decision (its Retry-After).
    #[test]
    fn the_stores_plain_answer_matches_its_full_decision(q in quota(), arrivals in arrivals()) {
        let tier = Tier::new("t", [q]);
        let plain = MemoryStore::new(Gcra, KeyedConfig::new(), &tier);
        let full = MemoryStore::new(Gcra, KeyedConfig::new(), &tier);
        let start = Instant::now();
        for &(t, cost) in &arrivals {
            let now = start + Duration::from_nanos(t);
            let ask = Ask { cost, max_wait: Duration::ZERO };
            let key = Some(&7u32);
            let decided = full.decide(key, &tier, ask, now).into_inner().expect("in memory");
            match plain.decide_now(key, &tier, ask, true, now) {
                Now::Admitted => prop_assert!(decided.is_admitted(), "at {}", t),
                Now::Decided(Ok(d), at) => {
                    prop_assert!(!d.is_admitted(), "admitted at once, yet not plainly, at {}", t);
                    prop_assert_eq!(at, now, "the decision's instant at {}", t);
                    prop_assert_eq!(d, decided, "at {}", t);
                }
                other => prop_assert!(false, "{:?} at {}", other, t),
            }
        }
    }

    /// A stacked decision is exactly "every quota would admit", and a refused request leaves
    /// every quota as it was: the same as single-quota limiters fed only the admitted requests.
    #[test]
    fn stacked_quotas_never_charge_a_quota_for_a_refused_request(
        a in quota(), b in quota(), arrivals in arrivals(),
    ) {
        let tier = Tier::new("t", [a.clone(), b.clone()]);
        let store = MemoryStore::new(Gcra, KeyedConfig::new(), &tier);
        let (sa, sb) = (Gcra.new_state(&a), Gcra.new_state(&b));
        let start = Instant::now();
        for &(t, cost) in &arrivals {
            let now = start + Duration::from_nanos(t);
            let stacked = Store::<()>::decide(&store, None, &tier, Ask { cost, max_wait: Duration::ZERO }, now)
                .into_inner()
                .expect("memory store never fails");
            // The single limiters count from another origin; only differences matter, and both
            // origins leave the fresh states (zero) far in the past.
            let n = t + ORIGIN;
            let expected = Gcra.peek(&sa, &a, cost, n).is_admitted() && Gcra.peek(&sb, &b, cost, n).is_admitted();
            prop_assert_eq!(stacked.is_admitted(), expected, "at {}", t);
            if expected {
                Gcra.acquire(&sa, &a, cost, n, 0);
                Gcra.acquire(&sb, &b, cost, n, 0);
            }
        }
    }
}

const ORIGIN: u64 = 1_000_000_000_000_000;

proptest! {
    #![proptest_config(config())]

    /// #15.5: a client sending evenly at exactly the rate (one unit every `period / rate`,
    /// rounded up to the nanosecond as the quota's interval is), at any phase against the
    /// windows, is never refused by the sliding-window counter (about 8 % were).
    #[test]
    fn sliding_window_never_refuses_a_client_at_exactly_the_rate(
        rate in 1u32..60,
        period_ms in 1u64..5_000,
        phase in 0u64..10_000_000_000,
    ) {
        let q = Quota::new(rate, Duration::from_millis(period_ms));
        let state = SlidingWindow.new_state(&q);
        let step = q.emission_interval().as_nanos() as u64;
        for k in 0..u64::from(rate) * 6 {
            let t = phase + k * step;
            prop_assert!(
                SlidingWindow.acquire(&state, &q, 1, t, 0).is_admitted(),
                "request {} at {}",
                k,
                t
            );
        }
    }
}
