//! [`Reconfigure`] for [`RateLimitHandle`]: new quotas for a running layer.

use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;

use crate::handle::RateLimitHandle;
use crate::settings::{RateLimitSettings, same_shape};

/// New quotas and tiers for a running layer, on any store (in memory, or weir-redis's
/// `RedisStore`, whose scripts receive the quotas with every call).
///
/// - **Validated** by the builder's rules (a default tier with no quota, an empty tier, a tier
///   named twice: the same [`ConfigError`]), then checked against the running table: the set of
///   tiers (their names, in order) and each tier's number of quotas cannot change while the layer
///   runs (every key keeps one state per quota of its tier), and such a change is a
///   [`ConfigError`] saying it needs a restart. A refused apply changes nothing.
/// - **Whole**: the new table is installed with one atomic store; a request reads the table
///   once, so its decision and its response fields come from one version, and a request that
///   read the old table finishes on it.
/// - **Key state carries over**, by each algorithm's own measure: GCRA and the leaky bucket keep
///   a key's schedule as time (what it spent is time until its bucket is full again, given back
///   at the new rate; a raised burst is room at once, a raised rate refills faster at once); the
///   token bucket keeps its tokens (at most the new burst) and restarts its refills on the new
///   period; the window algorithms keep their counts (a count made in a window of the old
///   period stays counted in the window of the new period that holds the change); the
///   sliding-window log keeps its log. None is reset: a lowered quota never admits more than
///   the new quota allows in any window that starts after the apply.
/// - **No cost on the request's path** until the first apply (one atomic load and a branch),
///   and after it one call out of line. Each apply keeps the table it replaced (a few hundred
///   bytes) until the layer is dropped, so a request never counts references.
///
/// ```
/// use weir_core::reconfigure::Reconfigure;
/// use weir_rate_limit::{Quota, RateLimitLayer, RateLimitSettings};
///
/// let (_layer, handle) = RateLimitLayer::per_second(10).build_with_handle().unwrap();
/// handle
///     .apply(RateLimitSettings::new().quota(Quota::per_second(50)))
///     .unwrap();
/// assert_eq!(handle.settings().quotas(), [Quota::per_second(50)]);
///
/// // A new tier needs a restart: nothing is applied.
/// let err = handle
///     .apply(
///         RateLimitSettings::new()
///             .quota(Quota::per_second(5))
///             .tier("gold", [Quota::per_second(100)]),
///     )
///     .unwrap_err();
/// assert!(err.to_string().contains("needs a restart"));
/// assert_eq!(handle.settings().quotas(), [Quota::per_second(50)]);
/// ```
impl<X, St, T, C, O, P> Reconfigure for RateLimitHandle<X, St, T, C, O, P> {
    type Settings = RateLimitSettings;

    fn settings(&self) -> RateLimitSettings {
        RateLimitSettings::of(self.limiter.tiers.current())
    }

    fn apply(&self, settings: RateLimitSettings) -> Result<(), ConfigError> {
        let table = settings.table()?;
        self.limiter.tiers.install(table, same_shape)
    }
}

impl<X, St, T, C, O, P> RateLimitHandle<X, St, T, C, O, P> {
    /// Whether [`apply`](Reconfigure::apply) would take `settings` now (the same checks),
    /// applying nothing: to validate every layer of a reloaded file before any is changed.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] `apply` would return.
    pub fn check(&self, settings: &RateLimitSettings) -> Result<(), ConfigError> {
        let table = settings.clone().table()?;
        same_shape(self.limiter.tiers.current(), &table)
    }

    /// How many times new settings were applied since the layer was built.
    #[must_use]
    pub fn applied(&self) -> usize {
        self.limiter.tiers.installed()
    }
}
