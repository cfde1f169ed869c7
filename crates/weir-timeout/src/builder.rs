//! `TimeoutBuilder` and the client pair's check.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use weir_core::protocol::{Auto, Http, Plain};
use weir_core::{ConfigError, Name};

use crate::handle::TimeoutHandle;
use crate::layer::TimeoutLayer;
use crate::policy::RouteTimeouts;
use crate::settings::{PATTERN, TimeoutSettings};
use crate::shared::Live;
use crate::shared::Parts;
use crate::state::BelowFloor;

impl TimeoutLayer {
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
            layer.parts.name = Name::new(name);
            layer
        };
        Ok((named(total, "total"), named(attempt, "attempt")))
    }
}

/// `timeout` was zero.
pub(crate) fn zero_timeout() -> ConfigError {
    ConfigError::zero(
        PATTERN,
        "timeout",
        "must be greater than zero (set no timeout rather than a zero one)",
    )
}

/// A route's timeout (or the table's default, `(default)`) was zero.
fn zero_route_timeout(route: &str) -> ConfigError {
    ConfigError::zero(
        PATTERN,
        "routes",
        format!("the timeout of `{route}` must be greater than zero (use `None` for no timeout)"),
    )
}

/// Builds a [`TimeoutLayer`]: from [`TimeoutLayer::builder`] or a preset
/// ([`TimeoutLayer::server`]).
///
/// | setting | default | what it does |
/// |---|---|---|
/// | [`timeout`](Self::timeout) / [`timeout_fn`](Self::timeout_fn) / [`routes`](Self::routes) | none | this layer's own timeout, counted from `call` |
/// | [`incoming`](Self::incoming) | off | server mode: an incoming `grpc-timeout` or `x-timeout-ms` starts the deadline, capped at the given maximum |
/// | [`incoming_floor`](Self::incoming_floor) | none | server mode: an incoming deadline shorter than the floor is refused at once or raised to it |
/// | [`reject_malformed_incoming`](Self::reject_malformed_incoming) | off (ignored) | server mode: a malformed incoming `grpc-timeout` / `x-timeout-ms` is answered 400 / `INVALID_ARGUMENT` |
/// | [`propagate`](Self::propagate) | off | client mode: the time left, minus the allowance, is written on the outgoing request |
/// | [`expose_deadline`](Self::expose_deadline) | on, except in server mode | the deadline is stored in the request's extensions even when the request carried none |
/// | [`name`](Self::name) | `"default"` | the name in errors and events |
/// | [`settings`](Self::settings) | | every plain setting above at once, as a [`TimeoutSettings`] |
/// | [`observer`](Self::observer) | `()` | receives an [`Event`](crate::Event) for each timeout and expired request |
/// | [`plain`](Self::plain) / [`http`](Self::http) | [`Auto`]: an `http::Request`'s deadline is read and written, a standard library type (`u64`, `Duration`, a tuple, ...) only timed | [`Plain`]: any request type, your own included, only timed; [`Http`]: `http::Request`s only |
///
/// For an `http::Request` (in [`Auto`] or [`Http`] mode), whatever is configured, a deadline
/// already in the request's extensions is honoured (the earliest deadline wins), so a layer
/// with no timeout of its own still enforces the caller's. The header settings (`incoming`,
/// `incoming_floor`, `reject_malformed_incoming`, `propagate`) and `expose_deadline` act on
/// `http::Request`s only: a request with no HTTP parts, or a [`Plain`] layer's, is only timed.
///
/// `D` is the timeout policy, `O` the observer, `P` the protocol ([`Auto`], [`Plain`] or
/// [`Http`], from [`weir_core::protocol`]).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TimeoutBuilder<D = Duration, O = (), P = Auto> {
    policy: Option<D>,
    observer: O,
    settings: TimeoutSettings,
    invalid: Option<ConfigError>,
    _protocol: PhantomData<P>,
}

impl TimeoutBuilder {
    pub(crate) fn new() -> Self {
        Self {
            policy: None,
            observer: (),
            settings: TimeoutSettings::default(),
            invalid: None,
            _protocol: PhantomData,
        }
    }
}

impl<D, O, P> TimeoutBuilder<D, O, P> {
    fn with_policy<D2>(self, policy: D2, invalid: Option<ConfigError>) -> TimeoutBuilder<D2, O, P> {
        TimeoutBuilder {
            policy: Some(policy),
            observer: self.observer,
            settings: self.settings,
            invalid: self.invalid.or(invalid),
            _protocol: PhantomData,
        }
    }

    /// [`Http`] mode: the layer serves `http::Request`s only and reads and writes their
    /// deadline (the [`Deadline`](weir_core::Deadline) in the extensions, the earliest winning;
    /// incoming `grpc-timeout` / `x-timeout-ms` in server mode; outgoing ones in client mode),
    /// as the default [`Auto`] does for an `http::Request`. See [`weir_core::protocol`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_timeout::TimeoutLayer;
    ///
    /// let client = TimeoutLayer::builder()
    ///     .timeout(Duration::from_secs(2))
    ///     .propagate(Duration::from_millis(20))
    ///     .http()
    ///     .build()?;
    /// # let _ = client;
    /// # Ok::<(), weir_core::ConfigError>(())
    /// ```
    pub fn http(self) -> TimeoutBuilder<D, O, Http> {
        self.protocol()
    }

    /// [`Plain`] mode: any request type is served, a struct of your own included, with no impl
    /// to write for it, and only timed (no deadline is read or written, even in an
    /// `http::Request`). The default, [`Auto`], serves an `http::Request` and the standard
    /// library's types and does not build for a type of your own. See [`weir_core::protocol`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, service_fn};
    /// use weir_timeout::TimeoutLayer;
    ///
    /// struct Query(u32);
    ///
    /// let layer = TimeoutLayer::builder()
    ///     .timeout(Duration::from_secs(1))
    ///     .plain()
    ///     .build()?;
    /// let service = layer.layer(service_fn(|q: Query| async move {
    ///     Ok::<_, std::convert::Infallible>(q.0)
    /// }));
    /// # let _ = service;
    /// # Ok::<(), weir_core::ConfigError>(())
    /// ```
    pub fn plain(self) -> TimeoutBuilder<D, O, Plain> {
        self.protocol()
    }

    /// The protocol `P2` ([`Auto`], [`Plain`] or [`Http`]) chosen by type: what
    /// [`plain`](Self::plain) and [`http`](Self::http) do, for code generic over the protocol.
    pub fn protocol<P2>(self) -> TimeoutBuilder<D, O, P2> {
        TimeoutBuilder {
            policy: self.policy,
            observer: self.observer,
            settings: self.settings,
            invalid: self.invalid,
            _protocol: PhantomData,
        }
    }

    /// Every plain setting at once (server mode, client mode, the name, ...), replacing those
    /// set so far; the policy and the observer stay.
    pub fn settings(mut self, settings: TimeoutSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The same timeout for every request. Must be greater than zero.
    pub fn timeout(self, timeout: Duration) -> TimeoutBuilder<Duration, O, P> {
        let invalid = timeout.is_zero().then(zero_timeout);
        self.with_policy(timeout, invalid)
    }

    /// A timeout picked per request by `f` (by method, header, route, ...); `None` means no
    /// timeout of this layer's own for that request. A zero duration refuses the request at once.
    pub fn timeout_fn<F>(self, f: F) -> TimeoutBuilder<F, O, P> {
        self.with_policy(f, None)
    }

    /// A timeout per HTTP route, from a [`RouteTimeouts`] table. Every route must start with `/`
    /// and every timeout be greater than zero.
    pub fn routes(self, table: RouteTimeouts) -> TimeoutBuilder<RouteTimeouts, O, P> {
        let (default, entries) = table.parts();
        let invalid = if default.is_some_and(|d| d.is_zero()) {
            Some(zero_route_timeout("(default)"))
        } else {
            entries.iter().find_map(|e| {
                if !e.route.starts_with('/') {
                    Some(ConfigError::invalid(
                        PATTERN,
                        "routes",
                        format!("route `{}` must start with `/`", e.route),
                    ))
                } else if e.timeout.is_some_and(|d| d.is_zero()) {
                    Some(zero_route_timeout(&e.route))
                } else {
                    None
                }
            })
        };
        self.with_policy(table, invalid)
    }

    /// Server mode: the deadline of an incoming HTTP request starts from its `grpc-timeout`
    /// (or, without one, weir's `x-timeout-ms`), capped at `max` so that a client cannot ask
    /// for unbounded time. A malformed value is ignored. The layer's own timeout, if any, still
    /// applies: the earlier deadline wins. Must be greater than zero.
    pub const fn incoming(mut self, max: Duration) -> Self {
        self.settings.incoming = Some(max);
        self
    }

    /// Server mode: an incoming deadline shorter than `floor` is not honoured as sent: the
    /// request is refused at once ([`BelowFloor::Reject`]: a timeout of the caller's own
    /// deadline, 504 / `DEADLINE_EXCEEDED`, before the handler runs) or given `floor` instead
    /// ([`BelowFloor::Raise`]). Without it, a client's `x-timeout-ms: 1` is honoured (and
    /// answered with a timeout a millisecond later). Has no effect without
    /// [`incoming`](Self::incoming).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_timeout::{BelowFloor, TimeoutLayer};
    ///
    /// let layer = TimeoutLayer::server(Duration::from_secs(10))
    ///     .incoming_floor(Duration::from_millis(50), BelowFloor::Reject)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), weir_core::ConfigError>(())
    /// ```
    pub const fn incoming_floor(mut self, floor: Duration, below: BelowFloor) -> Self {
        self.settings.incoming_floor = Some((floor, below));
        self
    }

    /// Server mode: `true` refuses a request whose `grpc-timeout` or `x-timeout-ms` is present
    /// but malformed (`x-timeout-ms: abc`, `grpc-timeout: 123456789n`) with
    /// [`Error::bad_request`](weir_core::Error::bad_request), before the handler runs: 400 Bad
    /// Request / `INVALID_ARGUMENT` through weir-core's `ErrorResponseLayer`. `false` (the
    /// default) ignores a malformed value, as if it were absent, and logs it at debug level
    /// (with the `tracing` feature). Has no effect without [`incoming`](Self::incoming).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_timeout::TimeoutLayer;
    ///
    /// let layer = TimeoutLayer::server(Duration::from_secs(10))
    ///     .reject_malformed_incoming(true)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), weir_core::ConfigError>(())
    /// ```
    pub const fn reject_malformed_incoming(mut self, reject: bool) -> Self {
        self.settings.reject_malformed_incoming = reject;
        self
    }

    /// Client mode: every outgoing HTTP request with a deadline in force carries the time left,
    /// minus `allowance` (for the network), as `grpc-timeout` when its `content-type` is
    /// `application/grpc...`, else as `x-timeout-ms`. A request with no time left after the
    /// allowance fails at once with a timeout error and is not sent. A timeout header the
    /// request already carries counts as a deadline too (the earliest wins).
    pub const fn propagate(mut self, allowance: Duration) -> Self {
        self.settings.propagate = Some(allowance);
        self
    }

    /// Whether an HTTP request's [`Deadline`](weir_core::Deadline) is stored in its extensions,
    /// for the handler and the layers below (retry, bulkhead queues, client calls that
    /// propagate it).
    ///
    /// Default: always, except in server mode ([`incoming`](Self::incoming) without
    /// [`propagate`](Self::propagate)), where it is
    /// stored only when the request carried a deadline (`grpc-timeout` / `x-timeout-ms`) or an
    /// outer layer already stored one (tightened in place). A server's own timeout is enforced
    /// either way; storing it in `http::Extensions` costs an allocation per request (three on a
    /// request with no extensions yet), which a server that only needs the timeout should not
    /// pay (nor the clock reading: for a handler that answers at once, the timeout then counts
    /// from the first poll that finds it not done, as for a request with no HTTP parts). `true`
    /// stores it for every request, so a handler can take `Extension<Deadline>`; with the
    /// default, take `Option<Extension<Deadline>>`.
    pub const fn expose_deadline(mut self, expose: bool) -> Self {
        self.settings.expose_deadline = Some(expose);
        self
    }

    /// Names this layer instance in its errors and events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Sets the observer of [`Event`](crate::Event)s: a closure `Fn(&Event<'_>)`, or weir-core's
    /// `Tracing` / `Metrics`. It is cloned into each call.
    pub fn observer<O2>(self, observer: O2) -> TimeoutBuilder<D, O2, P> {
        TimeoutBuilder {
            policy: self.policy,
            observer,
            settings: self.settings,
            invalid: self.invalid,
            _protocol: PhantomData,
        }
    }

    /// The layer, or the first configuration rule broken.
    ///
    /// # Errors
    ///
    /// The first rule broken (a zero `timeout`, a zero `incoming` maximum, a route table's
    /// rules), naming its field.
    pub fn build(self) -> Result<TimeoutLayer<D, O, P>, ConfigError> {
        if let Some(invalid) = self.invalid {
            return Err(invalid);
        }
        self.settings.validate()?;
        Ok(TimeoutLayer::from_parts(Parts::new(
            self.policy,
            self.observer,
            self.settings,
        )))
    }
}

/// Checks the recommended client pair: the attempt timeout (inside retry) must be greater than
/// zero and not longer than the total timeout (outside retry), or the total could never allow a
/// second attempt and the attempt timeout would never fire.
///
/// ```
/// use std::time::Duration;
/// use weir_timeout::check_attempt_within_total;
///
/// assert!(check_attempt_within_total(Duration::from_secs(2), Duration::from_secs(10)).is_ok());
/// let err = check_attempt_within_total(Duration::from_secs(20), Duration::from_secs(10));
/// assert!(err.unwrap_err().is_conflict());
/// ```
pub fn check_attempt_within_total(attempt: Duration, total: Duration) -> Result<(), ConfigError> {
    if attempt.is_zero() || total.is_zero() {
        return Err(zero_timeout());
    }
    if attempt > total {
        return Err(ConfigError::conflict(
            PATTERN,
            "attempt",
            format!(
                "timeout ({attempt:?}) must not be longer than the `total` timeout ({total:?})"
            ),
        ));
    }
    Ok(())
}

/// The builder as a handle's settings, and the layer with a handle.
impl<D, O, P> TimeoutBuilder<D, O, P> {
    /// The policy and the settings, checked as [`build`](Self::build) checks them.
    pub(crate) fn into_checked(self) -> Result<(Option<D>, TimeoutSettings), ConfigError> {
        if let Some(invalid) = self.invalid {
            return Err(invalid);
        }
        self.settings.validate()?;
        Ok((self.policy, self.settings))
    }

    /// As [`build`](Self::build), with a [`TimeoutHandle`] that applies new settings to every
    /// service of the layer (see the crate's *Changing settings at run time*). Such a layer's
    /// services share its settings: each checks their version on every call (one load) and
    /// copies them when they changed.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_handle(
        self,
    ) -> Result<(TimeoutLayer<D, O, P>, TimeoutHandle<D, P>), ConfigError>
    where
        D: Clone,
    {
        let observer = self.observer;
        let (policy, settings) = TimeoutBuilder {
            policy: self.policy,
            observer: (),
            settings: self.settings,
            invalid: self.invalid,
            _protocol: PhantomData::<P>,
        }
        .into_checked()?;
        let mut parts = Parts::new(policy, observer, settings.clone());
        let live = Live::new(&parts, settings);
        parts.live = Some(Arc::clone(&live));
        Ok((TimeoutLayer::from_parts(parts), TimeoutHandle::new(live)))
    }
}

impl<D, P> TimeoutBuilder<D, (), P> {
    /// A builder holding `policy` and `settings` (what a handle's `settings()` gives).
    pub(crate) const fn from_parts(policy: Option<D>, settings: TimeoutSettings) -> Self {
        Self {
            policy,
            observer: (),
            settings,
            invalid: None,
            _protocol: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_rule_is_checked_and_named() {
        let err = TimeoutBuilder::new()
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.is_zero());
        assert_eq!((err.pattern(), err.field()), ("timeout", "timeout"));
        assert!(
            err.to_string()
                .starts_with("timeout: `timeout` must be greater than zero")
        );

        let err = TimeoutBuilder::new()
            .incoming(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timeout: `incoming` maximum must be greater than zero"
        );

        let table = RouteTimeouts::new(Some(ms(5))).route("/a", Some(Duration::ZERO));
        let err = TimeoutBuilder::new().routes(table).build().unwrap_err();
        assert!(err.is_zero() && err.field() == "routes", "{err}");
        assert!(err.to_string().contains("the timeout of `/a`"), "{err}");

        let table = RouteTimeouts::new(Some(Duration::ZERO));
        let err = TimeoutBuilder::new().routes(table).build().unwrap_err();
        assert!(err.to_string().contains("`(default)`"));

        let table = RouteTimeouts::new(None).prefix("api/", Some(ms(5)));
        let err = TimeoutBuilder::new().routes(table).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "timeout: `routes` route `api/` must start with `/`"
        );

        let err = check_attempt_within_total(ms(300), ms(200)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "timeout: `attempt` timeout (300ms) must not be longer than the `total` timeout (200ms)"
        );
        assert_eq!(check_attempt_within_total(ms(200), ms(200)), Ok(()));
        assert!(
            check_attempt_within_total(Duration::ZERO, ms(200))
                .unwrap_err()
                .is_zero()
        );
    }

    #[test]
    fn a_valid_configuration_builds() {
        assert!(
            TimeoutBuilder::new()
                .timeout(ms(10))
                .incoming(ms(100))
                .propagate(Duration::ZERO)
                .name("edge")
                .build()
                .is_ok()
        );
        // Nothing at all is valid: the layer enforces the deadline already in force.
        assert!(TimeoutBuilder::new().build().is_ok());
    }
}
