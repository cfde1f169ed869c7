//! `ServiceBuilderExt`: weir's layers as `tower::ServiceBuilder` methods.

use tower::ServiceBuilder;
use tower_layer::Stack;
use weir_core::response::ErrorResponseLayer;

/// The bulkhead `weir_bulkhead` adds: HTTP mode, the permit held until the response body ends.
#[cfg(feature = "bulkhead")]
type HttpBulkhead = weir_bulkhead::BulkheadLayer<(), weir_core::protocol::Http>;

/// The load shedder `weir_load_shed` adds: HTTP mode, a call in flight until its body ends.
#[cfg(feature = "load-shed")]
type HttpLoadShed = weir_load_shed::LoadShedLayer<
    weir_load_shed::Fixed,
    weir_load_shed::Uniform,
    (),
    weir_core::protocol::Http,
>;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// weir's layers as methods on [`tower::ServiceBuilder`].
///
/// Sealed: implemented for `ServiceBuilder` only, so methods can be added without breaking
/// anyone. Each pattern crate adds its method here when its feature is on.
///
/// # The naming rule
///
/// Each method is `weir_` followed by the name of the layer it adds, in snake case and without
/// `Layer`: `weir_timeout` adds a [`TimeoutLayer`](weir_timeout::TimeoutLayer), `weir_rate_limit`
/// a [`RateLimitLayer`](weir_rate_limit::RateLimitLayer), `weir_error_response` an
/// [`ErrorResponseLayer`], built as the layer's `new` builds it; except that `weir_bulkhead` and
/// `weir_load_shed` build the layer's HTTP mode, `XLayer::http(n)`, because an HTTP call holds
/// its slot until its response body ends (#17.3). A method that adds the layer in
/// another mode appends the name of the builder option that sets the mode:
/// `weir_timeout_propagate(allowance)` is `TimeoutLayer::builder().propagate(allowance)`.
///
/// The prefix is there because tower's `ServiceBuilder` has inherent `timeout`, `retry`,
/// `rate_limit` and `load_shed` methods (behind tower's features of those names), and an inherent
/// method silently wins over a trait method of the same name: with tower's `timeout` feature on,
/// `.timeout(d)` would build tower's timeout, which sets no [`Deadline`](crate::core::Deadline) and
/// fails with tower's error, not weir's. A `weir_` name is never shadowed, and says at the call
/// site whose layer it is.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use weir::ServiceBuilderExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .weir_error_response()
///     .service(service_fn(|_req: Request<String>| async {
///         Err::<Response<String>, _>(weir::Error::circuit_open())
///     }));
/// // The error type is `Infallible`: every weir error is already a response.
/// let Ok(response) = service.oneshot(Request::new(String::new())).await;
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Turns every error of the services below into an HTTP (or gRPC) response, with
    /// [`ErrorResponseLayer::new`]: the resulting service's error is `Infallible`, so it mounts on an
    /// axum `Router` as it is. Put it outermost.
    #[must_use]
    fn weir_error_response(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>>;

    /// One rate limit for every request (GCRA, reject at once), from
    /// [`RateLimitLayer::new`](weir_rate_limit::RateLimitLayer::new); build keyed, tiered or
    /// stacked limits with `RateLimitLayer::builder()` and pass them to `layer`. It cannot
    /// fail: a [`Quota`](weir_rate_limit::Quota) is valid by construction.
    #[cfg(feature = "rate-limit")]
    #[must_use]
    fn weir_rate_limit(
        self,
        quota: weir_rate_limit::Quota,
    ) -> ServiceBuilder<Stack<weir_rate_limit::RateLimitLayer, L>>;

    /// A bulkhead of `max_concurrent` permits (0 is taken as 1) with no queue (a call finding
    /// none free is refused at once), for `http::Request` / `http::Response` services, from
    /// [`BulkheadLayer::http`](weir_bulkhead::BulkheadLayer::http): a call holds its permit
    /// until its response body ends, so a streamed body counts until its last byte (#17.3). For
    /// a service that is not HTTP, or to release the permit with the response head, pass
    /// `BulkheadLayer::new(n)` or a built `BulkheadLayer::http(n).release_at_head()` to `layer`.
    #[cfg(feature = "bulkhead")]
    #[must_use]
    fn weir_bulkhead(self, max_concurrent: usize) -> ServiceBuilder<Stack<HttpBulkhead, L>>;

    /// Sheds load once `max_in_flight` calls are under way (0 is taken as 1), for
    /// `http::Request` / `http::Response` services, from
    /// [`LoadShedLayer::http`](weir_load_shed::LoadShedLayer::http): a call is in flight until
    /// its response body ends (#17.3). For a service that is not HTTP, or to count a call only
    /// until its response head, pass `LoadShedLayer::new(n)` to `layer`.
    #[cfg(feature = "load-shed")]
    #[must_use]
    fn weir_load_shed(self, max_in_flight: usize) -> ServiceBuilder<Stack<HttpLoadShed, L>>;

    /// A circuit breaker with the default settings (failure rate 50 % over the last 100 calls,
    /// open 5 s, 3 half-open probes), from
    /// [`CircuitBreakerLayer::new`](weir_circuit_breaker::CircuitBreakerLayer::new). Build a
    /// layer with its builder and pass it to `layer` for anything else.
    #[cfg(feature = "circuit-breaker")]
    #[must_use]
    fn weir_circuit_breaker(
        self,
    ) -> ServiceBuilder<Stack<weir_circuit_breaker::CircuitBreakerLayer, L>>;

    /// Retries transient failures up to `max_retries` times after the first call
    /// (`weir_retry(3)`: at most 4 calls, as `max_retries(3)` means on weir-retry's builder and on
    /// [`ClientBuilder`](crate::ClientBuilder)), with the default backoff and retry budget.
    /// Requests are cloned; an `http::Request` is retried only when it is idempotent (GET,
    /// HEAD, OPTIONS, PUT, DELETE, TRACE; POST and PATCH with an `Idempotency-Key` header), see
    /// [`IdempotentReplay`](crate::IdempotentReplay). Use `RetryLayer::http()` to replay HTTP
    /// bodies that are not `Clone`.
    #[cfg(feature = "retry")]
    #[must_use]
    fn weir_retry(
        self,
        max_retries: u32,
    ) -> ServiceBuilder<Stack<weir_retry::RetryLayer<crate::IdempotentReplay>, L>>;

    /// Times out calls after `timeout` and sets the request's [`Deadline`](crate::core::Deadline) (the
    /// earlier of this one and any already there), with
    /// [`TimeoutLayer::new`](weir_timeout::TimeoutLayer::new).
    #[cfg(feature = "timeout")]
    #[must_use]
    fn weir_timeout(
        self,
        timeout: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>>;

    /// On a client: writes the request's remaining budget, less `allowance` for the network, into
    /// `grpc-timeout` or `x-timeout-ms`, and fails at once when nothing is left; a
    /// [`TimeoutLayer`](weir_timeout::TimeoutLayer) built with `builder().propagate(allowance)`.
    #[cfg(feature = "timeout")]
    #[must_use]
    fn weir_timeout_propagate(
        self,
        allowance: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn weir_error_response(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>> {
        self.layer(ErrorResponseLayer::new())
    }

    #[cfg(feature = "rate-limit")]
    fn weir_rate_limit(
        self,
        quota: weir_rate_limit::Quota,
    ) -> ServiceBuilder<Stack<weir_rate_limit::RateLimitLayer, L>> {
        self.layer(weir_rate_limit::RateLimitLayer::new(quota))
    }

    #[cfg(feature = "bulkhead")]
    fn weir_bulkhead(self, max_concurrent: usize) -> ServiceBuilder<Stack<HttpBulkhead, L>> {
        let max_concurrent = max_concurrent.clamp(1, weir_bulkhead::MAX_PERMITS);
        self.layer(
            weir_bulkhead::BulkheadLayer::http(max_concurrent)
                .build()
                .expect("a clamped max_concurrent with the defaults is a valid configuration"),
        )
    }

    #[cfg(feature = "load-shed")]
    fn weir_load_shed(self, max_in_flight: usize) -> ServiceBuilder<Stack<HttpLoadShed, L>> {
        self.layer(
            weir_load_shed::LoadShedLayer::http(max_in_flight)
                .build()
                .expect("a fixed limit with the defaults is a valid configuration"),
        )
    }

    #[cfg(feature = "circuit-breaker")]
    fn weir_circuit_breaker(
        self,
    ) -> ServiceBuilder<Stack<weir_circuit_breaker::CircuitBreakerLayer, L>> {
        self.layer(weir_circuit_breaker::CircuitBreakerLayer::new())
    }

    #[cfg(feature = "retry")]
    fn weir_retry(
        self,
        max_retries: u32,
    ) -> ServiceBuilder<Stack<weir_retry::RetryLayer<crate::IdempotentReplay>, L>> {
        let layer = weir_retry::RetryLayer::builder()
            .max_retries(max_retries)
            .replay(crate::IdempotentReplay::new())
            .build()
            .expect("at least one attempt and the default budget break no rule");
        self.layer(layer)
    }

    #[cfg(feature = "timeout")]
    fn weir_timeout(
        self,
        timeout: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>> {
        self.layer(weir_timeout::TimeoutLayer::new(timeout))
    }

    #[cfg(feature = "timeout")]
    fn weir_timeout_propagate(
        self,
        allowance: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>> {
        let layer = weir_timeout::TimeoutLayer::builder()
            .propagate(allowance)
            .build()
            .expect("a propagation-only timeout layer has no rule to break");
        self.layer(layer)
    }
}
