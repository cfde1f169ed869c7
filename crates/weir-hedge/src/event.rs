//! What the hedge layer tells its observer.

use std::time::Duration;

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

/// An event of a hedge layer. Borrowed, and emitted only when a hedge is sent, wins, is refused
/// by the budget, an attempt fails non-fatally, or attempts are cancelled: never for a request
/// whose primary answered alone.
///
/// `trace_id` is the W3C trace id of the request's `traceparent` header, read from the kept copy
/// of an HTTP request when the event is built ([`Replay::trace_id`](weir_retry::Replay::trace_id));
/// `None` for a request that is not HTTP, not kept (not hedged), or whose header is malformed.
/// `latency` is measured only when the observer
/// [wants latencies](weir_core::Observer::wants_latency), else `None`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A hedge was sent.
    HedgeSent {
        /// The layer's name.
        layer: &'a Name,
        /// Its attempt number (2 for the first hedge; the primary is 1).
        attempt: u32,
        /// Why now.
        reason: Reason,
        /// The request's trace id.
        trace_id: Option<TraceId>,
    },
    /// A hedge's answer was taken (the primary's was not).
    HedgeWon {
        /// The layer's name.
        layer: &'a Name,
        /// The winning attempt (2 or more).
        attempt: u32,
        /// How long the winning hedge took, from its sending to its answer.
        latency: Option<Duration>,
        /// The request's trace id.
        trace_id: Option<TraceId>,
    },
    /// An attempt failed non-fatally (a transient failure, or an ignored error such as an open
    /// circuit inside): the next hedge follows, if any may, and the request goes on.
    AttemptFailed {
        /// The layer's name.
        layer: &'a Name,
        /// The attempt that failed (1 for the primary).
        attempt: u32,
        /// How long it took: a hedge from its sending, the primary from its first poll that
        /// found it pending (zero when it failed on its first poll), as the percentile trigger
        /// measures it.
        latency: Option<Duration>,
        /// The request's trace id.
        trace_id: Option<TraceId>,
    },
    /// Attempts still in flight were cancelled (their futures dropped) because another attempt
    /// answered, or one failed fatally.
    Cancelled {
        /// The layer's name.
        layer: &'a Name,
        /// How many were dropped.
        attempts: u32,
    },
    /// A hedge was due but the hedge budget had nothing left: no more hedges for this request.
    BudgetExhausted {
        /// The layer's name.
        layer: &'a Name,
        /// The request's trace id.
        trace_id: Option<TraceId>,
    },
}

/// Why a hedge was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The hedging delay passed with no answer (zero in parallel mode).
    Delay,
    /// An attempt failed with a non-fatal failure: the next hedge goes at once (gRFC A6).
    Failure,
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "hedge"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::HedgeSent { .. } => "hedge_sent",
            Self::HedgeWon { .. } => "hedge_won",
            Self::AttemptFailed { .. } => "attempt_failed",
            Self::Cancelled { .. } => "cancelled",
            Self::BudgetExhausted { .. } => "budget_exhausted",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::HedgeSent { layer, .. }
            | Self::HedgeWon { layer, .. }
            | Self::AttemptFailed { layer, .. }
            | Self::Cancelled { layer, .. }
            | Self::BudgetExhausted { layer, .. } => layer,
        }
    }

    fn level(&self) -> Level {
        Level::Debug
    }

    /// A hedge sent: fate `hedged`, `reason` (`delay` or `failure`), its `attempt`. A win: the
    /// winning `attempt` and its `latency`. An attempt that failed: reason `failure`, its
    /// `attempt` and `latency`. The budget refusing: reason `budget_exhausted`. Each but a
    /// cancellation: the request's `trace_id` when it had one.
    fn fields(&self) -> Fields {
        let latency = |fields: Fields, latency: Option<Duration>| match latency {
            Some(latency) => fields.latency(latency),
            None => fields,
        };
        match *self {
            Self::HedgeSent {
                attempt,
                reason,
                trace_id,
                ..
            } => Fields::NONE
                .fate(Fate::Hedged)
                .reason(match reason {
                    Reason::Delay => "delay",
                    Reason::Failure => "failure",
                })
                .attempt(attempt)
                .trace_id(trace_id),
            Self::HedgeWon {
                attempt,
                latency: took,
                trace_id,
                ..
            } => latency(Fields::NONE.attempt(attempt).trace_id(trace_id), took),
            Self::AttemptFailed {
                attempt,
                latency: took,
                trace_id,
                ..
            } => latency(
                Fields::NONE
                    .reason("failure")
                    .attempt(attempt)
                    .trace_id(trace_id),
                took,
            ),
            Self::Cancelled { .. } => Fields::NONE,
            Self::BudgetExhausted { trace_id, .. } => {
                Fields::NONE.reason("budget_exhausted").trace_id(trace_id)
            }
        }
    }
}
