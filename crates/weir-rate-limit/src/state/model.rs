//! Model tests: the wait queue of the schedulers (GCRA and the leaky bucket in wait mode) under
//! shuttle's scheduler, which switches threads before every operation on the schedule's atomic
//! (the primitives of `crate::sync`). Callers arrive a few milliseconds apart, each books two
//! turns (`acquire` with a maximum wait) and cancels some of them (`release_reserved`, as a
//! dropped waiting future does); whatever the interleaving, of the turns still booked at the
//! end:
//!
//! - the leaky bucket never books two on one instant: any two leave at least an emission
//!   interval apart;
//! - GCRA never admits over its quota: in any span of length `T` between two departures at most
//!   `burst + ⌊T / interval⌋` leave (its documented bound).
//!
//! Explored by shuttle's PCT scheduler (depth 3) and its random scheduler.

use std::sync::{Arc, Mutex as Books};

use shuttle::thread;

use super::{Algorithm, Gcra, LeakyBucket};
use crate::quota::Quota;

const MS: u64 = 1_000_000;

/// A turn booked: when it leaves, and whether its waiter cancelled it.
#[derive(Clone, Copy, Debug)]
struct Turn {
    leaves: u64,
    cancelled: bool,
}

/// `callers` threads, two turns each, on one state of `algorithm` for `quota`: caller `c`
/// arrives at `c` ms, waits up to a second, and cancels its first turn when `c` is even and
/// the turn waits. Returns the turns still booked, by departure.
fn race<A: Algorithm>(algorithm: A, quota: Quota, callers: u64) -> Vec<u64> {
    let state = Arc::new(algorithm.new_state(&quota));
    let books = Arc::new(Books::new(Vec::new()));
    let threads: Vec<_> = (0..callers)
        .map(|caller| {
            let state = Arc::clone(&state);
            let books = Arc::clone(&books);
            let quota = quota.clone();
            let algorithm = algorithm.clone();
            thread::spawn(move || {
                let now = caller * MS;
                for round in 0..2 {
                    let verdict = algorithm.acquire(&state, &quota, 1, now, 1_000 * MS);
                    if !verdict.is_admitted() {
                        continue;
                    }
                    let cancel = round == 0 && caller % 2 == 0 && verdict.wait() > 0;
                    books.lock().expect("books").push(Turn {
                        leaves: now + verdict.wait(),
                        cancelled: cancel,
                    });
                    if cancel {
                        algorithm.release_reserved(&state, &quota, 1, now + verdict.reset(), now);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a caller ran");
    }
    let books = books.lock().expect("books");
    let mut leaves: Vec<u64> = books
        .iter()
        .filter(|turn| !turn.cancelled)
        .map(|turn| turn.leaves)
        .collect();
    leaves.sort_unstable();
    leaves
}

fn leaky(callers: u64) {
    let quota = Quota::per_second(10).burst(3);
    let interval = quota.interval_nanos();
    let leaves = race(LeakyBucket, quota, callers);
    for pair in leaves.windows(2) {
        assert!(
            pair[1] - pair[0] >= interval,
            "two turns {} ns apart, the interval is {interval} ns: {leaves:?}",
            pair[1] - pair[0]
        );
    }
}

fn gcra(callers: u64) {
    let quota = Quota::per_second(10).burst(2);
    let interval = quota.interval_nanos();
    let burst = u64::from(quota.burst_size());
    let leaves = race(Gcra, quota, callers);
    for (i, first) in leaves.iter().enumerate() {
        for (j, last) in leaves.iter().enumerate().skip(i) {
            let within = (j - i + 1) as u64;
            assert!(
                within <= burst + (last - first) / interval,
                "{within} turns within {} ns: {leaves:?}",
                last - first
            );
        }
    }
}

#[test]
fn leaky_bucket_three_callers() {
    shuttle::check_pct(|| leaky(3), 1_000, 3);
}

#[test]
fn leaky_bucket_four_callers_random() {
    shuttle::check_random(|| leaky(4), 1_000);
}

#[test]
fn gcra_three_callers() {
    shuttle::check_pct(|| gcra(3), 1_000, 3);
}

#[test]
fn gcra_four_callers_random() {
    shuttle::check_random(|| gcra(4), 1_000);
}
