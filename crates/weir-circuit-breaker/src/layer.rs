//! `CircuitBreakerLayer`: presets and the layer that wraps services.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::{AnyError, Observer};

use crate::builder::CircuitBreakerBuilder;
use crate::event::Event;
use crate::handle::{CircuitBreakerHandle, KeyedCircuitBreakerHandle};
use crate::service::{CircuitBreaker, KeyedCircuitBreaker, KeyedState, Lanes, Shared};

/// Wraps services in a [`CircuitBreaker`]; every service it makes, and every clone of them,
/// shares one breaker, created when the layer is built.
pub struct CircuitBreakerLayer<C = AnyError, O = ()> {
    lanes: Arc<Lanes<C, O>>,
}

impl CircuitBreakerLayer {
    /// A breaker with the [default settings](CircuitBreakerBuilder): opens when half of the
    /// last 100 calls failed, for 5 s, then lets 3 probes through.
    #[must_use]
    pub fn new() -> Self {
        // The defaults are in range: this cannot fail.
        CircuitBreakerBuilder::new()
            .build()
            .unwrap_or_else(|error| unreachable!("the default settings are valid: {error}"))
    }

    /// Every setting, starting from the defaults.
    #[must_use]
    pub const fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// Opens after `n` failures in a row, and on nothing else (no failure rate).
    #[must_use]
    pub fn consecutive_failures(n: u32) -> CircuitBreakerBuilder {
        let mut builder = CircuitBreakerBuilder::new().consecutive_failures(n);
        builder.clear_failure_rate();
        builder
    }

    /// The settings of .NET's standard resilience pipeline (Polly): opens when 10 % of the calls
    /// of the last 30 s failed (10 buckets), once at least 100 calls were made; open for 5 s.
    #[must_use]
    pub const fn standard() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
            .failure_rate(10.0)
            .time_window(Duration::from_secs(30), 10)
            .minimum_calls(100)
            .open_duration(Duration::from_secs(5))
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, O> CircuitBreakerLayer<C, O> {
    pub(crate) fn from_shared(shared: Arc<Shared<C, O>>) -> Self {
        Self {
            lanes: Arc::new(Lanes::new(shared)),
        }
    }

    /// A handle on the breaker this layer (and every service it makes, and every clone) shares:
    /// the same as [`build_with_handle`](CircuitBreakerBuilder::build_with_handle) returns, for
    /// a layer built without one (a preset, `new()`). Each call makes another handle on the same
    /// breaker.
    ///
    /// ```
    /// use weir_circuit_breaker::{CircuitBreakerLayer, State};
    ///
    /// let layer = CircuitBreakerLayer::new();
    /// let handle = layer.handle();
    /// handle.force_open();
    /// assert_eq!(layer.handle().state(), State::ForcedOpen);
    /// ```
    #[must_use]
    pub fn handle(&self) -> CircuitBreakerHandle
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        CircuitBreakerHandle::new(Arc::clone(&self.lanes.shared))
    }
}

impl<C, O> Clone for CircuitBreakerLayer<C, O> {
    /// Shares the breaker.
    fn clone(&self) -> Self {
        Self {
            lanes: Arc::clone(&self.lanes),
        }
    }
}

impl<S, C, O> Layer<S> for CircuitBreakerLayer<C, O> {
    type Service = CircuitBreaker<S, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, Arc::clone(&self.lanes))
    }
}

impl<C, O> fmt::Debug for CircuitBreakerLayer<C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("name", &self.lanes.shared.name)
            .field("state", &self.lanes.shared.breaker.state())
            .field("settings", self.lanes.shared.breaker.settings())
            .finish_non_exhaustive()
    }
}

/// Wraps services in a [`KeyedCircuitBreaker`]: one breaker per key, shared by every service
/// the layer makes and every clone.
pub struct KeyedCircuitBreakerLayer<E, C = AnyError, O = ()> {
    state: Arc<KeyedState<E, C, O>>,
}

impl<E, C, O> KeyedCircuitBreakerLayer<E, C, O> {
    pub(crate) const fn from_state(state: Arc<KeyedState<E, C, O>>) -> Self {
        Self { state }
    }

    /// A handle on the breakers this layer (and every service it makes, and every clone)
    /// shares: the same as
    /// [`build_with_handle`](crate::KeyedCircuitBreakerBuilder::build_with_handle) returns.
    #[must_use]
    pub fn handle(&self) -> KeyedCircuitBreakerHandle
    where
        E: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        KeyedCircuitBreakerHandle::new(Arc::clone(&self.state))
    }
}

impl<E, C, O> Clone for KeyedCircuitBreakerLayer<E, C, O> {
    /// Shares the breakers.
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<S, E, C, O> Layer<S> for KeyedCircuitBreakerLayer<E, C, O> {
    type Service = KeyedCircuitBreaker<S, E, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker::new(inner, Arc::clone(&self.state))
    }
}

impl<E, C, O> fmt::Debug for KeyedCircuitBreakerLayer<E, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("name", &self.state.shared.name)
            .field("keys", &self.state.len())
            .finish_non_exhaustive()
    }
}
