//! What a load shedder tells its observer.

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

use crate::state::Priority;

/// An event a load shedder emits: a request shed, or the adaptive limit changed. Borrows its
/// data; never emitted for an admitted request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A request was refused with an `overloaded` error.
    Shed {
        /// The layer's configured name.
        layer: &'a Name,
        /// The request's priority.
        priority: Priority,
        /// Calls in flight when it was refused.
        in_flight: usize,
        /// The limit then.
        limit: usize,
        /// The W3C trace id of the request's `traceparent` header, for a load shedder in
        /// `weir_core::protocol::Http` mode (read only here, on the refusal); `None` in
        /// `Plain` mode, or for a request with no valid header.
        trace_id: Option<TraceId>,
    },
    /// The adaptive limit moved.
    LimitChanged {
        /// The layer's configured name.
        layer: &'a Name,
        /// The limit before.
        from: usize,
        /// The limit now.
        to: usize,
    },
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "load_shed"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Shed { .. } => "shed",
            Self::LimitChanged { .. } => "limit_changed",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Shed { layer, .. } | Self::LimitChanged { layer, .. } => layer,
        }
    }

    /// Both `debug`: a shed is a per-request decision, and an adaptive limit moves with every
    /// sample window (a log line each would flood an `info` log; its value is a gauge).
    fn level(&self) -> Level {
        Level::Debug
    }

    /// A shed: fate `shed`, the request's priority as `reason` and `load_level`, and the
    /// `trace_id` an HTTP request carried.
    fn fields(&self) -> Fields {
        match self {
            Self::Shed {
                priority, trace_id, ..
            } => Fields::NONE
                .fate(Fate::Shed)
                .reason(priority.as_str())
                .load_level(priority.as_str())
                .trace_id(*trace_id),
            Self::LimitChanged { .. } => Fields::NONE,
        }
    }
}
