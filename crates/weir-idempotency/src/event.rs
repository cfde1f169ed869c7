//! What an idempotency layer tells its observer.

use http::StatusCode;
use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

/// An event an idempotency layer emits: a replay, or a request answered without running the
/// handler (409, 422, 400, 413, 503), or run without the store (fail open). Borrows its data;
/// never emitted for a request that simply runs.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A stored response was replayed (the handler was not called).
    Replayed {
        /// The layer's configured name.
        layer: &'a Name,
        /// The replayed status.
        status: StatusCode,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
    /// A repeat arrived while the first request with its key still runs: 409.
    InFlight {
        /// The layer's configured name.
        layer: &'a Name,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
    /// A key was reused with another request (method, path or body): 422.
    Mismatch {
        /// The layer's configured name.
        layer: &'a Name,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
    /// A repeat of a request whose response was not kept (over `max_response_bytes`): 409.
    NotReplayable {
        /// The layer's configured name.
        layer: &'a Name,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
    /// A request was refused before anything ran: a missing, malformed or over-long key
    /// (400), a body that could not be read (400) or is too large to fingerprint (413).
    Refused {
        /// The layer's configured name.
        layer: &'a Name,
        /// The status answered.
        status: StatusCode,
        /// Why, as the answer's `detail` says it.
        reason: &'static str,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
    /// The store could not answer and fails closed (or is full of running claims): 503.
    Unavailable {
        /// The layer's configured name.
        layer: &'a Name,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
    /// The store could not answer and fails open: the handler ran, nothing was kept.
    Bypassed {
        /// The layer's configured name.
        layer: &'a Name,
        /// The W3C trace id of the request's `traceparent` header, if it has a valid one.
        trace_id: Option<TraceId>,
    },
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "idempotency"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Replayed { .. } => "replayed",
            Self::InFlight { .. } => "in_flight",
            Self::Mismatch { .. } => "mismatch",
            Self::NotReplayable { .. } => "not_replayable",
            Self::Refused { .. } => "refused",
            Self::Unavailable { .. } => "unavailable",
            Self::Bypassed { .. } => "bypassed",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Replayed { layer, .. }
            | Self::InFlight { layer, .. }
            | Self::Mismatch { layer, .. }
            | Self::NotReplayable { layer, .. }
            | Self::Refused { layer, .. }
            | Self::Unavailable { layer, .. }
            | Self::Bypassed { layer, .. } => layer,
        }
    }

    /// A replay and a refusal are `debug` (per-request decisions); the store failing to answer
    /// is `warn` (a backend unreachable, which an operator acts on).
    fn level(&self) -> Level {
        match self {
            Self::Unavailable { .. } | Self::Bypassed { .. } => Level::Warn,
            _ => Level::Debug,
        }
    }

    /// A refusal (409, 422, 400, 413, 503): fate `rejected` and a `snake_case` reason
    /// (`in_flight`, `mismatch`, `unavailable`, and for [`Event::Refused`] `bad_request` or
    /// `too_large` by its status; its own sentence stays in the `Debug` form). Every event: the
    /// request's trace id, where it has one.
    fn fields(&self) -> Fields {
        let fields = match *self {
            Self::InFlight { .. } => Fields::NONE.fate(Fate::Rejected).reason("in_flight"),
            Self::Mismatch { .. } => Fields::NONE.fate(Fate::Rejected).reason("mismatch"),
            Self::Unavailable { .. } => Fields::NONE.fate(Fate::Rejected).reason("unavailable"),
            Self::Refused { status, .. } => Fields::NONE.fate(Fate::Rejected).reason(
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "too_large"
                } else {
                    "bad_request"
                },
            ),
            _ => Fields::NONE,
        };
        fields.trace_id(self.trace_id())
    }
}

impl Event<'_> {
    /// The W3C trace id of the request's `traceparent` header, if it had a valid one (read only
    /// when the event is built: a request that simply runs reads nothing).
    #[must_use]
    pub const fn trace_id(&self) -> Option<TraceId> {
        match *self {
            Self::Replayed { trace_id, .. }
            | Self::InFlight { trace_id, .. }
            | Self::Mismatch { trace_id, .. }
            | Self::NotReplayable { trace_id, .. }
            | Self::Refused { trace_id, .. }
            | Self::Unavailable { trace_id, .. }
            | Self::Bypassed { trace_id, .. } => trace_id,
        }
    }
}
