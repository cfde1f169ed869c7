//! What the timeout layer reports to its observer.

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Deadline, Level, Name};

/// An event of a timeout layer, given by reference to its [`Observer`](weir_core::Observer).
///
/// Emitted only when a request fails (never for a request answered in time), and without
/// allocating. `pattern()` is `"timeout"`; `kind()` is `"timed_out"` or `"expired"`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The deadline passed while the inner service was working: its future was dropped (which
    /// cancels the work and releases what it held) and the caller got a timeout error.
    ///
    /// It carries no trace id: the request went to the inner service at `call`, and keeping its
    /// id until the timer fires would cost every call answered in time a header look-up and
    /// room in its future (see the crate's Semantics).
    #[non_exhaustive]
    TimedOut {
        /// The layer's name.
        layer: &'a Name,
        /// The deadline that passed.
        deadline: Deadline,
    },
    /// The request arrived with no time left (its deadline had passed, or in client mode the
    /// budget left was no more than the network allowance): the inner service was not called.
    #[non_exhaustive]
    Expired {
        /// The layer's name.
        layer: &'a Name,
        /// The deadline in force.
        deadline: Deadline,
        /// The W3C trace id of the request's `traceparent` header, for an `http::Request` in
        /// `Auto` or `Http` mode (read only here, on the refusal; a `Plain` layer reads none).
        trace_id: Option<TraceId>,
    },
}

impl Event<'_> {
    /// The deadline the event is about.
    #[must_use]
    pub const fn deadline(&self) -> Deadline {
        match self {
            Self::TimedOut { deadline, .. } | Self::Expired { deadline, .. } => *deadline,
        }
    }
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "timeout"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::TimedOut { .. } => "timed_out",
            Self::Expired { .. } => "expired",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::TimedOut { layer, .. } | Self::Expired { layer, .. } => layer,
        }
    }

    /// Both `debug`: a deadline exceeded is a per-request decision.
    fn level(&self) -> Level {
        Level::Debug
    }

    /// Fate `timed_out`, the kind as `reason` (`timed_out`, `expired`), and the deadline's
    /// `budget_left` when the event is emitted (zero once it has passed; for `expired` in client
    /// mode, what was left under the network allowance); for `expired`, the `trace_id` an HTTP
    /// request carried.
    fn fields(&self) -> Fields {
        let fields = Fields::NONE
            .fate(Fate::TimedOut)
            .budget_left(self.deadline().remaining());
        match self {
            Self::TimedOut { .. } => fields.reason("timed_out"),
            Self::Expired { trace_id, .. } => fields.reason("expired").trace_id(*trace_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_core::Event as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn events_name_the_pattern_kind_and_layer() {
        let name = Name::new("attempt");
        let deadline = Deadline::after(Duration::from_secs(1));
        let timed_out = Event::TimedOut {
            layer: &name,
            deadline,
        };
        let expired = Event::Expired {
            layer: &name,
            deadline,
            trace_id: None,
        };
        assert_eq!(
            (timed_out.pattern(), timed_out.kind()),
            ("timeout", "timed_out")
        );
        assert_eq!(expired.kind(), "expired");
        assert_eq!(expired.layer().as_str(), "attempt");
        assert_eq!(timed_out.deadline(), deadline);
        assert_eq!(timed_out.level(), Level::Debug);
        assert_eq!(
            expired.fields(),
            Fields::NONE
                .fate(Fate::TimedOut)
                .budget_left(Duration::from_secs(1))
                .reason("expired")
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(timed_out.fields().budget_left, Some(Duration::ZERO));
    }
}
