//! `TimeoutLayer`: constructors, presets and the client pair.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::Name;
use weir_core::protocol::{Auto, Http, Plain};

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
/// [`RouteTimeouts`](crate::RouteTimeouts)), `O` the observer, `P` the protocol (see
/// [`weir_core::protocol`]): [`Auto`] (the default of [`new`](Self::new) and
/// [`builder`](Self::builder): an `http::Request`'s deadline is read from and stored in its
/// extensions and, in server and client mode, its headers; a standard library type, a `u64`, a
/// `Duration` or a tuple, is only timed), [`Plain`] ([`plain`](Self::plain): any request type,
/// your own included, only timed) or [`Http`] ([`http`](Self::http): `http::Request`s only).
#[derive(Clone)]
pub struct TimeoutLayer<D = Duration, O = (), P = Auto> {
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

    /// The same layer in [`Http`] mode, for `http::Request`s only: their deadline is read from
    /// and stored in their extensions, as [`Auto`] does for them (see
    /// [`TimeoutBuilder::http`](crate::TimeoutBuilder::http)).
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

    /// The same layer in [`Plain`] mode: any request type, a struct of your own included, only
    /// timed (see [`TimeoutBuilder::plain`](crate::TimeoutBuilder::plain)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, service_fn};
    /// use weir_timeout::TimeoutLayer;
    ///
    /// struct Query(u32);
    ///
    /// let service = TimeoutLayer::new(Duration::from_secs(1))
    ///     .plain()
    ///     .layer(service_fn(|q: Query| async move { Ok::<_, std::convert::Infallible>(q.0) }));
    /// # let _ = service;
    /// ```
    #[must_use]
    pub fn plain(self) -> TimeoutLayer<D, O, Plain> {
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
