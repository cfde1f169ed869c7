//! The rate-limit algorithms (weir-rate-limit's `Algorithm`s), structure-aware: random arrivals,
//! costs, waits and drops against each algorithm's documented bound.
//!
//! A run is one quota and a sequence of requests at non-decreasing times; a request may be
//! dropped right after it is admitted (the store's `release` of a refused stacked quota), which
//! counts it as never admitted. With `t_i` the time an admitted request proceeds (`now + wait`)
//! and `c_i` its cost, the properties (each algorithm's documentation) are:
//!
//! - `Gcra`: any interval of length `T` holds at most `burst + ⌊T / emission_interval⌋` units;
//! - `TokenBucket`: at most `burst + rate × (⌊T / period⌋ + 1)`;
//! - `FixedWindow`, `SlidingWindow`: a window `[k × period, (k + 1) × period)` holds at most
//!   `rate` (so an interval of one period at most `2 × rate`);
//! - `SlidingLog`: any interval shorter than `period` holds at most `rate` (exact);
//! - `LeakyBucket`: requests leave one unit per emission interval: the next request leaves at
//!   least `c_i × emission_interval` after request `i`;
//!
//! and for every algorithm: an admitted request waits at most its `max_wait` (none for the
//! window algorithms); a cost above what the quota can ever hold is refused as never admissible;
//! a refused request of the same cost, asked again `retry_after` later with nothing in between,
//! is admitted (`peek`).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weir::rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, SlidingLog, SlidingWindow, TokenBucket,
};

#[derive(Arbitrary, Debug)]
struct Input {
    algorithm: u8,
    rate: u8,
    burst: u8,
    /// The period, in milliseconds.
    period_ms: u16,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    /// Nanoseconds since the previous request (scaled by `scale`).
    advance: u16,
    scale: u8,
    cost: u8,
    /// Nanoseconds the request may wait, in units of 1 µs; 0 in most runs.
    max_wait_us: u16,
    /// Released right after an admission (a refused stacked quota).
    dropped: bool,
}

#[derive(Clone, Copy, Debug)]
enum Bound {
    Gcra,
    TokenBucket,
    Window,
    Log,
    Leaky,
}

fuzz_target!(|input: Input| {
    let quota = Quota::new(
        u32::from(input.rate % 16),
        Duration::from_millis(u64::from(input.period_ms % 2000)),
    )
    .burst(u32::from(input.burst % 16));
    let steps = &input.steps[..input.steps.len().min(100)];
    match input.algorithm % 6 {
        0 => run(Gcra, Bound::Gcra, &quota, steps),
        1 => run(TokenBucket, Bound::TokenBucket, &quota, steps),
        2 => run(FixedWindow, Bound::Window, &quota, steps),
        3 => run(SlidingWindow, Bound::Window, &quota, steps),
        4 => run(SlidingLog, Bound::Log, &quota, steps),
        _ => run(LeakyBucket, Bound::Leaky, &quota, steps),
    }
});

/// One call made on the state, replayed to check a refusal on a copy.
enum Call {
    Acquire { cost: u32, now: u64, max_wait: u64 },
    Release { cost: u32, now: u64 },
    ReleaseReserved { cost: u32, end: u64, now: u64 },
}

fn apply<A: Algorithm>(algorithm: &A, state: &A::State, quota: &Quota, call: &Call) {
    match *call {
        Call::Acquire {
            cost,
            now,
            max_wait,
        } => {
            algorithm.acquire(state, quota, cost, now, max_wait);
        }
        Call::Release { cost, now } => algorithm.release(state, quota, cost, now),
        Call::ReleaseReserved { cost, end, now } => {
            algorithm.release_reserved(state, quota, cost, end, now);
        }
    }
}

fn run<A: Algorithm>(algorithm: A, bound: Bound, quota: &Quota, steps: &[Step]) {
    let state = algorithm.new_state(quota);
    // WEIR_FUZZ_TRACE=1: print every decision (to read a crash).
    let trace = std::env::var_os("WEIR_FUZZ_TRACE").is_some();
    let mut calls: Vec<Call> = Vec::new();
    let mut now: u64 = 0;
    // (proceeds at, cost) of every admitted request that was not dropped.
    let mut admitted: Vec<(u64, u64)> = Vec::new();
    let waits = matches!(bound, Bound::Gcra | Bound::TokenBucket | Bound::Leaky);
    let capacity = match bound {
        Bound::Gcra | Bound::TokenBucket | Bound::Leaky => quota.burst_size(),
        Bound::Window | Bound::Log => quota.rate(),
    };
    for step in steps {
        now += u64::from(step.advance) << (step.scale % 32);
        let cost = u32::from(step.cost % 20);
        let max_wait = if waits {
            u64::from(step.max_wait_us) * 1000
        } else {
            0
        };
        let verdict = algorithm.acquire(&state, quota, cost, now, max_wait);
        calls.push(Call::Acquire {
            cost,
            now,
            max_wait,
        });
        if trace {
            eprintln!(
                "{bound:?} {quota:?} at {now}: cost {cost}, max_wait {max_wait}, dropped {}: {verdict:?}",
                step.dropped,
            );
        }
        if cost > capacity {
            assert!(
                !verdict.is_admitted(),
                "{bound:?}: cost {cost} above {capacity} admitted"
            );
            assert!(
                verdict.is_never_admissible(),
                "{bound:?}: cost {cost} above {capacity}"
            );
            continue;
        }
        if verdict.is_admitted() {
            assert!(
                verdict.wait() <= max_wait,
                "{bound:?}: {verdict:?} waits past {max_wait}"
            );
            if step.dropped {
                let call = if verdict.wait() == 0 {
                    Call::Release { cost, now }
                } else {
                    Call::ReleaseReserved {
                        cost,
                        end: now + verdict.reset(),
                        now,
                    }
                };
                apply(&algorithm, &state, quota, &call);
                calls.push(call);
            } else {
                admitted.push((now + verdict.wait(), u64::from(cost)));
            }
        } else {
            assert!(
                !verdict.is_never_admissible(),
                "{bound:?}: cost {cost} within {capacity}"
            );
            // Asked again `retry_after` later, on a copy of the state (a peek into the future
            // may expire what later calls, at earlier times, still count).
            let copy = algorithm.new_state(quota);
            for call in &calls {
                apply(&algorithm, &copy, quota, call);
            }
            let later = now + verdict.retry_after();
            let again = algorithm.peek(&copy, quota, cost, later);
            assert!(
                again.is_admitted(),
                "{bound:?}: refused at {now} with retry_after {}, refused again then: {again:?}",
                verdict.retry_after(),
            );
        }
    }
    check(bound, quota, &mut admitted);
}

fn check(bound: Bound, quota: &Quota, admitted: &mut [(u64, u64)]) {
    admitted.sort_unstable();
    let period = u64::try_from(quota.period().as_nanos()).unwrap();
    let ei = u64::try_from(quota.emission_interval().as_nanos()).unwrap();
    let burst = u64::from(quota.burst_size());
    let rate = u64::from(quota.rate());
    for i in 0..admitted.len() {
        let mut units = 0;
        for j in i..admitted.len() {
            let (start, end) = (admitted[i].0, admitted[j].0);
            let length = end - start;
            units += admitted[j].1;
            let most = match bound {
                Bound::Gcra => burst + length / ei,
                Bound::TokenBucket => burst + rate * (length / period + 1),
                Bound::Window if start / period == end / period => rate,
                Bound::Log if length < period => rate,
                Bound::Window | Bound::Log | Bound::Leaky => u64::MAX,
            };
            assert!(
                units <= most,
                "{bound:?}: {units} units in [{start}, {end}], more than {most}: {admitted:?}",
            );
        }
        if let (Bound::Leaky, Some(next)) = (bound, admitted.get(i + 1)) {
            let (at, cost) = admitted[i];
            assert!(
                next.0 >= at + cost * ei,
                "{bound:?}: {next:?} leaves too soon after {:?}",
                admitted[i]
            );
        }
    }
}
