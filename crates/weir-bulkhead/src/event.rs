//! What a bulkhead tells its observer.

use std::fmt;

use weir_core::observer::{Fate, Fields};
use weir_core::{Level, Name};

use crate::state::RejectReason;

/// An event a bulkhead emits, to the observer set with
/// [`BulkheadBuilder::observer`](crate::BulkheadBuilder::observer). Emitted only on rejections,
/// never per admitted call; borrows its data, so emitting allocates nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A request was refused with a `bulkhead_full` error.
    Rejected {
        /// The bulkhead's configured name.
        layer: &'a Name,
        /// The partition's key, for a partitioned bulkhead.
        partition: Option<&'a dyn fmt::Debug>,
        /// Why it was refused.
        reason: RejectReason,
        /// Permits in use when it was refused.
        in_flight: usize,
        /// Requests waiting when it was refused.
        queued: usize,
    },
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "bulkhead"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Rejected { layer, .. } => layer,
        }
    }

    /// A rejection is `debug` (a per-request decision).
    fn level(&self) -> Level {
        Level::Debug
    }

    /// Fate `rejected`, its reason (`queue_full`, `max_wait`, `deadline`).
    fn fields(&self) -> Fields {
        match self {
            Self::Rejected { reason, .. } => {
                Fields::NONE.fate(Fate::Rejected).reason(reason.as_str())
            }
        }
    }
}
