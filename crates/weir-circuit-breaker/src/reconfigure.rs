//! [`Reconfigure`] for the breakers' handles: new settings, as a [`CircuitBreakerBuilder`], for
//! a running layer (issue #25). Above both `builder` and `handle`, which do not import it.

use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;

use crate::builder::CircuitBreakerBuilder;
use crate::handle::{CircuitBreakerHandle, KeyedCircuitBreakerHandle};

/// New settings while the breaker runs: a [`CircuitBreakerBuilder`] (its classifier and observer
/// are not read), as [`CircuitBreakerLayer::builder`](crate::CircuitBreakerLayer::builder) or
/// `CircuitBreakerConfig::builder` make it. See the crate's *Changing settings at run time*.
///
/// ```
/// use std::time::Duration;
/// use weir_circuit_breaker::CircuitBreakerLayer;
/// use weir_core::reconfigure::Reconfigure;
///
/// let (_layer, handle) = CircuitBreakerLayer::builder().build_with_handle()?;
/// handle.apply(handle.settings().failure_rate(20.0).open_duration(Duration::from_secs(30)))?;
/// let err = handle.apply(handle.settings().half_open_probes(0)).unwrap_err();
/// assert_eq!(err.field(), "half_open_probes");
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
impl Reconfigure for CircuitBreakerHandle {
    type Settings = CircuitBreakerBuilder;

    /// The settings in force, as a builder (the name and the seed are the layer's).
    fn settings(&self) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::from_settings(self.current_settings())
    }

    /// Validates `settings` as `build()` would and applies them at once: the thresholds,
    /// minimum, open time, probes and half-open wait, the window, the slow-call threshold and
    /// backpressure. The state and the growth of the open time are kept; the name and the seed
    /// stay the layer's.
    ///
    /// # Errors
    ///
    /// `build()`'s [`ConfigError`], naming the field; or the window field when the breaker has
    /// held 8 window shapes already (see the crate's *Changing settings at run time*). Nothing
    /// changes then.
    fn apply(&self, settings: CircuitBreakerBuilder) -> Result<(), ConfigError> {
        self.apply_settings(settings.into_settings())
    }
}

/// New settings for every key's breaker (and the key-less one): the same
/// [`CircuitBreakerBuilder`] as [`CircuitBreakerHandle`]'s. The keyed settings (extractor, keys,
/// idle timeout, missing key) stay the layer's.
impl Reconfigure for KeyedCircuitBreakerHandle {
    type Settings = CircuitBreakerBuilder;

    /// The settings in force, as a builder.
    fn settings(&self) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::from_settings(self.current_settings())
    }

    /// Validates `settings` as `build()` would and applies them to every breaker there is
    /// (each key's, the overflow's, the key-less one) and to every key seen later.
    ///
    /// # Errors
    ///
    /// As [`CircuitBreakerHandle`]'s; checked for every breaker first, so none or all change.
    fn apply(&self, settings: CircuitBreakerBuilder) -> Result<(), ConfigError> {
        self.apply_settings(settings.into_settings())
    }
}
