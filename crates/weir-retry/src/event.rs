//! What the retry layer tells its observer.

use std::fmt;
use std::time::Duration;

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Failure, Level, Name};

/// An event of a retry layer: a retry scheduled, or a retryable failure given up on.
///
/// Borrowed and emitted only when an attempt failed, never for a first call that worked.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An attempt failed and another one follows after `delay`. The failed response has been
    /// dropped when this is emitted.
    Retry {
        /// The layer's name.
        layer: &'a Name,
        /// The attempt that failed (1 for the first call).
        attempt: u32,
        /// How long the layer waits before the next attempt.
        delay: Duration,
        /// The server chose the delay (`Retry-After`, `grpc-retry-pushback-ms`).
        hinted: bool,
        /// Why the attempt failed, as the classifier saw it.
        failure: Failure,
        /// How long the failed attempt took, from its call to its result; measured only when
        /// the observer [wants latencies](weir_core::Observer::wants_latency), else `None`.
        latency: Option<Duration>,
        /// The W3C trace id of the request's `traceparent` header, read from the kept copy of
        /// an HTTP request when this event is built ([`Replay::trace_id`](crate::Replay::trace_id)).
        trace_id: Option<TraceId>,
    },
    /// An attempt failed with a retryable failure but is not retried: its result is returned.
    GaveUp {
        /// The layer's name.
        layer: &'a Name,
        /// Calls made, the first one included.
        attempts: u32,
        /// Why no retry follows.
        reason: GiveUp,
        /// The last failure.
        failure: Failure,
        /// How long the last attempt took; measured only when the observer
        /// [wants latencies](weir_core::Observer::wants_latency), else `None`.
        latency: Option<Duration>,
        /// The W3C trace id of the request's `traceparent` header, read from the kept copy of
        /// an HTTP request when this event is built; `None` for a request that was not kept
        /// ([`GiveUp::NotReplayable`]).
        trace_id: Option<TraceId>,
    },
}

/// Why a retryable failure was not retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// `max_attempts` calls were made.
    MaxAttempts,
    /// The retry budget had nothing left: retrying would feed a retry storm.
    Budget,
    /// The next attempt could not start before the request's deadline.
    Deadline,
    /// The next attempt could not start within the total retry time (`max_duration`).
    MaxDuration,
    /// The server said not to retry (a negative or unreadable `grpc-retry-pushback-ms`).
    ServerPushback,
    /// The server asked to wait (`Retry-After`, `grpc-retry-pushback-ms`) longer than
    /// `max_server_delay`: weir never retries earlier than the server asked, so it stops.
    ServerDelay,
    /// The request cannot be sent again: a non-idempotent method, a body above the buffer limit
    /// or one that streamed past it, or a request the request predicate excluded.
    NotReplayable,
}

impl GiveUp {
    /// The reason in `snake_case`, for logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MaxAttempts => "max_attempts",
            Self::Budget => "budget_exhausted",
            Self::Deadline => "deadline",
            Self::MaxDuration => "max_duration",
            Self::ServerPushback => "server_pushback",
            Self::ServerDelay => "server_delay",
            Self::NotReplayable => "not_replayable",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "retry"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Retry { .. } => "retry",
            Self::GaveUp { reason, .. } => match reason {
                GiveUp::Budget => "budget_exhausted",
                _ => "gave_up",
            },
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Retry { layer, .. } | Self::GaveUp { layer, .. } => layer,
        }
    }

    /// Both `debug`: a retry and a refusal to retry (the budget's included) are per-request
    /// decisions; the budget's state is a gauge.
    fn level(&self) -> Level {
        Level::Debug
    }

    /// A retry: fate `retried`, `reason` (`server_hint` when the server chose the delay,
    /// `throttled`, or `transient`), the failed `attempt` and the `delay`. Giving up: the
    /// `reason` ([`GiveUp::as_str`]) and the calls made as `attempt`. Both: the attempt's
    /// `latency` when it was measured, and the request's `trace_id` when it had one.
    fn fields(&self) -> Fields {
        let fields = match *self {
            Self::Retry {
                attempt,
                delay,
                hinted,
                failure,
                ..
            } => Fields::NONE
                .fate(Fate::Retried)
                .reason(if hinted {
                    "server_hint"
                } else if failure.is_throttled() {
                    "throttled"
                } else {
                    "transient"
                })
                .attempt(attempt)
                .delay(delay),
            Self::GaveUp {
                attempts, reason, ..
            } => Fields::NONE.reason(reason.as_str()).attempt(attempts),
        };
        let (latency, trace_id) = match *self {
            Self::Retry {
                latency, trace_id, ..
            }
            | Self::GaveUp {
                latency, trace_id, ..
            } => (latency, trace_id),
        };
        let fields = fields.trace_id(trace_id);
        match latency {
            Some(latency) => fields.latency(latency),
            None => fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_core::{Event as _, Failure, Level, Name};

    use super::*;

    #[test]
    fn kinds_and_levels_for_loggers_and_metrics() {
        let name = Name::new("payments");
        let retry = Event::Retry {
            layer: &name,
            attempt: 1,
            delay: Duration::from_millis(5),
            hinted: false,
            failure: Failure::transient(),
            latency: None,
            trace_id: None,
        };
        assert_eq!(
            (retry.pattern(), retry.kind(), retry.level()),
            ("retry", "retry", Level::Debug)
        );
        assert_eq!(
            retry.fields(),
            Fields::NONE
                .fate(Fate::Retried)
                .reason("transient")
                .attempt(1)
                .delay(Duration::from_millis(5))
        );
        assert_eq!(retry.layer().as_str(), "payments");
        let gave_up = |reason| Event::GaveUp {
            layer: &name,
            attempts: 3,
            reason,
            failure: Failure::transient(),
            latency: None,
            trace_id: None,
        };
        let budget = gave_up(GiveUp::Budget);
        assert_eq!(
            (budget.kind(), budget.level()),
            ("budget_exhausted", Level::Debug)
        );
        let attempts = gave_up(GiveUp::MaxAttempts);
        assert_eq!(
            (attempts.kind(), attempts.level()),
            ("gave_up", Level::Debug)
        );
        assert_eq!(attempts.fields().reason, Some("max_attempts"));
        assert_eq!(attempts.fields().fate, None);
        assert_eq!(GiveUp::NotReplayable.to_string(), "not_replayable");
    }
}
