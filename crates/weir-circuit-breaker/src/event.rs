//! The events a circuit breaker emits: every state change and every rejection.

use std::fmt;
use std::time::Duration;

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

use crate::state::{Reason, State};

/// What a circuit breaker tells its observer.
///
/// Emitted on every state change and every rejected call, never for an admitted call. It borrows
/// everything, so emitting costs nothing when the observer is `()`. `key` is the key of a keyed
/// breaker (see [`CircuitBreakerBuilder::keyed`](crate::CircuitBreakerBuilder::keyed)), `None` for a
/// plain one.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The circuit changed state.
    StateChange {
        /// The layer's name.
        layer: &'a Name,
        /// The key of a keyed breaker.
        key: Option<&'a (dyn fmt::Debug + Send + Sync)>,
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// A call was rejected without reaching the service.
    Rejected {
        /// The layer's name.
        layer: &'a Name,
        /// The key of a keyed breaker.
        key: Option<&'a (dyn fmt::Debug + Send + Sync)>,
        /// The state that rejected it (`Open`, `HalfOpen` with every probe slot taken, or
        /// `ForcedOpen`).
        state: State,
        /// The remaining open time, when known.
        retry_after: Option<Duration>,
        /// The W3C trace id of the request's `traceparent` header, for a breaker in
        /// `weir_core::protocol::Http` mode ([`CircuitBreakerLayer::http`](crate::CircuitBreakerLayer::http));
        /// read only here, on the refusal.
        trace_id: Option<TraceId>,
    },
    /// Metrics-only mode: a threshold was crossed; a normal breaker would have opened.
    ThresholdExceeded {
        /// The layer's name.
        layer: &'a Name,
        /// The key of a keyed breaker.
        key: Option<&'a (dyn fmt::Debug + Send + Sync)>,
        /// Which threshold.
        reason: Reason,
    },
}

impl Event<'_> {
    /// The key of a keyed breaker, `None` for a plain one.
    #[must_use]
    pub fn key(&self) -> Option<&(dyn fmt::Debug + Send + Sync)> {
        match *self {
            Self::StateChange { key, .. }
            | Self::Rejected { key, .. }
            | Self::ThresholdExceeded { key, .. } => key,
        }
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StateChange {
                layer,
                key,
                from,
                to,
                reason,
            } => f
                .debug_struct("StateChange")
                .field("layer", layer)
                .field("key", key)
                .field("from", from)
                .field("to", to)
                .field("reason", reason)
                .finish(),
            Self::Rejected {
                layer,
                key,
                state,
                retry_after,
                trace_id,
            } => f
                .debug_struct("Rejected")
                .field("layer", layer)
                .field("key", key)
                .field("state", state)
                .field("retry_after", retry_after)
                .field("trace_id", trace_id)
                .finish(),
            Self::ThresholdExceeded { layer, key, reason } => f
                .debug_struct("ThresholdExceeded")
                .field("layer", layer)
                .field("key", key)
                .field("reason", reason)
                .finish(),
        }
    }
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "circuit_breaker"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::StateChange { .. } => "state_change",
            Self::Rejected { .. } => "rejected",
            Self::ThresholdExceeded { .. } => "threshold_exceeded",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::StateChange { layer, .. }
            | Self::Rejected { layer, .. }
            | Self::ThresholdExceeded { layer, .. } => layer,
        }
    }

    /// A transition (and metrics-only mode's would-be transition) is `info`, a rejection
    /// `debug`.
    fn level(&self) -> Level {
        match self {
            Self::StateChange { .. } | Self::ThresholdExceeded { .. } => Level::Info,
            Self::Rejected { .. } => Level::Debug,
        }
    }

    /// A transition: `from`, `to` and its `reason`. A rejection: fate `rejected`, the state that
    /// refused as `reason` (`open`, `half_open`, `forced_open`), `retry_after` when known, and
    /// the `trace_id` an HTTP request carried. A threshold crossed in metrics-only mode: its
    /// `reason`.
    fn fields(&self) -> Fields {
        match *self {
            Self::StateChange {
                from, to, reason, ..
            } => Fields::NONE
                .transition(from.as_str(), to.as_str())
                .reason(reason.as_str()),
            Self::Rejected {
                state,
                retry_after,
                trace_id,
                ..
            } => Fields::NONE
                .fate(Fate::Rejected)
                .reason(state.as_str())
                .retry_after(retry_after)
                .trace_id(trace_id),
            Self::ThresholdExceeded { reason, .. } => Fields::NONE.reason(reason.as_str()),
        }
    }
}
