//! The standard server stack: [`ServerStack`] and its builder.

use std::fmt;
use std::time::Duration;

use tower_layer::{Identity, Layer, Stack};
use weir_core::ErrorResponseLayer;
use weir_load_shed::LoadShedLayer;
use weir_timeout::TimeoutLayer;

use super::{ConfigError, check_timeout};

/// The server preset's default timeout: 30 s (the total timeout of .NET's standard pipeline).
const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The server preset's default cap on calls in flight: 1 000 (.NET's standard pipeline: 1 000
/// permits, no queue).
const DEFAULT_MAX_IN_FLIGHT: usize = 1_000;

/// The server layers, innermost first (the order `tower_layer::Stack` nests them in).
type ServerLayers<R> = Stack<TimeoutLayer, Stack<LoadShedLayer, Stack<R, ErrorResponseLayer>>>;

/// The standard server stack, one [`Layer`]: outermost first,
/// [`ErrorResponseLayer`] (every refusal becomes a 429 / 503 / 504 response, so the service's
/// error is `Infallible` and it mounts on an axum `Router`), an optional keyed rate limit,
/// load shedding ([`LoadShedLayer`]), and a server timeout ([`TimeoutLayer::server`]: the
/// client's deadline, capped at `timeout`). Why this order: see the crate's
/// [`# Ordering`](crate#ordering).
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
/// let server = ServiceBuilder::new().layer(stack).service(service_fn(|_req: Request<String>| async {
///     Ok::<_, std::io::Error>(Response::new(String::from("hello")))
/// }));
/// let Ok(response) = server.oneshot(Request::new(String::new())).await;
/// assert_eq!(response.status(), StatusCode::OK);
/// # }
/// ```
pub struct ServerStack<R = Identity> {
    rate_limit: R,
    shed: LoadShedLayer,
    timeout_layer: TimeoutLayer,
    timeout: Duration,
    max_in_flight: usize,
}

impl ServerStack {
    /// A builder with the defaults: no rate limit, 1 000 calls in flight, a 30 s timeout.
    #[must_use]
    pub const fn builder() -> ServerBuilder {
        ServerBuilder {
            rate_limit: Identity::new(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            timeout: DEFAULT_SERVER_TIMEOUT,
            expose_deadline: false,
        }
    }
}

impl<R> ServerStack<R> {
    /// The timeout this stack applies.
    #[must_use]
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cap on calls in flight.
    #[must_use]
    pub const fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The rate limit layer (`Identity` when there is none).
    #[must_use]
    pub const fn rate_limit(&self) -> &R {
        &self.rate_limit
    }
}

impl<S, R: Clone> Layer<S> for ServerStack<R>
where
    ServerLayers<R>: Layer<S>,
{
    type Service = <ServerLayers<R> as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let layers: ServerLayers<R> = Stack::new(
            self.timeout_layer.clone(),
            Stack::new(
                self.shed.clone(),
                Stack::new(self.rate_limit.clone(), ErrorResponseLayer::new()),
            ),
        );
        layers.layer(inner)
    }
}

impl<R: Clone> Clone for ServerStack<R> {
    /// Shares every layer's state (rate limit buckets, the in-flight count).
    fn clone(&self) -> Self {
        Self {
            rate_limit: self.rate_limit.clone(),
            shed: self.shed.clone(),
            timeout_layer: self.timeout_layer.clone(),
            timeout: self.timeout,
            max_in_flight: self.max_in_flight,
        }
    }
}

impl<R> fmt::Debug for ServerStack<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStack")
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// Configures a [`ServerStack`]; from [`ServerStack::builder`].
///
/// | setting | default | source |
/// |---|---|---|
/// | rate limit | none | research notes d4: "rate limit where needed, no default rate" |
/// | `max_in_flight` | 1 000, no queue | .NET's standard pipeline: 1 000 permits, queue 0 |
/// | `timeout` | 30 s | .NET's total request timeout |
/// | `expose_deadline` | off | the `Deadline` is in the extensions only when the client sent one (no allocation otherwise) |
///
/// The stack sheds load with [`LoadShedLayer`] rather than a bulkhead: with no queue both refuse
/// the call over the cap at once, and the shedder keeps one counter for the whole server.
pub struct ServerBuilder<R = Identity> {
    rate_limit: R,
    max_in_flight: usize,
    timeout: Duration,
    expose_deadline: bool,
}

impl<R> ServerBuilder<R> {
    /// The longest a request may run (a client's shorter deadline, sent in `grpc-timeout` or
    /// `x-timeout-ms`, wins); past it the caller gets a 504.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// At most `max` calls in flight; the next one is refused at once with a 503.
    #[must_use]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Stores every request's [`Deadline`](crate::Deadline) in its extensions, so a handler can
    /// take `Extension<Deadline>`. Off by default: the deadline is stored only when the client
    /// sent one (`grpc-timeout` / `x-timeout-ms`), and a handler takes
    /// `Option<Extension<Deadline>>`; storing it costs an allocation per request (see
    /// [`TimeoutBuilder::expose_deadline`](crate::timeout::TimeoutBuilder::expose_deadline)).
    #[must_use]
    pub fn expose_deadline(mut self, expose: bool) -> Self {
        self.expose_deadline = expose;
        self
    }

    /// Checks the settings and builds the stack.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroTimeout`] (`timeout`), [`ConfigError::ZeroMaxInFlight`].
    pub fn build(self) -> Result<ServerStack<R>, ConfigError> {
        check_timeout("timeout", self.timeout)?;
        if self.max_in_flight == 0 {
            return Err(ConfigError::ZeroMaxInFlight);
        }
        let timeout = TimeoutLayer::server(self.timeout)
            .expose_deadline(self.expose_deadline)
            .name("server")
            .build()
            .map_err(|_| ConfigError::ZeroTimeout { field: "timeout" })?;
        Ok(ServerStack {
            rate_limit: self.rate_limit,
            shed: LoadShedLayer::new(self.max_in_flight),
            timeout_layer: timeout,
            timeout: self.timeout,
            max_in_flight: self.max_in_flight,
        })
    }
}

impl ServerBuilder<Identity> {
    /// The same settings with `rate_limit` in the rate limit's place.
    #[cfg(feature = "config")]
    pub(crate) fn with_rate_limit<R>(self, rate_limit: R) -> ServerBuilder<R> {
        ServerBuilder {
            rate_limit,
            max_in_flight: self.max_in_flight,
            timeout: self.timeout,
            expose_deadline: self.expose_deadline,
        }
    }
}

#[cfg(feature = "rate-limit")]
impl ServerBuilder<Identity> {
    /// Adds a rate limit (keyed, tiered or global: any
    /// [`RateLimitLayer`](weir_rate_limit::RateLimitLayer)), between the response mapping and
    /// the load shedder, so a refused request never counts as in flight.
    #[must_use]
    pub fn rate_limit<X, St, T, C, O, P>(
        self,
        layer: weir_rate_limit::RateLimitLayer<X, St, T, C, O, P>,
    ) -> ServerBuilder<weir_rate_limit::RateLimitLayer<X, St, T, C, O, P>> {
        ServerBuilder {
            rate_limit: layer,
            max_in_flight: self.max_in_flight,
            timeout: self.timeout,
            expose_deadline: self.expose_deadline,
        }
    }
}

impl<R> fmt::Debug for ServerBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout", &self.timeout)
            .field("expose_deadline", &self.expose_deadline)
            .finish_non_exhaustive()
    }
}
