//! `TimeoutLayer`: constructors, presets and the client pair.

use std::fmt;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::Name;

use weir_core::ConfigError;

use crate::builder::{TimeoutBuilder, check_attempt_within_total};
use crate::service::Timeout;
use crate::state::BelowFloor;

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
    config: Config<P, O>,
}

/// What every service of a layer is configured with.
#[derive(Clone)]
pub(crate) struct Config<P, O> {
    pub(crate) policy: Option<P>,
    pub(crate) name: Name,
    pub(crate) observer: O,
    pub(crate) incoming: Option<Duration>,
    pub(crate) propagate: Option<Duration>,
    /// Server mode: the shortest incoming deadline honoured as sent, and what to do below it.
    pub(crate) floor: Option<(Duration, BelowFloor)>,
    /// Server mode: a malformed incoming timeout header is refused (400), not ignored.
    pub(crate) reject_malformed: bool,
    /// Whether the deadline is stored in the request's extensions even when the request did not
    /// carry one (see `TimeoutBuilder::expose_deadline`).
    pub(crate) expose: bool,
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
            config: Config {
                policy: Some(timeout),
                name: Name::unnamed(),
                observer: (),
                incoming: None,
                propagate: None,
                floor: None,
                reject_malformed: false,
                expose: true,
            },
        }
    }

    /// A builder with nothing set: no timeout of its own, no header mode, name `"default"`.
    pub fn builder() -> TimeoutBuilder {
        TimeoutBuilder::new()
    }

    /// A server's timeout: the deadline the client sent (`grpc-timeout`, else `x-timeout-ms`),
    /// capped at `max`, and `max` for a request that sent none.
    pub fn server(max: Duration) -> TimeoutBuilder {
        TimeoutBuilder::new().timeout(max).incoming(max)
    }

    /// The recommended client pair: a `total` timeout to put outside retry (it sets the deadline
    /// every attempt shares, named `"total"`) and an `attempt` timeout to put inside retry
    /// (named `"attempt"`). Fails if the attempt timeout is zero or longer than the total (see
    /// [`check_attempt_within_total`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_timeout::TimeoutLayer;
    ///
    /// let (total, attempt) =
    ///     TimeoutLayer::total_and_attempt(Duration::from_secs(30), Duration::from_secs(10))?;
    /// // ServiceBuilder::new().layer(total).layer(retry).layer(attempt).service(client)
    /// # let _ = (total, attempt);
    /// # Ok::<(), weir_core::ConfigError>(())
    /// ```
    pub fn total_and_attempt(
        total: Duration,
        attempt: Duration,
    ) -> Result<(Self, Self), ConfigError> {
        check_attempt_within_total(attempt, total)?;
        let named = |timeout, name: &'static str| {
            let mut layer = Self::new(timeout);
            layer.config.name = Name::new(name);
            layer
        };
        Ok((named(total, "total"), named(attempt, "attempt")))
    }
}

impl<P, O> TimeoutLayer<P, O> {
    pub(crate) const fn from_config(config: Config<P, O>) -> Self {
        Self { config }
    }

    /// The name of this layer instance.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.config.name
    }
}

impl<S, P: Clone, O: Clone> Layer<S> for TimeoutLayer<P, O> {
    type Service = Timeout<S, P, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.config.clone())
    }
}

impl<P, O> fmt::Debug for TimeoutLayer<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl<P, O> fmt::Debug for Config<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("name", &self.name)
            .field(
                "policy",
                &self.policy.as_ref().map(|_| std::any::type_name::<P>()),
            )
            .field("incoming", &self.incoming)
            .field("propagate", &self.propagate)
            .field("expose", &self.expose)
            .finish_non_exhaustive()
    }
}
