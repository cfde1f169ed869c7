//! [`Reconfigure`] for [`TimeoutHandle`]: new settings, as a [`TimeoutBuilder`], for a running
//! layer (issue #25). Above both `builder` and `handle`, which do not import it.

use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;

use crate::builder::TimeoutBuilder;
use crate::handle::TimeoutHandle;
use crate::settings::TimeoutSettings;

/// New settings while the layer runs: a [`TimeoutBuilder`] with the layer's policy type and
/// protocol (its observer is not read), as [`TimeoutLayer::builder`](crate::TimeoutLayer::builder) or
/// `TimeoutConfig::builder` make it.
///
/// ```
/// use std::time::Duration;
/// use weir_core::reconfigure::Reconfigure;
/// use weir_timeout::TimeoutLayer;
///
/// let (_layer, handle) = TimeoutLayer::builder()
///     .timeout(Duration::from_secs(5))
///     .build_with_handle()?;
/// handle.apply(TimeoutLayer::builder().timeout(Duration::from_secs(2)))?;
/// let err = handle.apply(TimeoutLayer::builder().timeout(Duration::ZERO)).unwrap_err();
/// assert_eq!(err.field(), "timeout");
/// assert_eq!(handle.version(), 1, "a refused setting changes nothing");
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
impl<D: Clone, P> Reconfigure for TimeoutHandle<D, P> {
    type Settings = TimeoutBuilder<D, (), P>;

    /// The settings in force (the name is the layer's).
    fn settings(&self) -> TimeoutBuilder<D, (), P> {
        let (policy, settings) = self.given();
        TimeoutBuilder::from_parts(policy, settings)
    }

    /// Validates `settings` as `build()` would and applies them: every call from now on reads
    /// the new timeout (or route table), server-mode cap and floor and client-mode allowance,
    /// all of one version; a call already made keeps the deadline it started with. The name
    /// stays the layer's.
    ///
    /// # Errors
    ///
    /// `build()`'s [`ConfigError`], naming the field; nothing changes then.
    fn apply(&self, settings: TimeoutBuilder<D, (), P>) -> Result<(), ConfigError> {
        let (policy, plain) = settings.into_checked()?;
        self.apply_checked(policy, plain);
        Ok(())
    }
}

/// What a running layer reads now: the settings as last applied (or built), for a stack's
/// accessors and a status page.
impl<P: Clone> TimeoutHandle<P> {
    /// The policy in force: the timeout, or the route table (`None`: no timeout of the layer's
    /// own, only a propagated deadline's).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_core::reconfigure::Reconfigure;
    /// use weir_timeout::TimeoutLayer;
    ///
    /// let (_layer, handle) = TimeoutLayer::server(Duration::from_secs(5)).build_with_handle()?;
    /// handle.apply(TimeoutLayer::server(Duration::from_secs(2)))?;
    /// assert_eq!(handle.policy(), Some(Duration::from_secs(2)));
    /// assert_eq!(handle.timeout_settings().incoming, Some(Duration::from_secs(2)));
    /// # Ok::<(), weir_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn policy(&self) -> Option<P> {
        self.given().0
    }

    /// The other settings in force: the incoming cap and floor, propagation, `expose_deadline`
    /// and the name.
    #[must_use]
    pub fn timeout_settings(&self) -> TimeoutSettings {
        self.given().1
    }
}
