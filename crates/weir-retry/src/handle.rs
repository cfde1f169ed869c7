//! A read handle over the state a retry layer shares: its budget and its counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use weir_core::Name;

use crate::budget::SharedBudget;
use crate::shared::Core;

/// Reads what a retry layer has done; from [`RetryBuilder::build_with_handle`] or
/// [`RetryLayer::handle`](crate::RetryLayer::handle). Cheap to clone,
/// usable from any thread.
///
/// [`RetryBuilder::build_with_handle`]: crate::RetryBuilder::build_with_handle
#[derive(Clone)]
pub struct RetryHandle {
    core: Arc<Core>,
    budget: SharedBudget,
    name: Name,
}

impl RetryHandle {
    pub(crate) const fn new(core: Arc<Core>, budget: SharedBudget, name: Name) -> Self {
        Self { core, budget, name }
    }

    /// The layer's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
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

    /// Retries the budget would allow now (`None` when it is unlimited). For a layer keyed per
    /// server, the budget of requests without a server name (see [`budget`](Self::budget)).
    #[must_use]
    pub fn available(&self) -> Option<u64> {
        self.budget.available()
    }

    /// The layer's budget: the one given to
    /// [`shared_budget`](crate::RetryBuilder::shared_budget), or the layer's own.
    #[must_use]
    pub fn budget(&self) -> &SharedBudget {
        &self.budget
    }
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandle")
            .field("retries", &self.retries())
            .field("gave_up", &self.gave_up())
            .field("budget_exhausted", &self.budget_exhausted())
            .field("budget", &self.budget)
            .finish()
    }
}
