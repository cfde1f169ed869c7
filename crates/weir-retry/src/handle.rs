//! A read handle over the state a retry layer shares: its budget and its counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;
use weir_core::SharedRandom;

use crate::budget::BudgetState;

/// The state every service and clone of one layer shares.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) budget: BudgetState,
    pub(crate) rng: SharedRandom,
    pub(crate) retries: AtomicU64,
    pub(crate) gave_up: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
}

/// Reads what a retry layer has done; from [`RetryBuilder::build_with_handle`] or
/// [`RetryLayer::handle`](crate::RetryLayer::handle). Cheap to clone,
/// usable from any thread.
///
/// [`RetryBuilder::build_with_handle`]: crate::RetryBuilder::build_with_handle
#[derive(Clone)]
pub struct RetryHandle {
    core: Arc<Core>,
}

impl RetryHandle {
    pub(crate) const fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Retries made (scheduled) so far, by every service and clone of the layer.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.core.retries.load(Ordering::Relaxed)
    }

    /// Retryable failures returned without a retry, for any reason (attempts, budget, deadline,
    /// pushback, a request that cannot be replayed).
    #[must_use]
    pub fn gave_up(&self) -> u64 {
        self.core.gave_up.load(Ordering::Relaxed)
    }

    /// Retries the budget refused.
    #[must_use]
    pub fn budget_exhausted(&self) -> u64 {
        self.core.budget_exhausted.load(Ordering::Relaxed)
    }

    /// Retries the budget would allow now (`None` when it is unlimited).
    #[must_use]
    pub fn available(&self) -> Option<u64> {
        self.core.budget.available(Instant::now())
    }
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandle")
            .field("retries", &self.retries())
            .field("gave_up", &self.gave_up())
            .field("budget_exhausted", &self.budget_exhausted())
            .finish()
    }
}
