//! `CircuitBreakerLayer`: presets and the layer that wraps services.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::protocol::{Http, Plain};
use weir_core::{Observer, classify::AnyError};

use crate::event::Event;
use crate::handle::{CircuitBreakerHandle, KeyedCircuitBreakerHandle};
use crate::service::{CircuitBreaker, KeyedCircuitBreaker};
use crate::settings::CircuitBreakerSettings;
use crate::shared::{KeyedState, Lanes, Shared};
use crate::trailers::{Head, Trailers};

/// Wraps services in a [`CircuitBreaker`]; every service it makes, and every clone of them,
/// shares one breaker, created when the layer is built.
///
/// `P` says when a call's outcome is recorded: [`Head`] (the default) as the inner service
/// answers, [`Trailers`] at the end of the response body ([`trailers`](Self::trailers)). `R`
/// says what the breaker reads in a request: nothing ([`Plain`], the default, any request
/// type) or, for `http::Request`, the `traceparent` header of a refused one ([`Http`],
/// [`http`](Self::http)).
pub struct CircuitBreakerLayer<C = AnyError, O = (), P = Head, R = Plain> {
    lanes: Arc<Lanes<C, O>>,
    _protocol: PhantomData<fn() -> (P, R)>,
}

impl CircuitBreakerLayer {
    /// A breaker with the [default settings](crate::CircuitBreakerBuilder): opens when half of
    /// the last 100 calls failed, for 5 s, then lets 3 probes through. It cannot fail: the
    /// defaults keep every rule.
    #[must_use]
    pub fn new() -> Self {
        let shared = Shared::from_settings(CircuitBreakerSettings::DEFAULT, AnyError, ())
            .unwrap_or_else(|error| unreachable!("the default settings are valid: {error}"));
        Self::from_shared(shared)
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
            _protocol: PhantomData,
        }
    }
}

impl<C, O, P, R> CircuitBreakerLayer<C, O, P, R> {
    /// The same breaker, recording each call's outcome at the end of its response body rather
    /// than at its head ([`Trailers`]): for gRPC, whose status is in the trailers, with a
    /// classifier that reads them ([`weir_core::classify::GrpcStatus`]). The services it makes answer
    /// `http::Response<EndBody<B, BodyGuard<C, O>>>`.
    #[must_use]
    pub fn trailers(self) -> CircuitBreakerLayer<C, O, Trailers, R> {
        CircuitBreakerLayer {
            lanes: self.lanes,
            _protocol: PhantomData,
        }
    }

    /// The same breaker, for `http::Request`s ([`Http`] mode): a refused call's
    /// [`Event::Rejected`] carries the W3C trace id of the request's `traceparent` header,
    /// read only on the refusal (an admitted call's headers are never looked at), so the
    /// rejection joins the caller's trace.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::sync::{Arc, Mutex};
    /// use http::{Request, Response};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// use weir_circuit_breaker::{CircuitBreakerLayer, Event};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let layer = CircuitBreakerLayer::builder()
    ///     .observer(move |event: &Event<'_>| {
    ///         if let Event::Rejected { trace_id, .. } = event {
    ///             log.lock().unwrap().push(trace_id.map(|id| id.to_string()));
    ///         }
    ///     })
    ///     .build()
    ///     .unwrap()
    ///     .http();
    /// layer.handle().force_open();
    /// let svc = layer.layer(service_fn(|_: Request<()>| async {
    ///     Ok::<_, Infallible>(Response::new(()))
    /// }));
    /// let req = Request::builder()
    ///     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///     .body(())
    ///     .unwrap();
    /// assert!(svc.oneshot(req).await.is_err());
    /// assert_eq!(
    ///     *seen.lock().unwrap(),
    ///     [Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())]
    /// );
    /// # }
    /// ```
    #[must_use]
    pub fn http(self) -> CircuitBreakerLayer<C, O, P, Http> {
        CircuitBreakerLayer {
            lanes: self.lanes,
            _protocol: PhantomData,
        }
    }

    /// A handle on the breaker this layer (and every service it makes, and every clone) shares:
    /// the same as [`build_with_handle`](crate::CircuitBreakerBuilder::build_with_handle) returns, for
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

impl<C, O, P, R> Clone for CircuitBreakerLayer<C, O, P, R> {
    /// Shares the breaker.
    fn clone(&self) -> Self {
        Self {
            lanes: Arc::clone(&self.lanes),
            _protocol: PhantomData,
        }
    }
}

impl<S, C, O, P, R> Layer<S> for CircuitBreakerLayer<C, O, P, R> {
    type Service = CircuitBreaker<S, C, O, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, Arc::clone(&self.lanes))
    }
}

impl<C, O, P, R> fmt::Debug for CircuitBreakerLayer<C, O, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("name", &self.lanes.shared.name)
            .field("state", &self.lanes.shared.breaker.state())
            .field("settings", &self.lanes.shared.breaker.settings())
            .finish_non_exhaustive()
    }
}

/// Wraps services in a [`KeyedCircuitBreaker`]: one breaker per key, shared by every service
/// the layer makes and every clone. `P` and `R` as for [`CircuitBreakerLayer`].
pub struct KeyedCircuitBreakerLayer<E, C = AnyError, O = (), P = Head, R = Plain> {
    state: Arc<KeyedState<E, C, O>>,
    _protocol: PhantomData<fn() -> (P, R)>,
}

impl<E, C, O> KeyedCircuitBreakerLayer<E, C, O> {
    pub(crate) const fn from_state(state: Arc<KeyedState<E, C, O>>) -> Self {
        Self {
            state,
            _protocol: PhantomData,
        }
    }
}

impl<E, C, O, P, R> KeyedCircuitBreakerLayer<E, C, O, P, R> {
    /// The same breakers, recording each call's outcome at the end of its response body
    /// ([`Trailers`]): see [`CircuitBreakerLayer::trailers`].
    #[must_use]
    pub fn trailers(self) -> KeyedCircuitBreakerLayer<E, C, O, Trailers, R> {
        KeyedCircuitBreakerLayer {
            state: self.state,
            _protocol: PhantomData,
        }
    }

    /// The same breakers, for `http::Request`s ([`Http`] mode): a refusal's event carries the
    /// request's trace id; see [`CircuitBreakerLayer::http`].
    #[must_use]
    pub fn http(self) -> KeyedCircuitBreakerLayer<E, C, O, P, Http> {
        KeyedCircuitBreakerLayer {
            state: self.state,
            _protocol: PhantomData,
        }
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

impl<E, C, O, P, R> Clone for KeyedCircuitBreakerLayer<E, C, O, P, R> {
    /// Shares the breakers.
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            _protocol: PhantomData,
        }
    }
}

impl<S, E, C, O, P, R> Layer<S> for KeyedCircuitBreakerLayer<E, C, O, P, R> {
    type Service = KeyedCircuitBreaker<S, E, C, O, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker::new(inner, Arc::clone(&self.state))
    }
}

impl<E, C, O, P, R> fmt::Debug for KeyedCircuitBreakerLayer<E, C, O, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("name", &self.state.shared.name)
            .field("keys", &self.state.len())
            .finish_non_exhaustive()
    }
}
