//! Model tests: the breaker's state word and probe admission under shuttle's scheduler, which
//! switches threads before every operation on the machine's atomics and its lock (the
//! primitives of `crate::sync`). Callers race through an open circuit that goes half-open,
//! take probes, and report a success, a failure or nothing (the slot given back); whatever the
//! interleaving:
//!
//! - never more than `probes` probe permits of one half-open period taken and not given back;
//! - a circuit closes on its probes only after `probes` successes of that period were reported;
//! - every transition is announced exactly once (the notices returned add up to the generations
//!   the state word went through);
//! - a half-open circuit left with no probe out has every slot either free or spent on a
//!   success of its own period (no slot leaked, none given back into a later period).
//!
//! Explored by shuttle's PCT scheduler (depth 3) and its random scheduler.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as Books};
use std::time::Duration;

use shuttle::thread;
use weir_core::backoff::Backoff;

use super::machine::Breaker;
use super::vocabulary::*;

/// The model's own bookkeeping, beside the breaker (a `std` mutex, never held across an
/// operation of the breaker, so it adds no scheduling point).
#[derive(Default)]
struct Ledger {
    /// Probe slots spent, per generation: counted after the permit is taken and uncounted
    /// before its slot can come back (a report of nothing), so the count is never above the
    /// breaker's own. A success keeps its slot for the rest of the period.
    out: HashMap<u64, u32>,
    /// Successes reported, per generation (counted before the report).
    succeeded: HashMap<u64, u32>,
    /// `Changed` notices returned to the callers.
    notices: u64,
}

fn settings(probes: u32) -> Settings {
    Settings {
        window: WindowKind::Count(4),
        failure_rate: Some(ppm(50.0)),
        slow_rate: None,
        consecutive_failures: None,
        minimum_calls: 2,
        open: Backoff::constant(Duration::from_secs(5)),
        probes,
        max_half_open: Duration::from_secs(30),
        seed: Some(1),
    }
}

fn notice(ledger: &Books<Ledger>, notice: Option<Notice>) {
    if let Some(Notice::Changed { .. }) = notice {
        ledger.lock().expect("ledger").notices += 1;
    }
}

/// `callers` threads, `rounds` calls each, against a circuit opened at 0 s with `probes`
/// probes. A caller's call `round` happens `5 s * (round + 1)` after the opening (an open time
/// later, so a circuit tripped by a probe lets probes through again) and reports
/// `report(caller, round)`.
fn race(callers: u64, rounds: u64, probes: u32, report: fn(u64, u64) -> Verdict) {
    let breaker = Arc::new(Breaker::new(settings(probes)));
    breaker.set(State::Open, Duration::ZERO);
    let start = generation(breaker.word.load(Ordering::Acquire));
    let ledger = Arc::new(Books::new(Ledger::default()));
    let threads: Vec<_> = (0..callers)
        .map(|caller| {
            let breaker = Arc::clone(&breaker);
            let ledger = Arc::clone(&ledger);
            thread::spawn(move || {
                for round in 0..rounds {
                    let now = Duration::from_secs(5 * (round + 1));
                    let (admit, changed) = breaker.admit(|| now);
                    notice(&ledger, changed);
                    let Admit::Permit(permit) = admit else {
                        continue;
                    };
                    let report = report(caller, round);
                    if permit.is_probe() {
                        let generation = generation(permit.word());
                        {
                            let mut books = ledger.lock().expect("ledger");
                            let out = books.out.entry(generation).or_default();
                            *out += 1;
                            assert!(
                                *out <= probes,
                                "{out} probe slots of generation {generation} spent, {probes} allowed"
                            );
                        }
                        let mut books = ledger.lock().expect("ledger");
                        match report {
                            // Its slot comes back: uncounted first.
                            Verdict::Ignored => {
                                *books.out.get_mut(&generation).expect("counted") -= 1;
                            }
                            // Its slot stays spent for the rest of the period.
                            Verdict::Success => {
                                *books.succeeded.entry(generation).or_default() += 1;
                            }
                            // The period ends.
                            Verdict::Failure => {}
                        }
                        drop(books);
                        let changed = breaker.record(
                            permit,
                            Report {
                                verdict: report,
                                slow: false,
                            },
                            || now,
                        );
                        if let Some(Notice::Changed {
                            to: State::Closed, ..
                        }) = changed
                        {
                            // Read after the report: every success the breaker counted was
                            // entered before it was reported.
                            let books = ledger.lock().expect("ledger");
                            let succeeded = books.succeeded.get(&generation).copied().unwrap_or(0);
                            assert!(
                                succeeded >= probes,
                                "closed after {succeeded} successes of {probes} probes"
                            );
                        }
                        notice(&ledger, changed);
                    } else {
                        let changed = breaker.record(
                            permit,
                            Report {
                                verdict: report,
                                slow: false,
                            },
                            || now,
                        );
                        notice(&ledger, changed);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a caller ran");
    }
    let word = breaker.word.load(Ordering::Acquire);
    let books = ledger.lock().expect("ledger");
    assert_eq!(
        books.notices,
        generation(word) - start,
        "transitions announced, against the generations the word went through"
    );
    if State::of(word) == State::HalfOpen {
        let generation = generation(word);
        let probes_word = breaker.probes.load(Ordering::Acquire);
        let successes = breaker.successes.load(Ordering::Acquire);
        assert_eq!(
            probes_word >> 32,
            generation,
            "the slots are of another period"
        );
        assert_eq!(
            successes >> 32,
            generation,
            "the successes are of another period"
        );
        assert_eq!(
            (probes_word & 0xffff_ffff) + (successes & 0xffff_ffff),
            u64::from(probes),
            "free slots and successes against the period's probes"
        );
    }
}

/// A success, a failure or nothing, by turns.
fn mixed(caller: u64, round: u64) -> Verdict {
    match (caller + round) % 3 {
        0 => Verdict::Success,
        1 => Verdict::Failure,
        _ => Verdict::Ignored,
    }
}

/// Successes only: every probe keeps its slot, so a slot taken twice shows as a probe too many.
fn successes(_caller: u64, _round: u64) -> Verdict {
    Verdict::Success
}

#[test]
fn three_callers_two_probes() {
    shuttle::check_pct(|| race(3, 2, 2, mixed), 2_000, 3);
}

#[test]
fn four_callers_one_probe() {
    shuttle::check_random(|| race(4, 2, 1, mixed), 1_000);
}

/// The run that found two transitions made by one `admit` call, one announced (see
/// `admit_slow`): about two runs in three found it with 1 000 schedules.
#[test]
fn two_callers_three_rounds_two_probes() {
    shuttle::check_pct(|| race(2, 3, 2, mixed), 3_000, 3);
}

#[test]
fn three_successful_probes_for_two_slots() {
    shuttle::check_pct(|| race(3, 1, 2, successes), 1_000, 3);
}
