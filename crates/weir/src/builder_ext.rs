//! `ServiceBuilderExt`: weir's layers as `tower::ServiceBuilder` methods.

use tower::ServiceBuilder;
use tower_layer::Stack;
use weir_core::ErrorResponseLayer;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// weir's layers as methods on [`tower::ServiceBuilder`].
///
/// Sealed: implemented for `ServiceBuilder` only, so methods can be added without breaking
/// anyone. Each pattern crate adds its method here when its feature is on.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use weir::ServiceBuilderExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .error_responses()
///     .service(service_fn(|_req: Request<String>| async {
///         Err::<Response<String>, _>(weir::Error::circuit_open())
///     }));
/// // The error type is `Infallible`: every weir error is already a response.
/// let Ok(response) = service.oneshot(Request::new(String::new())).await;
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Turns every error of the services below into an HTTP (or gRPC) response, with
    /// [`ErrorResponseLayer::new`]: the resulting service's error is `Infallible`, so it mounts on an
    /// axum `Router` as it is. Put it outermost.
    #[must_use]
    fn error_responses(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>>;

    /// One rate limit for every request (GCRA, reject at once), from
    /// [`RateLimitLayer::new`](weir_rate_limit::RateLimitLayer::new); build keyed, tiered or
    /// stacked limits with `RateLimitLayer::builder()` and pass them to `layer`. Named
    /// `limit_rate` because tower's `ServiceBuilder` has a `rate_limit` method of its own.
    ///
    /// # Errors
    ///
    /// The quota breaks a rule (zero rate, zero period, ...).
    #[cfg(feature = "rate-limit")]
    fn limit_rate(
        self,
        quota: weir_rate_limit::Quota,
    ) -> Result<
        ServiceBuilder<Stack<weir_rate_limit::RateLimitLayer, L>>,
        weir_rate_limit::ConfigError,
    >;

    /// A bulkhead of `max_concurrent` permits with no queue (a call finding none free is
    /// refused at once), from [`BulkheadLayer::new`](weir_bulkhead::BulkheadLayer::new).
    #[cfg(feature = "bulkhead")]
    #[must_use]
    fn bulkhead(
        self,
        max_concurrent: usize,
    ) -> ServiceBuilder<Stack<weir_bulkhead::BulkheadLayer, L>>;

    /// Sheds load once `max_in_flight` calls are under way, from
    /// [`LoadShedLayer::new`](weir_load_shed::LoadShedLayer::new). Named `shed_load` because
    /// tower's `ServiceBuilder` has a `load_shed` method of its own.
    #[cfg(feature = "load-shed")]
    #[must_use]
    fn shed_load(
        self,
        max_in_flight: usize,
    ) -> ServiceBuilder<Stack<weir_load_shed::LoadShedLayer, L>>;

    /// A circuit breaker with the default settings (failure rate 50 % over the last 100 calls,
    /// open 5 s, 3 half-open probes), from
    /// [`CircuitBreakerLayer::new`](weir_circuit_breaker::CircuitBreakerLayer::new). Build a
    /// layer with its builder and pass it to `layer` for anything else.
    #[cfg(feature = "circuit-breaker")]
    #[must_use]
    fn circuit_breaker(self)
    -> ServiceBuilder<Stack<weir_circuit_breaker::CircuitBreakerLayer, L>>;

    /// Retries transient failures up to `max_retries` times after the first call
    /// (`retries(3)`: at most 4 calls, as `max_retries(3)` means on weir-retry's builder and on
    /// [`ClientBuilder`](crate::ClientBuilder)), with the default backoff and retry budget.
    /// Requests are cloned; an `http::Request` is retried only when it is idempotent (GET,
    /// HEAD, OPTIONS, PUT, DELETE, TRACE; POST and PATCH with an `Idempotency-Key` header), see
    /// [`IdempotentReplay`](crate::IdempotentReplay). Use `RetryLayer::http()` to replay HTTP
    /// bodies that are not `Clone`. Named `retries` because tower's `ServiceBuilder` has a
    /// `retry` method of its own.
    #[cfg(feature = "retry")]
    #[must_use]
    fn retries(
        self,
        max_retries: u32,
    ) -> ServiceBuilder<Stack<weir_retry::RetryLayer<crate::IdempotentReplay>, L>>;

    /// Times out calls after `timeout` and sets the request's [`Deadline`](crate::core::Deadline) (the
    /// earlier of this one and any already there), with
    /// [`TimeoutLayer::new`](weir_timeout::TimeoutLayer::new). Named `deadline` because
    /// `ServiceBuilder` has a `timeout` method of its own (tower's).
    #[cfg(feature = "timeout")]
    #[must_use]
    fn deadline(
        self,
        timeout: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>>;

    /// On a client: writes the request's remaining budget, less `allowance` for the network, into
    /// `grpc-timeout` or `x-timeout-ms`, and fails at once when nothing is left.
    #[cfg(feature = "timeout")]
    #[must_use]
    fn propagate_deadline(
        self,
        allowance: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn error_responses(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>> {
        self.layer(ErrorResponseLayer::new())
    }

    #[cfg(feature = "rate-limit")]
    fn limit_rate(
        self,
        quota: weir_rate_limit::Quota,
    ) -> Result<
        ServiceBuilder<Stack<weir_rate_limit::RateLimitLayer, L>>,
        weir_rate_limit::ConfigError,
    > {
        Ok(self.layer(weir_rate_limit::RateLimitLayer::new(quota)?))
    }

    #[cfg(feature = "bulkhead")]
    fn bulkhead(
        self,
        max_concurrent: usize,
    ) -> ServiceBuilder<Stack<weir_bulkhead::BulkheadLayer, L>> {
        self.layer(weir_bulkhead::BulkheadLayer::new(max_concurrent))
    }

    #[cfg(feature = "load-shed")]
    fn shed_load(
        self,
        max_in_flight: usize,
    ) -> ServiceBuilder<Stack<weir_load_shed::LoadShedLayer, L>> {
        self.layer(weir_load_shed::LoadShedLayer::new(max_in_flight))
    }

    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker(
        self,
    ) -> ServiceBuilder<Stack<weir_circuit_breaker::CircuitBreakerLayer, L>> {
        self.layer(weir_circuit_breaker::CircuitBreakerLayer::new())
    }

    #[cfg(feature = "retry")]
    fn retries(
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
    fn deadline(
        self,
        timeout: std::time::Duration,
    ) -> ServiceBuilder<Stack<weir_timeout::TimeoutLayer, L>> {
        self.layer(weir_timeout::TimeoutLayer::new(timeout))
    }

    #[cfg(feature = "timeout")]
    fn propagate_deadline(
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
