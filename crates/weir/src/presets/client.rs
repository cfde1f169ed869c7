//! The standard client stack: [`ClientStack`] and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use tower_layer::{Layer, Stack};
use weir_bulkhead::BulkheadLayer;
use weir_circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerLayer, KeyedCircuitBreakerLayer};
use weir_core::{Authority, HttpStatus};
use weir_retry::{HttpReplay, RetryBudget, RetryLayer};
use weir_timeout::TimeoutLayer;

use super::{ConfigError, check_timeout};

/// The client preset's default total timeout: 30 s.
const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The client preset's default attempt timeout: 10 s.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The client preset's default number of retries after the first attempt: 3.
const DEFAULT_MAX_RETRIES: u32 = 3;
/// The client preset's default breaker failure rate, in percent: 10.
const DEFAULT_FAILURE_RATE: f64 = 10.0;
/// The client preset's default breaker minimum throughput: 100 calls in the window.
const DEFAULT_MINIMUM_CALLS: u32 = 100;
/// The client preset's default breaker sampling window: 30 s (10 buckets).
const DEFAULT_SAMPLING_WINDOW: Duration = Duration::from_secs(30);
/// The client preset's default time a breaker stays open: 5 s.
const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(5);
/// The client preset's default bulkhead size: 1 000 concurrent calls, no queue.
const DEFAULT_MAX_CONCURRENT: usize = 1_000;

/// Buckets of the client breaker's time window.
const WINDOW_BUCKETS: u32 = 10;

/// [`ClientBuilder`] marker: one circuit breaker for every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

/// [`ClientBuilder`] marker: an HTTP client with one circuit breaker per request authority
/// (host and port, keyed with [`Authority`]), outcomes classified with [`HttpStatus`], and
/// request bodies replayed with [`HttpReplay`]; for `http::Request`s.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerAuthority;

/// [`ClientStack`] order marker (the default): the breaker sits inside retry, so it counts
/// every attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct BreakerInside;

/// [`ClientStack`] order marker: the seeds' order, bulkhead → breaker → retry → attempt
/// timeout; the breaker sits outside retry and counts one outcome per logical call.
#[derive(Clone, Copy, Debug, Default)]
pub struct BreakerOutside;

/// The client layers in the standard order, innermost first.
type InsideLayers<B, R> =
    Stack<TimeoutLayer, Stack<BulkheadLayer, Stack<B, Stack<R, TimeoutLayer>>>>;
/// The client layers in the seeds' order, innermost first.
type OutsideLayers<B, R> =
    Stack<TimeoutLayer, Stack<R, Stack<B, Stack<BulkheadLayer, TimeoutLayer>>>>;

/// The standard client stack, one [`Layer`]: outermost first, a total timeout (sets the
/// request's [`Deadline`](crate::Deadline)), budgeted retry, a circuit breaker (one, or one per
/// authority), a bulkhead, and an attempt timeout, in front of the transport.
///
/// With [`ClientBuilder::breaker_outside_retry`] the order is the seeds' one instead: total
/// timeout → bulkhead → breaker → retry → attempt timeout. What changes: see the crate's
/// [`# Ordering`](crate#ordering).
///
/// Errors are classified with [`AnyError`](crate::AnyError): every error of the transport is a
/// failure for the breaker and retried (rejections such as "circuit open" are never retried);
/// responses are successes. To retry on HTTP statuses, build the layers by hand with
/// `RetryLayer::http()` and a breaker with the `HttpStatus` classifier.
///
/// ```
/// use weir::ClientStack;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stack = ClientStack::builder().build().unwrap();
/// let client = ServiceBuilder::new()
///     .layer(stack)
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(client.oneshot(41).await.unwrap(), 42);
/// # }
/// ```
pub struct ClientStack<B = CircuitBreakerLayer, R = RetryLayer, Ord = BreakerInside> {
    total: TimeoutLayer,
    retry: R,
    breaker: B,
    bulkhead: BulkheadLayer,
    attempt: TimeoutLayer,
    order: PhantomData<fn() -> Ord>,
}

impl ClientStack {
    /// A builder with the defaults (see [`ClientBuilder`]).
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            budget: RetryBudget::default(),
            failure_rate: DEFAULT_FAILURE_RATE,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            sampling_window: DEFAULT_SAMPLING_WINDOW,
            open_duration: DEFAULT_OPEN_DURATION,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            marker: PhantomData,
        }
    }
}

impl<B, R, Ord> ClientStack<B, R, Ord> {
    /// The circuit breaker layer (its handle gives the state).
    #[must_use]
    pub const fn breaker(&self) -> &B {
        &self.breaker
    }
}

impl<S, B: Clone, R: Clone> Layer<S> for ClientStack<B, R, BreakerInside>
where
    InsideLayers<B, R>: Layer<S>,
{
    type Service = <InsideLayers<B, R> as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let layers: InsideLayers<B, R> = Stack::new(
            self.attempt.clone(),
            Stack::new(
                self.bulkhead.clone(),
                Stack::new(
                    self.breaker.clone(),
                    Stack::new(self.retry.clone(), self.total.clone()),
                ),
            ),
        );
        layers.layer(inner)
    }
}

impl<S, B: Clone, R: Clone> Layer<S> for ClientStack<B, R, BreakerOutside>
where
    OutsideLayers<B, R>: Layer<S>,
{
    type Service = <OutsideLayers<B, R> as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let layers: OutsideLayers<B, R> = Stack::new(
            self.attempt.clone(),
            Stack::new(
                self.retry.clone(),
                Stack::new(
                    self.breaker.clone(),
                    Stack::new(self.bulkhead.clone(), self.total.clone()),
                ),
            ),
        );
        layers.layer(inner)
    }
}

impl<B: Clone, R: Clone, Ord> Clone for ClientStack<B, R, Ord> {
    /// Shares every layer's state (breaker, retry budget, bulkhead permits).
    fn clone(&self) -> Self {
        Self {
            total: self.total.clone(),
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            bulkhead: self.bulkhead.clone(),
            attempt: self.attempt.clone(),
            order: PhantomData,
        }
    }
}

impl<B, R, Ord> fmt::Debug for ClientStack<B, R, Ord> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStack")
            .field("total", &self.total)
            .field("bulkhead", &self.bulkhead)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Configures a [`ClientStack`]; from [`ClientStack::builder`].
///
/// Defaults, from .NET's standard resilience pipeline (research notes, section d) unless noted:
///
/// | setting | default | note |
/// |---|---|---|
/// | `total_timeout` | 30 s | |
/// | `max_retries` | 3 (4 attempts) | backoff: weir-retry's default, exponential from 100 ms, capped at 5 s, full jitter. **Differs**: .NET starts at 2 s; 100 ms suits the intra-datacenter calls Tower clients mostly make (Envoy 25 ms, gRPC 100 ms), and the total timeout bounds the sleeps anyway |
/// | `budget` | 20 % of requests over 10 s, plus 10/s | weir-retry's default (Envoy 20 %, Finagle 10/s); .NET has no budget |
/// | `failure_rate` | 10 % | |
/// | `minimum_calls` | 100 | |
/// | `sampling_window` | 30 s (10 buckets) | must be at least twice `attempt_timeout` |
/// | `open_duration` | 5 s | |
/// | half-open probes | 3 | weir-circuit-breaker's default (research notes d4: "~3") |
/// | `max_concurrent` | 1 000, no queue | .NET's rate limiter is really this bulkhead; **differs** in place: .NET puts it outermost, here it sits inside the breaker so it bounds calls to the transport |
/// | `attempt_timeout` | 10 s | must be at most `total_timeout` |
/// | breaker | one for all requests | [`per_authority`](Self::per_authority) for one per host |
/// | order | breaker inside retry | [`breaker_outside_retry`](Self::breaker_outside_retry) for the seeds' order |
pub struct ClientBuilder<K = Single, Ord = BreakerInside> {
    total_timeout: Duration,
    attempt_timeout: Duration,
    max_retries: u32,
    budget: RetryBudget,
    failure_rate: f64,
    minimum_calls: u32,
    sampling_window: Duration,
    open_duration: Duration,
    max_concurrent: usize,
    marker: PhantomData<fn() -> (K, Ord)>,
}

impl<K, Ord> ClientBuilder<K, Ord> {
    /// The longest a logical call may take, every attempt and backoff sleep included.
    #[must_use]
    pub const fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = timeout;
        self
    }

    /// The longest one attempt may take; at most `total_timeout`.
    #[must_use]
    pub const fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Retries after the first attempt (0 turns retry off).
    #[must_use]
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The retry budget shared by every call through the stack.
    #[must_use]
    pub const fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The breaker opens when this percentage of the calls in the window failed.
    #[must_use]
    pub const fn failure_rate(mut self, percent: f64) -> Self {
        self.failure_rate = percent;
        self
    }

    /// The breaker does not open before this many calls in the window.
    #[must_use]
    pub const fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// The breaker's sampling window (a time window of 10 buckets); at least twice
    /// `attempt_timeout`.
    #[must_use]
    pub const fn sampling_window(mut self, window: Duration) -> Self {
        self.sampling_window = window;
        self
    }

    /// How long the breaker stays open before it lets probes through.
    #[must_use]
    pub const fn open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = duration;
        self
    }

    /// The bulkhead: at most `max` calls to the transport at once, no queue.
    #[must_use]
    pub const fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// An HTTP client: one breaker per authority (host and port) of the request, with these
    /// settings each, so one failing upstream does not cut the others off; outcomes classified
    /// with [`HttpStatus`] (5xx, 408 and 429 are failures, retried with `Retry-After` honoured)
    /// and request bodies replayed with [`HttpReplay`] (idempotent methods only), as
    /// `RetryLayer::http()` does. For `http::Request`s.
    #[must_use]
    pub fn per_authority(self) -> ClientBuilder<PerAuthority, Ord> {
        self.retype()
    }

    /// The seeds' order: total timeout → bulkhead → breaker → retry → attempt timeout. The
    /// breaker then counts one outcome per logical call instead of one per attempt; see the
    /// crate's [`# Ordering`](crate#ordering).
    #[must_use]
    pub fn breaker_outside_retry(self) -> ClientBuilder<K, BreakerOutside> {
        self.retype()
    }

    fn retype<K2, Ord2>(self) -> ClientBuilder<K2, Ord2> {
        ClientBuilder {
            total_timeout: self.total_timeout,
            attempt_timeout: self.attempt_timeout,
            max_retries: self.max_retries,
            budget: self.budget,
            failure_rate: self.failure_rate,
            minimum_calls: self.minimum_calls,
            sampling_window: self.sampling_window,
            open_duration: self.open_duration,
            max_concurrent: self.max_concurrent,
            marker: PhantomData,
        }
    }

    /// Checks the rules and builds every layer but the breaker.
    fn parts<B, R>(
        &self,
        build_retry: impl FnOnce(u32, RetryBudget) -> Result<R, weir_retry::ConfigError>,
        build_breaker: impl FnOnce(CircuitBreakerBuilder) -> Result<B, ConfigError>,
    ) -> Result<ClientStack<B, R, Ord>, ConfigError> {
        check_timeout("total_timeout", self.total_timeout)?;
        check_timeout("attempt_timeout", self.attempt_timeout)?;
        weir_timeout::check_attempt_within_total(self.attempt_timeout, self.total_timeout)
            .map_err(|_| ConfigError::AttemptLongerThanTotal {
                attempt: self.attempt_timeout,
                total: self.total_timeout,
            })?;
        if self.sampling_window < self.attempt_timeout.saturating_mul(2) {
            return Err(ConfigError::SamplingWindowTooShort {
                sampling_window: self.sampling_window,
                attempt: self.attempt_timeout,
            });
        }
        let (total, attempt) =
            TimeoutLayer::total_and_attempt(self.total_timeout, self.attempt_timeout).map_err(
                |_| ConfigError::AttemptLongerThanTotal {
                    attempt: self.attempt_timeout,
                    total: self.total_timeout,
                },
            )?;
        let retry = build_retry(self.max_retries, self.budget).map_err(ConfigError::Retry)?;
        let bulkhead = BulkheadLayer::builder()
            .max_concurrent(self.max_concurrent)
            .build()
            .map_err(ConfigError::Bulkhead)?;
        let breaker = build_breaker(
            CircuitBreakerLayer::standard()
                .failure_rate(self.failure_rate)
                .minimum_calls(self.minimum_calls)
                .time_window(self.sampling_window, WINDOW_BUCKETS)
                .open_duration(self.open_duration),
        )?;
        Ok(ClientStack {
            total,
            retry,
            breaker,
            bulkhead,
            attempt,
            order: PhantomData,
        })
    }
}

impl<Ord> ClientBuilder<Single, Ord> {
    /// Checks the settings and builds the stack.
    ///
    /// # Errors
    ///
    /// A zero timeout, `attempt_timeout` longer than `total_timeout`, `sampling_window` shorter
    /// than twice `attempt_timeout`, or a rule of the retry, breaker or bulkhead.
    pub fn build(self) -> Result<ClientStack<CircuitBreakerLayer, RetryLayer, Ord>, ConfigError> {
        self.parts(
            |retries, budget| {
                RetryLayer::builder()
                    .max_retries(retries)
                    .budget(budget)
                    .build()
            },
            |breaker| breaker.build().map_err(ConfigError::CircuitBreaker),
        )
    }
}

impl<Ord> ClientBuilder<PerAuthority, Ord> {
    /// Checks the settings and builds the stack, with one breaker per authority, HTTP
    /// classification and body replay.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    #[allow(clippy::type_complexity)]
    pub fn build(
        self,
    ) -> Result<
        ClientStack<
            KeyedCircuitBreakerLayer<Authority, HttpStatus>,
            RetryLayer<HttpReplay, HttpStatus>,
            Ord,
        >,
        ConfigError,
    > {
        self.parts(
            |retries, budget| {
                RetryLayer::http()
                    .max_retries(retries)
                    .budget(budget)
                    .build()
            },
            |breaker| {
                breaker
                    .classifier(HttpStatus::default())
                    .keyed(Authority)
                    .build()
                    .map_err(ConfigError::CircuitBreaker)
            },
        )
    }
}

impl<K, Ord> fmt::Debug for ClientBuilder<K, Ord> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("total_timeout", &self.total_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_retries", &self.max_retries)
            .field("budget", &self.budget)
            .field("failure_rate", &self.failure_rate)
            .field("minimum_calls", &self.minimum_calls)
            .field("sampling_window", &self.sampling_window)
            .field("open_duration", &self.open_duration)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}
