//! `HedgeHandle`: reads the layer's shared state.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_core::Name;

use crate::shared::Core;
use crate::state::Latency;

/// A read-only view of a hedge layer's state, shared by every service and clone it makes; from
/// [`HedgeLayer::handle`](crate::HedgeLayer::handle) or
/// [`HedgeBuilder::build_with_handle`](crate::HedgeBuilder::build_with_handle).
#[derive(Clone, Debug)]
pub struct HedgeHandle {
    core: Arc<Core>,
    name: Name,
}

impl HedgeHandle {
    pub(crate) const fn new(core: Arc<Core>, name: Name) -> Self {
        Self { core, name }
    }

    /// The layer's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// Hedges sent so far.
    #[must_use]
    pub fn hedges_sent(&self) -> u64 {
        self.core.hedges_sent.load(Ordering::Relaxed)
    }

    /// Requests answered by a hedge rather than their primary.
    #[must_use]
    pub fn hedges_won(&self) -> u64 {
        self.core.hedges_won.load(Ordering::Relaxed)
    }

    /// Attempts cancelled (dropped) because another attempt answered first or failed fatally.
    #[must_use]
    pub fn cancelled(&self) -> u64 {
        self.core.cancelled.load(Ordering::Relaxed)
    }

    /// Hedges that were due but refused by the hedge budget.
    #[must_use]
    pub fn budget_exhausted(&self) -> u64 {
        self.core.budget_exhausted.load(Ordering::Relaxed)
    }

    /// Whole hedges the budget holds now (`None` when unlimited).
    #[must_use]
    pub fn budget_available(&self) -> Option<u64> {
        self.core.available()
    }

    /// The percentile trigger's current delay: `None` with a fixed delay, or while fewer than
    /// `min_samples` latencies are known.
    #[must_use]
    pub fn percentile_delay(&self) -> Option<Duration> {
        self.core
            .latency
            .as_ref()
            .and_then(Latency::delay_us)
            .map(Duration::from_micros)
    }
}
