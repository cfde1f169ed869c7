//! The standard server stack: [`ServerStack`] and its builder.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::{Identity, Layer};
use weir_core::inspect::Registry;
use weir_core::protocol::Http;
use weir_core::{Observer, response::ErrorResponse, response::ErrorResponseLayer};
use weir_load_shed::{Fixed, LoadShed, LoadShedHandle, LoadShedLayer, Priority, Uniform};
use weir_timeout::{BelowFloor, Timeout, TimeoutBuilder, TimeoutHandle, TimeoutLayer};

use super::exempt::{DEFAULT_EXEMPT_PATHS, Exempt};
use weir_core::ConfigError;

use super::{SERVER, adopt, check_timeout};

/// The server preset's default timeout: 30 s (the total timeout of .NET's standard pipeline).
const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The server preset's default cap on calls in flight: 1 000 (.NET's standard pipeline: 1 000
/// permits, no queue).
const DEFAULT_MAX_IN_FLIGHT: usize = 1_000;

/// The standard server stack, one [`Layer`]: outermost first,
/// [`ErrorResponseLayer`] (every refusal becomes a 429 / 503 / 504 response, so the service's
/// error is `Infallible` and it mounts on an axum `Router`), an optional keyed rate limit,
/// load shedding ([`LoadShedLayer`] in [`Http`] mode: a call counts as in flight until its
/// response body ends, so a streamed body holds its slot to the last byte), and a server timeout ([`TimeoutLayer::server`]: the
/// client's deadline, capped at `timeout`). Why this order: see the crate's
/// [`# Ordering`](crate#ordering).
///
/// **Health probes are exempt**: a request for one of the exempt paths (by default
/// [`DEFAULT_EXEMPT_PATHS`](crate::DEFAULT_EXEMPT_PATHS), weir-health's `/livez`, `/readyz`,
/// `/startupz`) skips the rate limit and the load shedder (it still gets the response mapping
/// and the timeout), so a flood that makes the stack refuse everyone never makes it refuse the
/// probes that report on it; see [`ServerBuilder::exempt_paths`] and [`Exempt`].
///
/// Its parts stay reachable: [`load_shed`](Self::load_shed) is a handle on the shedder's
/// figures and load level, [`rate_limit`](Self::rate_limit) the rate limit layer (its handle
/// reads and resets keys), [`error_responses`](Self::error_responses) the response mapping; the
/// observer given to [`ServerBuilder::observer`] sees the shedder's and the timeout's events.
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use weir::ServerStack;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stack = ServerStack::builder().timeout(Duration::from_secs(5)).build().unwrap();
/// let shedder = stack.load_shed();
/// let server = ServiceBuilder::new().layer(stack).service(service_fn(|_req: Request<String>| async {
///     Ok::<_, std::io::Error>(Response::new(String::from("hello")))
/// }));
/// let Ok(response) = server.oneshot(Request::new(String::new())).await;
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(shedder.stats().in_flight, 1); // until its body ends (or is dropped)
/// drop(response);
/// assert_eq!(shedder.stats().succeeded, 1);
/// # }
/// ```
pub struct ServerStack<R = Identity, C = Uniform, O = (), F = Identity, X = Identity> {
    errors: ErrorResponseLayer,
    /// The fallback slot, inside the response mapping, the rate limit and the shedder, outside
    /// the timeout: `Identity` (nothing, and no cost) unless filled.
    fallback: F,
    rate_limit: R,
    shed: LoadShedLayer<Fixed, C, O, Http>,
    /// The chaos slot, innermost (around the handler, inside the timeout): `Identity`
    /// (nothing, and no cost) unless filled.
    chaos: X,
    timeout_layer: TimeoutLayer<Duration, O>,
    /// Applies new settings to `timeout_layer` (a configuration reload), and reads them back.
    timeout_handle: TimeoutHandle<Duration>,
    /// The shedder's handle: its limit, live.
    shed_handle: LoadShedHandle,
    exempt: Arc<[Cow<'static, str>]>,
}

impl ServerStack {
    /// A builder with the defaults: no rate limit, 1 000 calls in flight, a 30 s timeout.
    #[must_use]
    pub const fn builder() -> ServerBuilder {
        ServerBuilder {
            settings: ServerSettings {
                errors: ErrorResponseLayer::new(),
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
                timeout: DEFAULT_SERVER_TIMEOUT,
                expose_deadline: false,
                incoming_floor: None,
                shares: Vec::new(),
                exempt: None,
                registry: None,
            },
            rate_limit: Identity::new(),
            priority: Uniform,
            observer: (),
        }
    }
}

impl<R, C, O, F, X> ServerStack<R, C, O, F, X> {
    /// Fills the fallback slot: inside [`ErrorResponseLayer`], the rate limit and the load
    /// shedder, outside the timeout. Order, outermost first: response mapping → rate limit →
    /// shedder → **fallback** → timeout → your service. Why there:
    ///
    /// - inside the response mapping, so whatever the fallback does not answer is still mapped
    ///   to a response (a 504, a 503);
    /// - outside the timeout, so a handler past its time gets the degraded answer, not a 504;
    /// - inside the rate limit and the shedder, so a client over its quota still gets its 429
    ///   and an overload its 503 (honest backpressure, which clients and balancers act on), the
    ///   call that fell back still counts in flight until its body ends, and the fallback's
    ///   response type is your service's (with its body type, not the shedder's);
    /// - the health probes (the exempt paths) bypass it, as they bypass the rate limit and the
    ///   shedder: a failing readiness probe must stay a failure.
    ///
    /// To answer the shedder's and the rate limit's refusals too, put a second fallback around
    /// the whole stack. `fallback` is any layer; a weir-fallback `FallbackLayer` in practice (with
    /// `.classify(HttpStatus::new())` to answer failed responses, and `.http()` to mark its
    /// answers).
    ///
    /// ```
    /// # #[cfg(not(feature = "fallback"))] fn main() {}
    /// # #[cfg(feature = "fallback")]
    /// use axum::body::Body;
    /// # #[cfg(feature = "fallback")]
    /// use http::{Request, Response, StatusCode};
    /// # #[cfg(feature = "fallback")]
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// # #[cfg(feature = "fallback")]
    /// use weir::{core::classify::HttpStatus, ServerStack};
    /// # #[cfg(feature = "fallback")]
    /// use weir::fallback::{Cause, FallbackLayer};
    ///
    /// # #[cfg(feature = "fallback")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let fallback = FallbackLayer::builder()
    ///     .classify(HttpStatus::new())
    ///     .value(|_: Cause<'_, Response<Body>, weir::core::BoxError>| {
    ///         Some(Response::new(Body::from("bestsellers")))
    ///     })
    ///     .http()
    ///     .build()
    ///     .unwrap();
    /// let stack = ServerStack::builder().build().unwrap().fallback(fallback);
    /// let server = ServiceBuilder::new().layer(stack).service(service_fn(|_req: Request<Body>| async {
    ///     let mut down = Response::new(Body::from("down"));
    ///     *down.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    ///     Ok::<_, std::io::Error>(down)
    /// }));
    /// let Ok(response) = server.oneshot(Request::new(Body::empty())).await;
    /// assert_eq!(response.headers()["weir-fallback"], "value");
    /// # }
    /// ```
    pub fn fallback<F2>(self, fallback: F2) -> ServerStack<R, C, O, F2, X> {
        ServerStack {
            errors: self.errors,
            fallback,
            rate_limit: self.rate_limit,
            shed: self.shed,
            chaos: self.chaos,
            timeout_layer: self.timeout_layer,
            timeout_handle: self.timeout_handle,
            shed_handle: self.shed_handle,
            exempt: self.exempt,
        }
    }

    /// The fallback slot's layer (`Identity` when empty).
    #[must_use]
    pub const fn fallback_layer(&self) -> &F {
        &self.fallback
    }

    /// Fills the chaos slot, innermost: right around your service, inside the timeout. Order,
    /// outermost first: response mapping → rate limit → shedder → fallback → timeout →
    /// **chaos** → your service. An injected fault then looks like your handler failing, slow
    /// or hanging, and every layer outside is exercised: the timeout answers a stall with a
    /// 504, the shedder holds the call's slot through injected latency, the fallback answers an
    /// injected error or status, the response mapping maps what is left. Like the fallback,
    /// the health probes (the exempt paths) bypass it: an experiment must not fail the probes
    /// that decide whether the instance gets traffic. Empty (`Identity`, no cost) unless
    /// filled. `chaos` is any layer; a weir-chaos `ChaosLayer` in practice (`ChaosLayer::http()`
    /// to inject statuses and failing bodies), whose handle turns it on and off at run time.
    ///
    /// ```
    /// # #[cfg(not(feature = "chaos"))] fn main() {}
    /// # #[cfg(feature = "chaos")]
    /// use http::{Request, Response, StatusCode};
    /// # #[cfg(feature = "chaos")]
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// # #[cfg(feature = "chaos")]
    /// use weir::ServerStack;
    /// # #[cfg(feature = "chaos")]
    /// use weir::chaos::ChaosLayer;
    ///
    /// # #[cfg(feature = "chaos")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chaos = ChaosLayer::http()
    ///     .status(1.0, StatusCode::SERVICE_UNAVAILABLE)
    ///     .build()
    ///     .unwrap();
    /// let stack = ServerStack::builder().build().unwrap().chaos(chaos);
    /// let server = ServiceBuilder::new().layer(stack).service(service_fn(|_req: Request<String>| async {
    ///     Ok::<_, std::io::Error>(Response::new(String::from("hello")))
    /// }));
    /// let Ok(response) = server.clone().oneshot(Request::new(String::new())).await;
    /// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// // The probes bypass the slot.
    /// let probe = Request::get("/readyz").body(String::new()).unwrap();
    /// let Ok(response) = server.oneshot(probe).await;
    /// assert_eq!(response.status(), StatusCode::OK);
    /// # }
    /// ```
    pub fn chaos<X2>(self, chaos: X2) -> ServerStack<R, C, O, F, X2> {
        ServerStack {
            errors: self.errors,
            fallback: self.fallback,
            rate_limit: self.rate_limit,
            shed: self.shed,
            chaos,
            timeout_layer: self.timeout_layer,
            timeout_handle: self.timeout_handle,
            shed_handle: self.shed_handle,
            exempt: self.exempt,
        }
    }

    /// The chaos slot's layer (`Identity` when empty).
    #[must_use]
    pub const fn chaos_layer(&self) -> &X {
        &self.chaos
    }

    /// The timeout this stack applies now: the one it was built with, or the last one applied
    /// through [`timeout_handle`](Self::timeout_handle) (a configuration reload).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout_handle
            .policy()
            .unwrap_or_else(|| unreachable!("a server stack's timeout always has a duration"))
    }

    /// A handle that applies new settings to the stack's timeout while it runs (the timeout,
    /// the floor, `expose_deadline`): `weir_core::reconfigure::Reconfigure::apply`, with a
    /// `TimeoutLayer::server(..)` builder; its name stays `"server"`. A call already made keeps
    /// its deadline. [`timeout`](Self::timeout) and [`incoming_floor`](Self::incoming_floor)
    /// report the settings in force, the applied ones.
    #[must_use]
    pub fn timeout_handle(&self) -> TimeoutHandle<Duration> {
        self.timeout_handle.clone()
    }

    /// The floor under a client's deadline, and what is done below it
    /// ([`ServerBuilder::incoming_floor`]); `None` by default. The one in force: as built, or
    /// as last applied through [`timeout_handle`](Self::timeout_handle).
    #[must_use]
    pub fn incoming_floor(&self) -> Option<(Duration, BelowFloor)> {
        self.timeout_handle.timeout_settings().incoming_floor
    }

    /// The cap on calls in flight now: as built, or as last applied through
    /// [`load_shed`](Self::load_shed)'s handle (a configuration reload).
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.shed_handle.limit()
    }

    /// The rate limit layer (`Identity` when there is none); a `RateLimitLayer`'s `handle()`
    /// reads and resets its keys.
    #[must_use]
    pub const fn rate_limit(&self) -> &R {
        &self.rate_limit
    }

    /// The paths that skip the rate limit and the load shedder (the health probes).
    #[must_use]
    pub fn exempt_paths(&self) -> &[Cow<'static, str>] {
        &self.exempt
    }

    /// The response mapping, outermost: how refusals are answered.
    #[must_use]
    pub const fn error_responses(&self) -> &ErrorResponseLayer {
        &self.errors
    }

    /// A handle on the load shedder shared by every service of this stack and its clones: calls
    /// in flight, shed and answered counts, the load level (for graceful degradation).
    #[must_use]
    pub fn load_shed(&self) -> LoadShedHandle
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<weir_load_shed::Event<'a>> + Send + Sync + 'static,
    {
        self.shed_handle.clone()
    }
}

/// The service a [`ServerStack`] makes of `S`: the response mapping around [`Exempt`], which
/// sends the probes to the timeout and `S` directly, and every other request through the rate
/// limit `R`, the load shedder, the fallback slot `F`, the timeout and the chaos slot `X`.
type ServerService<S, R, C, O, F, X> = ErrorResponse<
    Exempt<
        <R as Layer<
            LoadShed<
                <F as Layer<Timeout<<X as Layer<S>>::Service, Duration, O>>>::Service,
                Fixed,
                C,
                O,
                Http,
            >,
        >>::Service,
        Timeout<S, Duration, O>,
    >,
>;

impl<S, R, C, O, F, X> Layer<S> for ServerStack<R, C, O, F, X>
where
    S: Clone,
    X: Layer<S>,
    F: Layer<Timeout<X::Service, Duration, O>>,
    R: Layer<LoadShed<F::Service, Fixed, C, O, Http>>,
    O: Clone,
{
    type Service = ServerService<S, R, C, O, F, X>;

    fn layer(&self, inner: S) -> Self::Service {
        let direct = self.timeout_layer.layer(inner.clone());
        let protected = self.rate_limit.layer(
            self.shed.layer(
                self.fallback
                    .layer(self.timeout_layer.layer(self.chaos.layer(inner))),
            ),
        );
        self.errors
            .layer(Exempt::new(protected, direct, Arc::clone(&self.exempt)))
    }
}

impl<R: Clone, C, O: Clone, F: Clone, X: Clone> Clone for ServerStack<R, C, O, F, X> {
    /// Shares every layer's state (rate limit buckets, the in-flight count).
    fn clone(&self) -> Self {
        Self {
            errors: self.errors,
            fallback: self.fallback.clone(),
            rate_limit: self.rate_limit.clone(),
            shed: self.shed.clone(),
            chaos: self.chaos.clone(),
            timeout_layer: self.timeout_layer.clone(),
            timeout_handle: self.timeout_handle.clone(),
            shed_handle: self.shed_handle.clone(),
            exempt: Arc::clone(&self.exempt),
        }
    }
}

impl<R, C, O, F, X> fmt::Debug for ServerStack<R, C, O, F, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStack")
            .field("error_responses", &self.errors)
            .field("timeout", &self.timeout())
            .field("incoming_floor", &self.incoming_floor())
            .field("max_in_flight", &self.max_in_flight())
            .field("exempt_paths", &self.exempt)
            .finish_non_exhaustive()
    }
}

/// Configures a [`ServerStack`]; from [`ServerStack::builder`].
///
/// | setting | default | source |
/// |---|---|---|
/// | rate limit | none | research notes d4: "rate limit where needed, no default rate" |
/// | `max_in_flight` | 1 000, no queue | .NET's standard pipeline: 1 000 permits, queue 0 |
/// | `priority` | every request normal, admitted up to `max_in_flight` | declare priorities and their shares to keep room for critical requests |
/// | `timeout` | 30 s | .NET's total request timeout |
/// | `expose_deadline` | off | the `Deadline` is in the extensions only when the client sent one (no allocation otherwise) |
/// | `incoming_floor` | none: a client's deadline up to `timeout` is honoured as sent | [`incoming_floor`](Self::incoming_floor): a shorter one is refused at once or raised |
/// | `error_responses` | [`ErrorResponseLayer::new`]: 429 / 503 / 504, 413 for a cost the quota can never admit, 401 for a missing key, plain text, IETF `RateLimit` fields | [`problem_json`](ErrorResponseLayer::problem_json) for a JSON API |
/// | `observer` | none (`()`: free) | `weir::core::observer::Tracing`, `weir::core::observer::Metrics`, or your own |
/// | `exempt_paths` | [`DEFAULT_EXEMPT_PATHS`](crate::DEFAULT_EXEMPT_PATHS): `/livez`, `/readyz`, `/startupz` | weir-health's probe paths: never refused by the protections they report on |
///
/// The stack sheds load with [`LoadShedLayer`] rather than a bulkhead: with no queue both refuse
/// the call over the cap at once, and the shedder keeps one counter for the whole server. A call
/// is in flight until its response body ends (the shedder's [`Http`] mode), not only until its
/// head is sent: a streamed download counts against `max_in_flight` while it streams. To count
/// calls only up to their head, build your own stack with `LoadShedLayer::new`.
pub struct ServerBuilder<R = Identity, C = Uniform, O = ()> {
    settings: ServerSettings,
    rate_limit: R,
    priority: C,
    observer: O,
}

/// The server preset's settings: every value of a [`ServerBuilder`] but its typed parts (the
/// rate limit, the priority classifier, the observer), in one place, so a method that changes
/// the builder's type moves them in one line.
#[derive(Clone, Debug)]
struct ServerSettings {
    errors: ErrorResponseLayer,
    max_in_flight: usize,
    timeout: Duration,
    expose_deadline: bool,
    /// The floor under a client's deadline, and what is done below it.
    incoming_floor: Option<(Duration, BelowFloor)>,
    /// The shares the user set, by priority; the others keep the load shedder's defaults.
    shares: Vec<(Priority, f64)>,
    /// `None`: the defaults.
    exempt: Option<Vec<Cow<'static, str>>>,
    /// Where `build` registers the layers it builds ([`ServerBuilder::registry`]).
    registry: Option<Registry>,
}

impl<R, C, O> ServerBuilder<R, C, O> {
    /// The request paths (exact, without the query) that skip the rate limit and the load
    /// shedder: the health probes. They replace the defaults,
    /// [`DEFAULT_EXEMPT_PATHS`](crate::DEFAULT_EXEMPT_PATHS) (weir-health's `/livez`,
    /// `/readyz`, `/startupz`); give the paths your `HealthService` serves if you changed them,
    /// or none to exempt nothing.
    ///
    /// An exempt request still gets the response mapping and the timeout. Exempt only what is
    /// cheap to answer, as weir-health's probes are (each check runs at most once per caching
    /// period, however many probes arrive): nothing limits how often it is asked.
    ///
    /// ```
    /// use weir::ServerStack;
    ///
    /// let stack = ServerStack::builder()
    ///     .exempt_paths(["/healthz/live", "/healthz/ready"])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(stack.exempt_paths().len(), 2);
    /// ```
    #[must_use]
    pub fn exempt_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Cow<'static, str>>,
    {
        self.settings.exempt = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// The longest a request may run (a client's shorter deadline, sent in `grpc-timeout` or
    /// `x-timeout-ms`, wins); past it the caller gets a 504.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// At most `max` calls in flight; the next one is refused at once with a 503. Every request
    /// of the default priority is admitted up to `max`; see [`priority`](Self::priority) to keep
    /// room for critical requests.
    #[must_use]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.settings.max_in_flight = max;
        self
    }

    /// Stores every request's [`Deadline`](crate::core::Deadline) in its extensions, so a handler can
    /// take `Extension<Deadline>`. Off by default: the deadline is stored only when the client
    /// sent one (`grpc-timeout` / `x-timeout-ms`), and a handler takes
    /// `Option<Extension<Deadline>>`; storing it costs an allocation per request (see
    /// [`TimeoutBuilder::expose_deadline`](crate::timeout::TimeoutBuilder::expose_deadline)).
    #[must_use]
    pub fn expose_deadline(mut self, expose: bool) -> Self {
        self.settings.expose_deadline = expose;
        self
    }

    /// A floor under the client's deadline: a `grpc-timeout` / `x-timeout-ms` shorter than
    /// `floor` is refused at once, before the handler runs ([`BelowFloor::Reject`]: a timeout of
    /// the caller's own deadline, 504 / `DEADLINE_EXCEEDED`, which no weir classifier counts
    /// against anyone), or raised to `floor` ([`BelowFloor::Raise`]). Without it (the default)
    /// a client's `x-timeout-ms: 1` is honoured, and answered with a timeout a millisecond later.
    /// Greater than zero, at most `timeout` (see
    /// [`TimeoutBuilder::incoming_floor`](crate::timeout::TimeoutBuilder::incoming_floor)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ServerStack;
    /// use weir::timeout::BelowFloor;
    ///
    /// let stack = ServerStack::builder()
    ///     .incoming_floor(Duration::from_millis(50), BelowFloor::Reject)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(stack.incoming_floor(), Some((Duration::from_millis(50), BelowFloor::Reject)));
    ///
    /// let err = ServerStack::builder()
    ///     .timeout(Duration::from_secs(1))
    ///     .incoming_floor(Duration::from_secs(2), BelowFloor::Raise)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.is_conflict());
    /// assert_eq!(err.field(), "incoming_floor");
    /// ```
    #[must_use]
    pub const fn incoming_floor(mut self, floor: Duration, below: BelowFloor) -> Self {
        self.settings.incoming_floor = Some((floor, below));
        self
    }

    /// How refusals are answered: the [`ErrorResponseLayer`] outermost in the stack, with its
    /// settings (status of a timeout, of a missing key, rate-limit header style, the body of
    /// refusals, HTTP or gRPC).
    ///
    /// ```
    /// use http::StatusCode;
    /// use weir::{core::response::ErrorResponseLayer, ServerStack};
    ///
    /// let stack = ServerStack::builder()
    ///     .error_responses(
    ///         ErrorResponseLayer::new()
    ///             .problem_json()
    ///             .timeout_status(StatusCode::REQUEST_TIMEOUT),
    ///     )
    ///     .build()
    ///     .unwrap();
    /// # let _ = stack;
    /// ```
    #[must_use]
    pub const fn error_responses(mut self, errors: ErrorResponseLayer) -> Self {
        self.settings.errors = errors;
        self
    }

    /// Gives each request a [`Priority`] (a closure `Fn(&Request<B>) -> Priority`), so that
    /// under load the shedder refuses sheddable requests first and keeps room for critical ones.
    /// Each priority the classifier gives may use its [`share`](Self::share) of
    /// `max_in_flight`: by default sheddable 50 %, normal and critical 100 %, so lower the
    /// normal share to keep room for critical requests.
    #[must_use]
    pub fn priority<C2>(self, classifier: C2) -> ServerBuilder<R, C2, O> {
        ServerBuilder {
            settings: self.settings,
            rate_limit: self.rate_limit,
            priority: classifier,
            observer: self.observer,
        }
    }

    /// Shows the layers the preset builds in `registry` (a status page, a metrics exporter):
    /// the load shedder, as `"server"` (a second server stack in one registry is a
    /// [`ConfigError`], duplicate `name`). The timeout has no state to show; a
    /// [`rate_limit`](Self::rate_limit) is built before it is given here, so give its builder
    /// the registry itself (`RateLimitLayer::per_second(100).registry(&registry)`).
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.settings.registry = Some(registry.clone());
        self
    }

    /// The share of `max_in_flight` requests of `priority` may use, in `(0, 1]`; shares must
    /// not decrease from sheddable to critical.
    #[must_use]
    pub fn share(mut self, priority: Priority, share: f64) -> Self {
        self.settings.shares.push((priority, share));
        self
    }

    /// Reports the load shedder's and the timeout's events to `observer` (sheds, limit changes,
    /// timeouts); `weir::core::observer::Tracing` logs them, `weir::core::observer::Metrics` counts them. A rate limit brings its
    /// own observer.
    #[must_use]
    pub fn observer<O2>(self, observer: O2) -> ServerBuilder<R, C, O2>
    where
        O2: for<'a> Observer<weir_load_shed::Event<'a>>
            + for<'a> Observer<weir_timeout::Event<'a>>
            + Clone,
    {
        ServerBuilder {
            settings: self.settings,
            rate_limit: self.rate_limit,
            priority: self.priority,
            observer,
        }
    }

    /// The same settings with `rate_limit` in the rate limit's place.
    #[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
    pub(crate) fn with_rate_limit<R2>(self, rate_limit: R2) -> ServerBuilder<R2, C, O> {
        ServerBuilder {
            settings: self.settings,
            rate_limit,
            priority: self.priority,
            observer: self.observer,
        }
    }
}

impl<R, C, O> ServerBuilder<R, C, O>
where
    C: Send + Sync + 'static,
    O: for<'a> Observer<weir_load_shed::Event<'a>>
        + for<'a> Observer<weir_timeout::Event<'a>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    /// Checks the settings and builds the stack.
    ///
    /// # Errors
    ///
    /// A zero `timeout` or `max_in_flight`, a zero `incoming_floor` or one longer than
    /// `timeout`, a share out of range or out of order (the load shedder's rule).
    pub fn build(self) -> Result<ServerStack<R, C, O>, ConfigError> {
        check_timeout(SERVER, "timeout", self.settings.timeout)?;
        if let Some((floor, _)) = self.settings.incoming_floor {
            check_timeout(SERVER, "incoming_floor", floor)?;
            if floor > self.settings.timeout {
                return Err(ConfigError::conflict(
                    SERVER,
                    "incoming_floor",
                    format!(
                        "({floor:?}) must not be longer than `timeout` ({:?})",
                        self.settings.timeout
                    ),
                ));
            }
        }
        if self.settings.max_in_flight == 0 {
            return Err(ConfigError::zero(
                SERVER,
                "max_in_flight",
                "must be at least 1",
            ));
        }
        let (timeout, timeout_handle) = self
            .timeout_settings()
            .name("server")
            .observer(self.observer.clone())
            .build_with_handle()
            .map_err(|_| ConfigError::zero(SERVER, "timeout", "must be greater than zero"))?;
        let mut shed = LoadShedLayer::builder()
            .http()
            .name("server")
            .max_in_flight(self.settings.max_in_flight)
            .priority(self.priority)
            .observer(self.observer);
        for (priority, share) in self.settings.shares {
            shed = shed.share(priority, share);
        }
        if let Some(registry) = &self.settings.registry {
            shed = shed.registry(registry);
        }
        let shed = shed.build().map_err(|e| adopt("load shed", "share", e))?;
        let shed_handle = shed.handle();
        Ok(ServerStack {
            errors: self.settings.errors,
            fallback: Identity::new(),
            rate_limit: self.rate_limit,
            shed,
            chaos: Identity::new(),
            timeout_layer: timeout,
            timeout_handle,
            shed_handle,
            exempt: match self.settings.exempt {
                Some(paths) => paths.into(),
                None => DEFAULT_EXEMPT_PATHS.map(Cow::Borrowed).into(),
            },
        })
    }
}

/// The parts of the settings a running stack can take again (a configuration reload).
impl<R, C, O> ServerBuilder<R, C, O> {
    /// The timeout layer's settings, as [`build`](Self::build) gives them (without its name and
    /// observer): what the stack's [`TimeoutHandle`] takes on a reload.
    pub(crate) fn timeout_settings(&self) -> TimeoutBuilder {
        let mut timeout = TimeoutLayer::server(self.settings.timeout);
        if let Some((floor, below)) = self.settings.incoming_floor {
            timeout = timeout.incoming_floor(floor, below);
        }
        timeout.expose_deadline(self.settings.expose_deadline)
    }

    /// The cap on calls in flight, as set.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) const fn max_in_flight_setting(&self) -> usize {
        self.settings.max_in_flight
    }
}

#[cfg(feature = "rate-limit")]
impl<C, O> ServerBuilder<Identity, C, O> {
    /// Adds a rate limit (keyed, tiered or global: any
    /// [`RateLimitLayer`](weir_rate_limit::RateLimitLayer)), between the response mapping and
    /// the load shedder, so a refused request never counts as in flight.
    #[must_use]
    pub fn rate_limit<X, St, T, Co, Ob, P>(
        self,
        layer: weir_rate_limit::RateLimitLayer<X, St, T, Co, Ob, P>,
    ) -> ServerBuilder<weir_rate_limit::RateLimitLayer<X, St, T, Co, Ob, P>, C, O> {
        self.with_rate_limit(layer)
    }
}

impl<R, C, O> fmt::Debug for ServerBuilder<R, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("error_responses", &self.settings.errors)
            .field("max_in_flight", &self.settings.max_in_flight)
            .field("timeout", &self.settings.timeout)
            .field("expose_deadline", &self.settings.expose_deadline)
            .field("incoming_floor", &self.settings.incoming_floor)
            .field("shares", &self.settings.shares)
            .field("exempt_paths", &self.settings.exempt)
            .finish_non_exhaustive()
    }
}
