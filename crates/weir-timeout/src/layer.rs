//! `TimeoutLayer`: constructors, presets and the client pair.

use std::fmt;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::Name;

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
#[derive(Clone)]
pub struct TimeoutLayer<P = Duration, O = ()> {
    pub(crate) parts: Parts<P, O>,
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
        }
    }
}

impl<P, O> TimeoutLayer<P, O> {
    pub(crate) const fn from_parts(parts: Parts<P, O>) -> Self {
        Self { parts }
    }

    /// The name of this layer instance.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.parts.name
    }
}

impl<S, P: Clone, O: Clone> Layer<S> for TimeoutLayer<P, O> {
    type Service = Timeout<S, P, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.parts.clone())
    }
}

impl<P, O> fmt::Debug for TimeoutLayer<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts.fmt(f)
    }
}
