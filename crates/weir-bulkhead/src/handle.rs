//! A read handle over a bulkhead's shared state.

use std::fmt;
use std::sync::Arc;

use weir_core::Name;

use crate::permit::Core;
use crate::tuning::Tuning;

/// Reads a bulkhead's live figures; every clone of the layer and every service it made share
/// them. From [`BulkheadBuilder::build_with_handle`](crate::BulkheadBuilder::build_with_handle)
/// or [`BulkheadLayer::handle`](crate::BulkheadLayer::handle). It also changes the running
/// bulkhead's size and queue ([`Reconfigure`](weir_core::reconfigure::Reconfigure), see the
/// crate's "Changing settings at run time").
#[derive(Clone)]
pub struct BulkheadHandle {
    pub(crate) core: Arc<Core>,
    name: Name,
    pub(crate) tuning: Arc<Tuning>,
}

impl BulkheadHandle {
    pub(crate) const fn new(core: Arc<Core>, name: Name, tuning: Arc<Tuning>) -> Self {
        Self { core, name, tuning }
    }

    /// The layer's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// A snapshot of the figures (each read atomically, not all at one instant).
    #[must_use]
    pub fn stats(&self) -> BulkheadStats {
        BulkheadStats::of(&self.core)
    }
}

impl fmt::Debug for BulkheadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BulkheadHandle")
            .field(&self.stats())
            .finish()
    }
}

/// A bulkhead's figures at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadStats {
    /// The configured maximum of concurrent calls (the size in force, after any change at run
    /// time).
    pub max_concurrent: usize,
    /// Permits in use: calls running, HTTP bodies still streaming, permits being handed over.
    /// Above `max_concurrent` for a while after a shrink, until the calls above the new size
    /// have finished.
    pub in_flight: usize,
    /// Permits free (`max_concurrent - in_flight`, and 0 while `in_flight` is above it).
    pub available: usize,
    /// Requests waiting in the queue (or, in `backpressure()` mode, in `poll_ready`).
    pub queued: usize,
    /// Requests refused since the layer was built.
    pub rejected: u64,
}

impl BulkheadStats {
    pub(crate) fn of(core: &Core) -> Self {
        Self {
            max_concurrent: core.max(),
            in_flight: core.in_flight(),
            available: core.available(),
            queued: core.queued(),
            rejected: core.rejected(),
        }
    }
}
