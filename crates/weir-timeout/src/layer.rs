//! `TimeoutLayer`: constructors, presets and the client pair.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::Name;
use weir_core::protocol::{Http, Plain};

use crate::service::Timeout;
use crate::shared::{Flags, Parts};

/// A layer that bounds how long the inner service may take, and carries the deadline along.
///
/// - [`TimeoutLayer::new`]: the same timeout for every request.
/// - [`TimeoutLayer::builder`]: a per-request closure or a per-route table, server mode
///   (incoming `grpc-timeout` / `x-timeout-ms`), client mode (outgoing headers), a name and an
///   observer.
/// - [`TimeoutLayer::server`]: a server's edge, honouring the client's deadline up to a maximum.
/// - [`TimeoutLayer::total_and_attempt`]: the recommended client pair, checked.
///
/// The layer's configuration is plain data (no shared state): every service it makes and every
/// clone carries a copy.
///
/// `D` is the timeout policy ([`TimeoutPolicy`](crate::TimeoutPolicy): a `Duration`, a closure,
/// [`RouteTimeouts`](crate::RouteTimeouts)), `O` the observer, `P` the protocol: [`Plain`] (the
/// default of [`new`](Self::new) and [`builder`](Self::builder): any request type, a `Duration`
/// or a tuple as well as your own struct, is timed and nothing else) or
/// [`Http`](weir_core::protocol::Http) ([`TimeoutBuilder::http`](crate::TimeoutBuilder::http),
/// and [`server`](Self::server)'s: an `http::Request`, whose deadline is read from and stored in
/// its extensions and, in server and client mode, its headers). See
/// [`weir_core::protocol`].
#[derive(Clone)]
pub struct TimeoutLayer<D = Duration, O = (), P = Plain> {
    pub(crate) parts: Parts<D, O>,
    _protocol: PhantomData<P>,
}

impl TimeoutLayer {
    /// Every request gets `timeout`, counted from `call`. A zero timeout is raised to 1 ms (the
    /// rule of every `new` in weir); the [builder](Self::builder) refuses it instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_timeout::TimeoutLayer;
    ///
    /// const LAYER: TimeoutLayer = TimeoutLayer::new(Duration::from_secs(5));
    /// # let _ = LAYER;
    /// ```
    #[must_use]
    pub const fn new(timeout: Duration) -> Self {
        let timeout = if timeout.is_zero() {
            Duration::from_millis(1)
        } else {
            timeout
        };
        Self {
            parts: Parts {
                policy: Some(timeout),
                name: Name::unnamed(),
                observer: (),
                incoming: None,
                propagate: None,
                floor: None,
                flags: Flags::exposing(true),
                version: 0,
                live: None,
            },
            _protocol: PhantomData,
        }
    }
}

impl<D, O, P> TimeoutLayer<D, O, P> {
    pub(crate) const fn from_parts(parts: Parts<D, O>) -> Self {
        Self {
            parts,
            _protocol: PhantomData,
        }
    }

    /// The same layer in [`Http`] mode, for `http::Request`s: their deadline is read from and
    /// stored in their extensions (see [`TimeoutBuilder::http`](crate::TimeoutBuilder::http)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_core::protocol::Http;
    /// use weir_timeout::TimeoutLayer;
    ///
    /// let layer: TimeoutLayer<Duration, (), Http> = TimeoutLayer::new(Duration::from_secs(5)).http();
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn http(self) -> TimeoutLayer<D, O, Http> {
        TimeoutLayer::from_parts(self.parts)
    }

    /// The name of this layer instance.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.parts.name
    }
}

impl<S, D: Clone, O: Clone, P> Layer<S> for TimeoutLayer<D, O, P> {
    type Service = Timeout<S, D, O, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.parts.clone())
    }
}

impl<D, O, P> fmt::Debug for TimeoutLayer<D, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts.fmt(f)
    }
}
