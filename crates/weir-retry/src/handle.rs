//! A read handle over the state a retry layer shares: its budget and its counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use weir_core::reconfigure::Reconfigure;
use weir_core::{ConfigError, Name};

use crate::budget::SharedBudget;
use crate::settings::RetrySettings;
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

/// New settings while the layer runs: a [`RetrySettings`] (what its configuration table
/// deserializes to). See the crate's *Changing settings at run time*.
///
/// ```
/// use weir_core::reconfigure::Reconfigure;
/// use weir_retry::{RetryBudget, RetryLayer};
///
/// let (_layer, handle) = RetryLayer::builder().build_with_handle()?;
/// let mut settings = handle.settings();
/// settings.max_attempts = 5;
/// settings.budget = RetryBudget::ratio(0.5);
/// handle.apply(settings)?;
/// assert_eq!(handle.settings().max_attempts, 5);
///
/// let mut zero = handle.settings();
/// zero.max_attempts = 0;
/// assert_eq!(handle.apply(zero).unwrap_err().field(), "max_attempts");
/// assert_eq!(handle.settings().max_attempts, 5, "a refused setting changes nothing");
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
impl Reconfigure for RetryHandle {
    type Settings = RetrySettings;

    /// The settings in force (the name and the seed are the layer's).
    fn settings(&self) -> RetrySettings {
        self.core.settings()
    }

    /// Validates `settings` as `build()` would and applies them: the attempts, backoff,
    /// `max_duration` and `max_server_delay` to requests that start from now on (a request in
    /// flight finishes its retries under the ones it started with), the budget's numbers at
    /// once (its counts or tokens carried over). A budget given to the builder with
    /// `shared_budget` is other layers' too: `settings.budget` is not applied to it
    /// ([`SharedBudget::apply`] changes it for all). The name and the seed stay the layer's.
    ///
    /// # Errors
    ///
    /// `build()`'s [`ConfigError`] naming the field, or [`SharedBudget::check`]'s (a budget of
    /// another kind or window); nothing changes then.
    fn apply(&self, settings: RetrySettings) -> Result<(), ConfigError> {
        self.core.apply(settings, &self.budget)
    }
}
