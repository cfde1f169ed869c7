//! The state machine, reachable from `fuzz/` (built only with `--cfg fuzzing`, which cargo-fuzz
//! sets): the `breaker` fuzz target drives [`Machine`] with random outcomes, times and
//! outstanding probes and checks every answer against a reference model of the documented
//! rules. Not part of the API.

use std::time::Duration;

use weir_core::backoff::Backoff;

use crate::state::{Admit, Breaker, Notice, Permit, Report, Settings, Verdict, WindowKind};
use crate::{Reason, State};

/// One breaker's state machine with a count window and an exponential open time.
#[derive(Debug)]
pub struct Machine(Breaker);

/// A call [`Machine::admit`] let through; give it back with [`Machine::record`] or
/// [`Machine::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    permit: Permit,
}

impl Ticket {
    /// Whether it holds one of the half-open probe slots.
    #[must_use]
    pub const fn is_probe(self) -> bool {
        self.permit.is_probe()
    }
}

/// A call's outcome, as the classifier reduces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Counted as a success.
    Success,
    /// Counted as a failure.
    Failure,
    /// Not counted.
    Ignored,
}

/// A state change (or, metrics-only, a threshold crossed).
pub type Change = Option<(State, State, Reason)>;

/// The settings of a [`Machine`].
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The count window's size (at least 1).
    pub window: u32,
    /// The failure rate that opens, in percent (`(0, 100]`), if any.
    pub failure_rate: Option<f64>,
    /// The failures in a row that open, if any.
    pub consecutive_failures: Option<u32>,
    /// The calls a rate needs.
    pub minimum_calls: u32,
    /// The first open time; doubled at each opening until the circuit closes.
    pub open_base: Duration,
    /// The open time's cap.
    pub open_max: Duration,
    /// The half-open probes.
    pub probes: u32,
    /// How long a half-open circuit with every slot taken waits before it opens again.
    pub max_half_open: Duration,
}

impl Machine {
    /// A closed breaker.
    #[must_use]
    pub fn new(spec: Spec) -> Self {
        Self(Breaker::new(Settings {
            window: WindowKind::Count(spec.window),
            failure_rate: spec.failure_rate.map(crate::state::ppm),
            slow_rate: None,
            consecutive_failures: spec.consecutive_failures,
            minimum_calls: spec.minimum_calls,
            open: Backoff::exponential(spec.open_base).max(spec.open_max),
            probes: spec.probes,
            max_half_open: spec.max_half_open,
            seed: Some(1),
        }))
    }

    /// The state now.
    #[must_use]
    pub fn state(&self) -> State {
        self.0.state()
    }

    /// A call at `now`: a ticket, or the state that refused it and the remaining open time.
    /// The change it made on the way, if any (the last one).
    pub fn admit(&self, now: Duration) -> (Result<Ticket, (State, Option<Duration>)>, Change) {
        let (admit, notice) = self.0.admit(|| now);
        let answer = match admit {
            Admit::Permit(permit) => Ok(Ticket { permit }),
            Admit::Reject { state, retry_after } => Err((state, retry_after)),
        };
        (answer, notice.and_then(change))
    }

    /// The outcome of a ticket's call, at `now`.
    pub fn record(&self, ticket: Ticket, outcome: Outcome, now: Duration) -> Change {
        let verdict = match outcome {
            Outcome::Success => Verdict::Success,
            Outcome::Failure => Verdict::Failure,
            Outcome::Ignored => Verdict::Ignored,
        };
        let report = Report {
            verdict,
            slow: false,
        };
        self.0
            .record(ticket.permit, report, || now)
            .and_then(change)
    }

    /// A ticket's call dropped with no outcome.
    pub fn release(&self, ticket: Ticket) {
        self.0.release(ticket.permit);
    }
}

fn change(notice: Notice) -> Change {
    match notice {
        Notice::Changed { from, to, reason } => Some((from, to, reason)),
        Notice::WouldOpen { .. } => None,
    }
}
