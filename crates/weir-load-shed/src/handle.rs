//! A read handle over a load shedder's shared state.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use weir_core::Name;

use crate::shared::Finish;
use crate::state::LoadLevel;

/// Reads a load shedder's live figures and load level; from
/// [`LoadShedBuilder::build_with_handle`](crate::LoadShedBuilder::build_with_handle) or
/// [`LoadShedLayer::handle`](crate::LoadShedLayer::handle).
#[derive(Clone)]
pub struct LoadShedHandle {
    pub(crate) shared: Arc<dyn Finish>,
}

impl LoadShedHandle {
    pub(crate) fn new(shared: Arc<dyn Finish>) -> Self {
        Self { shared }
    }

    /// A snapshot of the figures.
    #[must_use]
    pub fn stats(&self) -> LoadShedStats {
        let core = self.shared.core();
        LoadShedStats {
            limit: core.limit.load(Relaxed),
            in_flight: core.flight.in_flight(),
            shed: core.shed.load(Relaxed),
            succeeded: core.flight.succeeded(),
            dropped: core.dropped.load(Relaxed),
            ignored: core.ignored.load(Relaxed),
        }
    }

    /// The load level now, from the calls in flight and the limit.
    #[must_use]
    pub fn load_level(&self) -> LoadLevel {
        self.shared.core().level()
    }

    /// The current limit (fixed, or where the adaptive algorithm has it now).
    #[must_use]
    pub fn limit(&self) -> usize {
        self.shared.core().limit.load(Relaxed)
    }

    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &Name {
        self.shared.name()
    }
}

impl fmt::Debug for LoadShedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoadShedHandle")
            .field(&self.stats())
            .finish()
    }
}

/// A load shedder's figures at one moment. Every admitted call ends in exactly one of
/// `succeeded`, `dropped` and `ignored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadShedStats {
    /// The limit now.
    pub limit: usize,
    /// Calls in flight.
    pub in_flight: usize,
    /// Requests refused.
    pub shed: u64,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls dropped: a timeout or an overload refusal from further down.
    pub dropped: u64,
    /// Calls that failed with an error that says nothing about load, or were cancelled.
    pub ignored: u64,
}
