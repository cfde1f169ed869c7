//! What a bulkhead tells its observer.

use std::fmt;
use std::time::Duration;

use weir_core::observer::{Fate, Fields, TraceId};
use weir_core::{Level, Name};

use crate::state::RejectReason;

/// An event a bulkhead emits, to the observer set with
/// [`BulkheadBuilder::observer`](crate::BulkheadBuilder::observer). Emitted on rejections and
/// when a queued request gets its permit, never for a call admitted at once; borrows its data,
/// so emitting allocates nothing.
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
        /// How long it waited in the queue before it was refused; `None` when refused on
        /// arrival.
        waited: Option<Duration>,
        /// The W3C trace id of the request's `traceparent` header, for an HTTP bulkhead (read
        /// only here, on the refusal); `None` for a refusal in `poll_ready` (backpressure mode,
        /// before the request exists).
        trace_id: Option<TraceId>,
    },
    /// A queued request got its permit and runs.
    Dequeued {
        /// The bulkhead's configured name.
        layer: &'a Name,
        /// The partition's key, for a partitioned bulkhead.
        partition: Option<&'a dyn fmt::Debug>,
        /// How long it waited in the queue.
        waited: Duration,
    },
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "bulkhead"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
            Self::Dequeued { .. } => "dequeued",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Rejected { layer, .. } | Self::Dequeued { layer, .. } => layer,
        }
    }

    /// `debug`: both are per-request decisions.
    fn level(&self) -> Level {
        Level::Debug
    }

    /// A rejection: fate `rejected`, its reason (`queue_full`, `max_wait`, `deadline`) and, after a
    /// wait, the wait, and the `trace_id` an HTTP request carried. A dequeued request: the wait
    /// (`weir_queue_wait_seconds`), no fate.
    fn fields(&self) -> Fields {
        match self {
            Self::Rejected {
                reason,
                waited,
                trace_id,
                ..
            } => {
                let fields = Fields::NONE
                    .fate(Fate::Rejected)
                    .reason(reason.as_str())
                    .trace_id(*trace_id);
                match waited {
                    Some(waited) => fields.wait(*waited),
                    None => fields,
                }
            }
            Self::Dequeued { waited, .. } => Fields::NONE.wait(*waited),
        }
    }
}
