//! What a chaos layer tells its observer.

use std::fmt;

use weir_core::observer::{Fields, TraceId};
use weir_core::{Level, Name};

use crate::state::Fault;

/// An event a chaos layer emits: one per fault injected (a request with added latency and an
/// error emits two). Borrows its data; never emitted for a request left alone.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A fault was injected into a request.
    Injected {
        /// The layer's configured name.
        layer: &'a Name,
        /// The fault.
        fault: Fault,
        /// Whether the request's fault header asked for it (rather than a probability).
        by_header: bool,
        /// The W3C trace id of the request's `traceparent` header, in HTTP mode (read only
        /// when a fault is injected, never on the disabled path or for a request left alone).
        trace_id: Option<TraceId>,
    },
}

impl Event<'_> {
    /// The fault injected.
    #[must_use]
    pub const fn fault(&self) -> Fault {
        match *self {
            Self::Injected { fault, .. } => fault,
        }
    }

    /// The W3C trace id of the request's `traceparent` header, in HTTP mode.
    #[must_use]
    pub const fn trace_id(&self) -> Option<TraceId> {
        match *self {
            Self::Injected { trace_id, .. } => trace_id,
        }
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Injected {
                layer,
                fault,
                by_header,
                trace_id,
            } => f
                .debug_struct("Injected")
                .field("layer", layer)
                .field("fault", fault)
                .field("by_header", by_header)
                .field("trace_id", trace_id)
                .finish(),
        }
    }
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "chaos"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Injected { fault, .. } => match fault {
                Fault::Error => "injected_error",
                Fault::Status => "injected_status",
                Fault::Latency => "injected_latency",
                Fault::Stall => "injected_stall",
                Fault::Body => "injected_body",
                Fault::Behaviour => "injected_behaviour",
            },
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Injected { layer, .. } => layer,
        }
    }

    fn level(&self) -> Level {
        Level::Debug
    }

    /// The request's `trace_id` when it had one (HTTP mode).
    fn fields(&self) -> Fields {
        Fields::NONE.trace_id(self.trace_id())
    }
}
