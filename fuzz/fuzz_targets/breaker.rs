//! The circuit breaker's state machine (weir-circuit-breaker), structure-aware: random
//! settings, then random calls, outcomes, drops and times, with several calls (and half-open
//! probes) outstanding at once, checked step by step against a reference model of the
//! documented rules (the crate's README, Semantics):
//!
//! - closed: every call goes through; a recorded outcome enters the window of the last `window`
//!   calls; after a failure the circuit opens when the failures in a row reach
//!   `consecutive_failures`, or when the window holds at least `minimum_calls` (at most the
//!   window, at least 1) and its failure share reaches `failure_rate`; a success never opens;
//! - open: calls are refused with the remaining open time until `open_base × 2^openings`
//!   (capped at `open_max`) has passed since it opened; the first call after that makes it
//!   half-open;
//! - half-open: exactly `probes` calls go through (a probe dropped or ignored gives its slot
//!   back); one probe failing opens it again, `probes` successes close it (a fresh window, the
//!   open time back to its base); with every slot taken for `max_half_open`, the next call
//!   opens it again;
//! - an outcome of a call admitted in an earlier period (state and generation) changes nothing.
//!
//! Every answer is compared: a ticket or a refusal (with its state and remaining time), the
//! change it made (from, to, reason), and the state after each step. Never more probes out than
//! `probes` in one half-open period.
#![no_main]

use std::collections::VecDeque;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weir_circuit_breaker::fuzzing::{Change, Machine, Outcome, Spec, Ticket};
use weir_circuit_breaker::{Reason, State};

#[derive(Arbitrary, Debug)]
struct Input {
    window: u8,
    failure_rate: Option<u8>,
    consecutive: Option<u8>,
    minimum: u8,
    open_ms: u8,
    open_max_ms: u16,
    probes: u8,
    max_half_open_ms: u16,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Time passes, in milliseconds.
    Advance(u16),
    /// A call arrives.
    Call,
    /// An outstanding call (by index) finishes.
    Finish(u8, Verdict),
    /// An outstanding call is dropped with no outcome.
    Drop(u8),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Verdict {
    Success,
    Failure,
    Ignored,
}

/// The model's view of an admitted call: the period it was admitted in and whether it probes.
#[derive(Clone, Copy, Debug)]
struct Held {
    generation: u64,
    probe: bool,
}

#[derive(Debug)]
struct Model {
    spec: Spec,
    state: State,
    generation: u64,
    /// The last `window` outcomes, `true` for a failure.
    outcomes: VecDeque<bool>,
    consecutive: u32,
    openings: u32,
    open_until: Duration,
    free_probes: u32,
    successes: u32,
    half_open_until: Duration,
}

impl Model {
    fn new(spec: Spec) -> Self {
        Self {
            spec,
            state: State::Closed,
            generation: 0,
            outcomes: VecDeque::new(),
            consecutive: 0,
            openings: 0,
            open_until: Duration::ZERO,
            free_probes: 0,
            successes: 0,
            half_open_until: Duration::ZERO,
        }
    }

    fn open_time(&self) -> Duration {
        if self.spec.open_base.is_zero() {
            return Duration::ZERO;
        }
        let grown = 1_u32
            .checked_shl(self.openings)
            .and_then(|m| self.spec.open_base.checked_mul(m))
            .unwrap_or(Duration::MAX);
        grown.min(self.spec.open_max)
    }

    fn move_to(&mut self, to: State, reason: Reason, now: Duration) -> Change {
        let from = self.state;
        self.generation += 1;
        self.state = to;
        match to {
            State::Open => {
                self.open_until = now.saturating_add(self.open_time());
                self.openings = self.openings.saturating_add(1);
            }
            State::HalfOpen => {
                self.free_probes = self.spec.probes;
                self.successes = 0;
                self.half_open_until = now.saturating_add(self.spec.max_half_open);
            }
            State::Closed => {
                self.outcomes.clear();
                self.consecutive = 0;
                self.openings = 0;
            }
            _ => unreachable!(),
        }
        Some((from, to, reason))
    }

    fn admit(&mut self, now: Duration) -> (Result<Held, (State, Option<Duration>)>, Change) {
        let mut change = None;
        for _ in 0..3 {
            let held = Held {
                generation: self.generation,
                probe: false,
            };
            match self.state {
                State::Closed => return (Ok(held), change),
                State::Open if now < self.open_until => {
                    return (Err((State::Open, Some(self.open_until - now))), change);
                }
                State::Open => change = self.move_to(State::HalfOpen, Reason::OpenTimeElapsed, now),
                State::HalfOpen if self.free_probes > 0 => {
                    self.free_probes -= 1;
                    let probe = Held {
                        probe: true,
                        ..held
                    };
                    return (Ok(probe), change);
                }
                State::HalfOpen if now < self.half_open_until => {
                    return (Err((State::HalfOpen, None)), change);
                }
                State::HalfOpen => change = self.move_to(State::Open, Reason::HalfOpenTimeout, now),
                other => unreachable!("{other:?}"),
            }
        }
        // Three transitions in a row are not chased: refused, in whatever state it is now.
        (Err((self.state, None)), change)
    }

    fn release(&mut self, held: Held) {
        if held.probe && held.generation == self.generation && self.free_probes < self.spec.probes {
            self.free_probes += 1;
        }
    }

    fn record(&mut self, held: Held, verdict: Verdict, now: Duration) -> Change {
        if held.generation != self.generation {
            return None;
        }
        if held.probe {
            return match verdict {
                Verdict::Failure => self.move_to(State::Open, Reason::ProbeFailed, now),
                Verdict::Ignored => {
                    self.release(held);
                    None
                }
                Verdict::Success => {
                    self.successes += 1;
                    (self.successes >= self.spec.probes)
                        .then(|| self.move_to(State::Closed, Reason::ProbesSucceeded, now))
                        .flatten()
                }
            };
        }
        let failed = match verdict {
            Verdict::Ignored => return None,
            Verdict::Success => false,
            Verdict::Failure => true,
        };
        if self.outcomes.len() == self.spec.window.max(1) as usize {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(failed);
        if !failed {
            self.consecutive = 0;
            return None;
        }
        self.consecutive += 1;
        if self
            .spec
            .consecutive_failures
            .is_some_and(|n| self.consecutive >= n)
        {
            return self.move_to(State::Open, Reason::ConsecutiveFailures, now);
        }
        let Some(rate) = self.spec.failure_rate else {
            return None;
        };
        let total = self.outcomes.len() as u64;
        let minimum = u64::from(self.spec.minimum_calls.min(self.spec.window).max(1));
        if total < minimum {
            return None;
        }
        let failures = self.outcomes.iter().filter(|&&f| f).count() as u64;
        let ppm = (rate * 10_000.0).round() as u64;
        (failures * 1_000_000 >= ppm * total)
            .then(|| self.move_to(State::Open, Reason::FailureRate, now))
            .flatten()
    }
}

fuzz_target!(|input: Input| {
    let spec = Spec {
        window: u32::from(input.window % 20) + 1,
        failure_rate: input.failure_rate.map(|p| f64::from(p % 100) + 1.0),
        consecutive_failures: input.consecutive.map(|n| u32::from(n % 10) + 1),
        minimum_calls: u32::from(input.minimum % 30),
        open_base: Duration::from_millis(u64::from(input.open_ms)),
        open_max: Duration::from_millis(u64::from(input.open_max_ms)),
        probes: u32::from(input.probes % 5) + 1,
        max_half_open: Duration::from_millis(u64::from(input.max_half_open_ms)),
    };
    let machine = Machine::new(spec);
    let mut model = Model::new(spec);
    let mut now = Duration::ZERO;
    let mut out: Vec<(Ticket, Held)> = Vec::new();
    for step in input.steps.iter().take(200) {
        match *step {
            Step::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            Step::Call => {
                let (answer, change) = machine.admit(now);
                let (expected, expected_change) = model.admit(now);
                assert_eq!(change, expected_change, "admit at {now:?}: {model:?}");
                match (answer, expected) {
                    (Ok(ticket), Ok(held)) => {
                        assert_eq!(ticket.is_probe(), held.probe, "admit at {now:?}: {model:?}");
                        if out.len() < 64 {
                            out.push((ticket, held));
                        } else {
                            machine.release(ticket);
                            model.release(held);
                        }
                    }
                    (answer, expected) => {
                        assert_eq!(answer.err(), expected.err(), "admit at {now:?}: {model:?}");
                    }
                }
            }
            Step::Finish(i, verdict) if !out.is_empty() => {
                let (ticket, held) = out.swap_remove(usize::from(i) % out.len());
                let outcome = match verdict {
                    Verdict::Success => Outcome::Success,
                    Verdict::Failure => Outcome::Failure,
                    Verdict::Ignored => Outcome::Ignored,
                };
                let change = machine.record(ticket, outcome, now);
                let expected = model.record(held, verdict, now);
                assert_eq!(
                    change, expected,
                    "{verdict:?} of {held:?} at {now:?}: {model:?}"
                );
            }
            Step::Drop(i) if !out.is_empty() => {
                let (ticket, held) = out.swap_remove(usize::from(i) % out.len());
                machine.release(ticket);
                model.release(held);
            }
            Step::Finish(..) | Step::Drop(_) => {}
        }
        assert_eq!(machine.state(), model.state, "after {step:?} at {now:?}");
        // Probe concurrency: never more probes out in this period than `probes`.
        let probing = out
            .iter()
            .filter(|(_, held)| held.probe && held.generation == model.generation)
            .count() as u32;
        assert!(probing + model.free_probes <= spec.probes || model.state != State::HalfOpen);
        assert!(probing <= spec.probes);
    }
});
