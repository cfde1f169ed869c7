//! What a chaos layer tells its observer.

use std::fmt;

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
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Injected {
                layer,
                fault,
                by_header,
            } => f
                .debug_struct("Injected")
                .field("layer", layer)
                .field("fault", fault)
                .field("by_header", by_header)
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
}
