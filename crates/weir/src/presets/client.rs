//! The standard client stack: [`ClientStack`] and its builder, in three modes (one breaker, one
//! per authority, gRPC).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use tower_layer::{Identity, Layer, Stack};
use tower_service::Service;
use weir_bulkhead::{BulkheadHandle, BulkheadLayer};
#[cfg(feature = "tonic")]
use weir_circuit_breaker::Trailers;
use weir_circuit_breaker::{
    CircuitBreakerBuilder, CircuitBreakerHandle, CircuitBreakerLayer, KeyedCircuitBreakerHandle,
    KeyedCircuitBreakerLayer,
};
use weir_core::inspect::Registry;
use weir_core::{Name, Observer, classify::AnyError, classify::HttpStatus, key::Authority};
#[cfg(feature = "tonic")]
use weir_core::{classify::ClassifyTrailers, classify::GrpcStatus};
use weir_retry::{HttpReplay, RetryBudget, RetryBuilder, RetryHandle, RetryLayer};
use weir_timeout::{TimeoutBuilder, TimeoutHandle, TimeoutLayer};

use weir_core::ConfigError;

use super::{CLIENT, adopt, check_timeout};
use crate::replay::IdempotentReplay;

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

/// The client preset's default allowance taken off the remaining budget when it is written
/// into `x-timeout-ms` / `grpc-timeout`: none, as gRPC's own clients send it.
const DEFAULT_PROPAGATION_ALLOWANCE: Duration = Duration::ZERO;

/// An observer of every layer of a [`ClientStack`]: it receives the events of the retry, the
/// circuit breaker, the bulkhead and both timeouts. `()` (the default: nothing), weir-core's
/// `Tracing` and `Metrics`, and any type implementing [`Observer`](weir_core::Observer) for
/// each layer's event qualify.
pub trait ClientObserver:
    Clone
    + Send
    + Sync
    + 'static
    + for<'a> Observer<weir_retry::Event<'a>>
    + for<'a> Observer<weir_circuit_breaker::Event<'a>>
    + for<'a> Observer<weir_bulkhead::Event<'a>>
    + for<'a> Observer<weir_timeout::Event<'a>>
{
}

impl<T> ClientObserver for T where
    T: Clone
        + Send
        + Sync
        + 'static
        + for<'a> Observer<weir_retry::Event<'a>>
        + for<'a> Observer<weir_circuit_breaker::Event<'a>>
        + for<'a> Observer<weir_bulkhead::Event<'a>>
        + for<'a> Observer<weir_timeout::Event<'a>>
{
}

mod sealed {
    pub trait Sealed {}
}

/// What kind of client a [`ClientStack`] serves: [`Single`], [`PerAuthority`] or `Grpc` (with
/// the `tonic` feature). The mode decides the breaker (one, or one per authority), how
/// outcomes are classified and requests replayed, and the adapters around the stack. Sealed.
pub trait Mode: sealed::Sealed {
    /// The circuit breaker layer, reporting to observer `O`.
    type Breaker<O>: Clone;
    /// The breaker's handle: state and control.
    type BreakerHandle: Clone + fmt::Debug;
    /// The retry layer, reporting to observer `O`.
    type Retry<O>: Clone;
    /// The outermost adapter (`Identity` but for gRPC: errors become `tonic::Status`es).
    type Outer: Clone;
    /// The innermost adapter (`Identity` but for gRPC: tonic's request body).
    type Inner: Clone;
}

/// [`ClientBuilder`] mode (the default): one circuit breaker for every request, classified
/// with `C` ([`AnyError`]: every error of the transport is a failure, responses are
/// successes); requests retried by cloning them, an `http::Request` only when idempotent
/// ([`IdempotentReplay`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Single<C = AnyError>(C);

/// [`ClientBuilder`] mode: an HTTP client with one circuit breaker per request authority (host
/// and port, keyed with [`Authority`]) classified with `C` ([`HttpStatus`]), retry classified
/// with [`HttpStatus`], and request bodies replayed with [`HttpReplay`] (idempotent requests
/// only); for `http::Request`s. The transport receives `http::Request<ReplayBody<B>>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerAuthority<C = HttpStatus>(C);

/// [`ClientBuilder`] mode: a gRPC client around a tonic `Channel`, from
/// [`ClientBuilder::grpc`]: one circuit breaker classified with `C` ([`GrpcStatus`]) at the end
/// of each response body, where gRPC puts the status (the breaker's
/// [`Trailers`](weir_circuit_breaker::Trailers)), gRPC
/// retry ([`RetryLayer::grpc`]: `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, ... with
/// `grpc-retry-pushback-ms` honoured), `grpc-timeout` propagation, tonic's request body
/// ([`TonicBodyLayer`](crate::TonicBodyLayer)) and every error a `tonic::Status` with its proper
/// code ([`GrpcStatusLayer`](crate::GrpcStatusLayer)).
#[cfg(feature = "tonic")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Grpc<C = GrpcStatus>(C);

impl<C> sealed::Sealed for Single<C> {}
impl<C> sealed::Sealed for PerAuthority<C> {}
#[cfg(feature = "tonic")]
impl<C> sealed::Sealed for Grpc<C> {}

impl<C> Mode for Single<C> {
    type Breaker<O> = CircuitBreakerLayer<C, O>;
    type BreakerHandle = CircuitBreakerHandle;
    type Retry<O> = RetryLayer<IdempotentReplay, AnyError, O>;
    type Outer = Identity;
    type Inner = Identity;
}

impl<C> Mode for PerAuthority<C> {
    type Breaker<O> = KeyedCircuitBreakerLayer<
        Authority,
        C,
        O,
        weir_circuit_breaker::Head,
        weir_core::protocol::Http,
    >;
    type BreakerHandle = KeyedCircuitBreakerHandle;
    type Retry<O> = RetryLayer<HttpReplay, HttpStatus, O>;
    type Outer = Identity;
    type Inner = Identity;
}

#[cfg(feature = "tonic")]
impl<C> Mode for Grpc<C> {
    type Breaker<O> = CircuitBreakerLayer<C, O, Trailers, weir_core::protocol::Http>;
    type BreakerHandle = CircuitBreakerHandle;
    type Retry<O> = RetryLayer<HttpReplay, GrpcStatus, O, weir_core::protocol::Http>;
    type Outer = crate::grpc::GrpcStatusLayer;
    type Inner = crate::grpc::TonicBodyLayer;
}

/// [`ClientStack`] order marker (the default): the breaker sits inside retry, so it counts
/// every attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct BreakerInside;

/// [`ClientStack`] order marker: the seeds' order, bulkhead → breaker → retry → attempt
/// timeout; the breaker sits outside retry and counts one outcome per logical call.
#[derive(Clone, Copy, Debug, Default)]
pub struct BreakerOutside;

/// The client layers in the standard order, innermost first.
type InsideLayers<K, O> = Stack<
    <K as Mode>::Inner,
    Stack<
        TimeoutLayer<Duration, O>,
        Stack<
            BulkheadLayer<O>,
            Stack<
                <K as Mode>::Breaker<O>,
                Stack<<K as Mode>::Retry<O>, Stack<TimeoutLayer<Duration, O>, <K as Mode>::Outer>>,
            >,
        >,
    >,
>;
/// The client layers in the seeds' order, innermost first.
type OutsideLayers<K, O> = Stack<
    <K as Mode>::Inner,
    Stack<
        TimeoutLayer<Duration, O>,
        Stack<
            <K as Mode>::Retry<O>,
            Stack<
                <K as Mode>::Breaker<O>,
                Stack<BulkheadLayer<O>, Stack<TimeoutLayer<Duration, O>, <K as Mode>::Outer>>,
            >,
        >,
    >,
>;

/// The service a [`ClientStack`] makes of the transport `S`: name it in a struct field or a
/// function's return type (see the crate's
/// [`# Naming a stack's type`](crate#naming-a-stacks-type)).
pub type Client<S, K = Single, Ord = BreakerInside, O = ()> =
    <ClientStack<K, Ord, O> as Layer<S>>::Service;

/// The service of a [`ClientStack`] with a fallback slot filled ([`ClientStack::fallback`]):
/// the layer `F` (a weir-fallback `FallbackLayer`) around [`Client`].
pub type FallbackClient<S, F, K = Single, Ord = BreakerInside, O = ()> =
    <F as Layer<Client<S, K, Ord, O>>>::Service;

/// The service of a [`ClientStack`] with its chaos slot filled ([`ClientStack::chaos`]): the
/// layer `X` (a weir-chaos `ChaosLayer`) around the transport `S`, inside [`Client`].
pub type ChaosClient<S, X, K = Single, Ord = BreakerInside, O = ()> =
    <ClientStack<K, Ord, O, Identity, X> as Layer<S>>::Service;

/// The service of [`ClientStack::builder().per_authority()`](ClientBuilder::per_authority)
/// around the HTTP transport `S` (a hyper client taking `http::Request<ReplayBody<B>>`).
pub type HttpClient<S, O = ()> = Client<S, PerAuthority, BreakerInside, O>;

/// The service of [`ClientStack::builder().grpc()`](ClientBuilder::grpc) around `S` (a tonic
/// `Channel`); its error is `tonic::Status`, so tonic's generated clients take it.
#[cfg(feature = "tonic")]
pub type GrpcClient<S, O = ()> = Client<S, Grpc, BreakerInside, O>;

/// The standard client stack, one [`Layer`]: outermost first, a total timeout (sets the
/// request's [`Deadline`](crate::core::Deadline)), budgeted retry, a circuit breaker (one, or one per
/// authority), a bulkhead, and an attempt timeout that writes the time left into the outgoing
/// request (`x-timeout-ms`, or `grpc-timeout` for gRPC), in front of the transport.
///
/// With [`ClientBuilder::breaker_outside_retry`] the order is the seeds' one instead: total
/// timeout → bulkhead → breaker → retry → attempt timeout. What changes: see the crate's
/// [`# Ordering`](crate#ordering).
///
/// **What is retried.** An `http::Request` only when it is idempotent (GET, HEAD, OPTIONS, PUT,
/// DELETE, TRACE; POST and PATCH with an `Idempotency-Key` header), in every mode;
/// [`ClientBuilder::retry_non_idempotent`] opts in to the rest. Any other request is retried.
///
/// **Its parts.** Every stateful layer inside is reachable: [`breaker_handle`](Self::breaker_handle)
/// (state, and control: open, close, reset), [`retry_handle`](Self::retry_handle) (retries,
/// budget), [`bulkhead_handle`](Self::bulkhead_handle) (permits in use); and
/// [`ClientBuilder::observer`] receives every layer's events.
///
/// ```
/// use weir::ClientStack;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stack = ClientStack::builder().build().unwrap();
/// let client = ServiceBuilder::new()
///     .layer(stack.clone())
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(client.oneshot(41).await.unwrap(), 42);
/// assert_eq!(stack.breaker_handle().state(), weir::circuit_breaker::State::Closed);
/// # }
/// ```
pub struct ClientStack<K: Mode = Single, Ord = BreakerInside, O = (), F = Identity, X = Identity> {
    total: TimeoutLayer<Duration, O>,
    retry: K::Retry<O>,
    breaker: K::Breaker<O>,
    bulkhead: BulkheadLayer<O>,
    attempt: TimeoutLayer<Duration, O>,
    outer: K::Outer,
    inner: K::Inner,
    breaker_handle: K::BreakerHandle,
    retry_handle: RetryHandle,
    bulkhead_handle: BulkheadHandle,
    /// Apply new settings to the total and the attempt timeout (a configuration reload).
    timeout_handles: (TimeoutHandle<Duration>, TimeoutHandle<Duration>),
    /// The fallback slot, outermost: `Identity` (nothing, and no cost) unless filled.
    fallback: F,
    /// The chaos slot, innermost (around the transport): `Identity` (nothing, and no cost)
    /// unless filled.
    chaos: X,
    order: PhantomData<fn() -> Ord>,
}

impl ClientStack {
    /// A builder with the defaults (see [`ClientBuilder`]).
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            settings: ClientSettings::default(),
            mode: Single(AnyError),
            observer: (),
            registry: None,
            name: Name::new("client"),
            order: PhantomData,
        }
    }
}

impl<K: Mode, Ord, O, F, X> ClientStack<K, Ord, O, F, X> {
    /// Fills the fallback slot, outermost on the stack: after the retries, as Polly recommends,
    /// so each logical call falls back once, when its retries (and the total timeout) are
    /// spent, and the breaker and the retry budget inside count every real failure, never a
    /// fallback answer. `fallback` is any layer; a weir-fallback `FallbackLayer` in practice.
    ///
    /// ```
    /// # #[cfg(not(feature = "fallback"))] fn main() {}
    /// # #[cfg(feature = "fallback")]
    /// use std::io;
    /// # #[cfg(feature = "fallback")]
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// # #[cfg(feature = "fallback")]
    /// use weir::ClientStack;
    /// # #[cfg(feature = "fallback")]
    /// use weir::fallback::{Cause, FallbackLayer};
    ///
    /// # #[cfg(feature = "fallback")]
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let fallback = FallbackLayer::builder()
    ///     .value(|_: Cause<'_, u32, weir::core::BoxError>| Some(0))
    ///     .build()
    ///     .unwrap();
    /// let stack = ClientStack::builder().build().unwrap().fallback(fallback);
    /// let client = ServiceBuilder::new()
    ///     .layer(stack.clone())
    ///     .service(service_fn(|_: u32| async { Err::<u32, _>(io::Error::other("down")) }));
    /// assert_eq!(client.oneshot(41).await.unwrap(), 0); // after the retries
    /// assert!(stack.retry_handle().retries() > 0);
    /// # }
    /// ```
    pub fn fallback<F2>(self, fallback: F2) -> ClientStack<K, Ord, O, F2, X> {
        ClientStack {
            total: self.total,
            retry: self.retry,
            breaker: self.breaker,
            bulkhead: self.bulkhead,
            attempt: self.attempt,
            outer: self.outer,
            inner: self.inner,
            breaker_handle: self.breaker_handle,
            retry_handle: self.retry_handle,
            bulkhead_handle: self.bulkhead_handle,
            timeout_handles: self.timeout_handles,
            fallback,
            chaos: self.chaos,
            order: PhantomData,
        }
    }

    /// The fallback slot's layer (`Identity` when empty).
    #[must_use]
    pub const fn fallback_layer(&self) -> &F {
        &self.fallback
    }

    /// Fills the chaos slot, innermost on the stack: right around the transport, inside the
    /// attempt timeout, so an injected fault looks like what it stands for, a failing, slow or
    /// hanging upstream, and every layer of the stack is exercised: the retry retries an
    /// injected error (within its budget), the breaker counts it, the bulkhead's permit is held
    /// through injected latency, the attempt timeout cuts a stall. Empty (`Identity`, no cost)
    /// unless filled. `chaos` is any layer; a weir-chaos `ChaosLayer` in practice, whose handle
    /// turns it on and off at run time (see the weir-chaos crate's `# Ordering`).
    ///
    /// ```
    /// # #[cfg(not(feature = "chaos"))] fn main() {}
    /// # #[cfg(feature = "chaos")]
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// # #[cfg(feature = "chaos")]
    /// use weir::ClientStack;
    /// # #[cfg(feature = "chaos")]
    /// use weir::chaos::{ChaosLayer, Fault};
    ///
    /// # #[cfg(feature = "chaos")]
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (chaos, faults) = ChaosLayer::builder()
    ///     .error(1.0, || std::io::Error::other("injected"))
    ///     .seed(7)
    ///     .build_with_handle()
    ///     .unwrap();
    /// let stack = ClientStack::builder().max_retries(2).build().unwrap().chaos(chaos);
    /// let client = ServiceBuilder::new()
    ///     .layer(stack.clone())
    ///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    /// assert!(client.oneshot(1).await.is_err()); // every attempt got the fault...
    /// assert_eq!(faults.injected(Fault::Error), 3); // ...and the retry retried it twice
    /// assert_eq!(stack.retry_handle().retries(), 2);
    /// # }
    /// ```
    pub fn chaos<X2>(self, chaos: X2) -> ClientStack<K, Ord, O, F, X2> {
        ClientStack {
            total: self.total,
            retry: self.retry,
            breaker: self.breaker,
            bulkhead: self.bulkhead,
            attempt: self.attempt,
            outer: self.outer,
            inner: self.inner,
            breaker_handle: self.breaker_handle,
            retry_handle: self.retry_handle,
            bulkhead_handle: self.bulkhead_handle,
            timeout_handles: self.timeout_handles,
            fallback: self.fallback,
            chaos,
            order: PhantomData,
        }
    }

    /// The chaos slot's layer (`Identity` when empty).
    #[must_use]
    pub const fn chaos_layer(&self) -> &X {
        &self.chaos
    }

    /// The circuit breaker layer.
    #[must_use]
    pub const fn breaker(&self) -> &K::Breaker<O> {
        &self.breaker
    }

    /// The circuit breaker's handle: its state and counts, and control (open, close, reset).
    /// For [`PerAuthority`], a handle over every authority's breaker.
    #[must_use]
    pub const fn breaker_handle(&self) -> &K::BreakerHandle {
        &self.breaker_handle
    }

    /// The retry layer's handle: retries made, give-ups, budget refusals.
    #[must_use]
    pub const fn retry_handle(&self) -> &RetryHandle {
        &self.retry_handle
    }

    /// The bulkhead's handle: permits in use and available.
    #[must_use]
    pub const fn bulkhead_handle(&self) -> &BulkheadHandle {
        &self.bulkhead_handle
    }

    /// The handles that apply new settings to the total timeout and to the attempt timeout
    /// while the stack runs (`weir_core::reconfigure::Reconfigure::apply`, with a
    /// `TimeoutLayer::builder()`; their names stay `"total"` and `"attempt"`). A call already
    /// made keeps its deadline.
    #[must_use]
    pub const fn timeout_handles(&self) -> (&TimeoutHandle<Duration>, &TimeoutHandle<Duration>) {
        (&self.timeout_handles.0, &self.timeout_handles.1)
    }
}

impl<C, Ord, O> ClientStack<PerAuthority<C>, Ord, O> {
    /// Wraps the HTTP transport `transport`, as [`Layer::layer`] does, with a bound that says
    /// what it must take: `http::Request<ReplayBody<B>>` (request bodies are kept for replay).
    /// A hyper client is built for that body: `Client::builder(..).build_http::<ReplayBody<Full<Bytes>>>()`.
    /// A transport that takes another body is refused here, with that bound in the message,
    /// rather than deep inside the stack's nested types:
    ///
    /// ```compile_fail
    /// use http::{Request, Response};
    /// use tower::service_fn;
    /// use weir::ClientStack;
    ///
    /// let stack = ClientStack::builder().per_authority().build().unwrap();
    /// // `String` bodies, not `ReplayBody<String>`: refused.
    /// let client = stack.wrap(service_fn(|_req: Request<String>| async {
    ///     Ok::<_, std::io::Error>(Response::new(String::new()))
    /// }));
    /// ```
    ///
    /// ```
    /// use http::{Request, Response};
    /// use tower::service_fn;
    /// use weir::ClientStack;
    /// use weir::retry::ReplayBody;
    ///
    /// let stack = ClientStack::builder().per_authority().build().unwrap();
    /// let client = stack.wrap(service_fn(|_req: Request<ReplayBody<String>>| async {
    ///     Ok::<_, std::io::Error>(Response::new(String::new()))
    /// }));
    /// # let _ = client;
    /// ```
    pub fn wrap<S, B>(&self, transport: S) -> <Self as Layer<S>>::Service
    where
        S: Service<http::Request<weir_retry::ReplayBody<B>>>,
        Self: Layer<S>,
    {
        self.layer(transport)
    }
}

impl<S, K, O, F, X> Layer<S> for ClientStack<K, BreakerInside, O, F, X>
where
    K: Mode,
    O: Clone,
    X: Layer<S>,
    InsideLayers<K, O>: Layer<X::Service>,
    F: Layer<<InsideLayers<K, O> as Layer<X::Service>>::Service>,
{
    type Service = F::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let layers: InsideLayers<K, O> = Stack::new(
            self.inner.clone(),
            Stack::new(
                self.attempt.clone(),
                Stack::new(
                    self.bulkhead.clone(),
                    Stack::new(
                        self.breaker.clone(),
                        Stack::new(
                            self.retry.clone(),
                            Stack::new(self.total.clone(), self.outer.clone()),
                        ),
                    ),
                ),
            ),
        );
        self.fallback.layer(layers.layer(self.chaos.layer(inner)))
    }
}

impl<S, K, O, F, X> Layer<S> for ClientStack<K, BreakerOutside, O, F, X>
where
    K: Mode,
    O: Clone,
    X: Layer<S>,
    OutsideLayers<K, O>: Layer<X::Service>,
    F: Layer<<OutsideLayers<K, O> as Layer<X::Service>>::Service>,
{
    type Service = F::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let layers: OutsideLayers<K, O> = Stack::new(
            self.inner.clone(),
            Stack::new(
                self.attempt.clone(),
                Stack::new(
                    self.retry.clone(),
                    Stack::new(
                        self.breaker.clone(),
                        Stack::new(
                            self.bulkhead.clone(),
                            Stack::new(self.total.clone(), self.outer.clone()),
                        ),
                    ),
                ),
            ),
        );
        self.fallback.layer(layers.layer(self.chaos.layer(inner)))
    }
}

impl<K: Mode, Ord, O: Clone, F: Clone, X: Clone> Clone for ClientStack<K, Ord, O, F, X> {
    /// Shares every layer's state (breaker, retry budget, bulkhead permits).
    fn clone(&self) -> Self {
        Self {
            total: self.total.clone(),
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            bulkhead: self.bulkhead.clone(),
            attempt: self.attempt.clone(),
            outer: self.outer.clone(),
            inner: self.inner.clone(),
            breaker_handle: self.breaker_handle.clone(),
            retry_handle: self.retry_handle.clone(),
            bulkhead_handle: self.bulkhead_handle.clone(),
            timeout_handles: self.timeout_handles.clone(),
            fallback: self.fallback.clone(),
            chaos: self.chaos.clone(),
            order: PhantomData,
        }
    }
}

impl<K: Mode, Ord, O, F, X> fmt::Debug for ClientStack<K, Ord, O, F, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStack")
            .field("total", &self.total)
            .field("breaker", &self.breaker_handle)
            .field("retry", &self.retry_handle)
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
/// | what is retried | idempotent HTTP requests, any other request | POST and PATCH only with an `Idempotency-Key` header; [`retry_non_idempotent`](Self::retry_non_idempotent) for the rest (gRPC calls are POSTs) |
/// | `budget` | 20 % of requests over 10 s, plus 10/s | weir-retry's default (Envoy 20 %, Finagle 10/s); .NET has no budget |
/// | `failure_rate` | 10 % | |
/// | `minimum_calls` | 100 | |
/// | `sampling_window` | 30 s (10 buckets) | must be at least twice `attempt_timeout` |
/// | `open_duration` | 5 s | |
/// | half-open probes | 3 | weir-circuit-breaker's default (research notes d4: "~3") |
/// | breaker classifier | the mode's: [`AnyError`], [`HttpStatus`] (per authority), [`GrpcStatus`] (gRPC) | [`breaker_classifier`](ClientBuilder::breaker_classifier) |
/// | `max_concurrent` | 1 000, no queue | .NET's rate limiter is really this bulkhead; **differs** in place: .NET puts it outermost, here it sits inside the breaker so it bounds calls to the transport |
/// | `attempt_timeout` | 10 s | must be at most `total_timeout` |
/// | deadline propagation | on, no allowance | the time left (the earlier of the total and the attempt deadline) is sent as `x-timeout-ms`, or `grpc-timeout` for gRPC, as gRPC's clients send it; [`deadline_allowance`](Self::deadline_allowance), [`propagate_deadline`](Self::propagate_deadline) |
/// | observer | `()` (none) | [`observer`](Self::observer): every layer's events |
/// | seed | none: each layer seeds itself | [`seed`](Self::seed): the retry's and the breaker's jitter replay exactly (tests, simulations) |
/// | breaker | one for all requests | [`per_authority`](Self::per_authority) for one per host |
/// | order | breaker inside retry | [`breaker_outside_retry`](Self::breaker_outside_retry) for the seeds' order |
pub struct ClientBuilder<K = Single, Ord = BreakerInside, O = ()> {
    settings: ClientSettings,
    mode: K,
    observer: O,
    /// Where `build` registers the layers it builds ([`registry`](ClientBuilder::registry)).
    registry: Option<Registry>,
    /// The name of every stateful layer the preset builds ([`name`](ClientBuilder::name)).
    name: Name,
    order: PhantomData<fn() -> Ord>,
}

/// The client preset's settings: every number and switch of a [`ClientBuilder`], in one place,
/// so a method that changes the builder's type (the mode, the order, the observer) moves them
/// in one line.
#[derive(Clone, Copy, Debug)]
struct ClientSettings {
    total_timeout: Duration,
    attempt_timeout: Duration,
    max_retries: u32,
    budget: RetryBudget,
    failure_rate: f64,
    minimum_calls: u32,
    sampling_window: Duration,
    open_duration: Duration,
    max_concurrent: usize,
    propagate: Option<Duration>,
    retry_non_idempotent: bool,
    retry_put_delete: bool,
    /// The seed of the retry's jitter and the breaker's open-time jitter; from the process
    /// unless set.
    seed: Option<u64>,
}

impl Default for ClientSettings {
    /// The preset's defaults (see [`ClientBuilder`]).
    fn default() -> Self {
        Self {
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            budget: RetryBudget::default(),
            failure_rate: DEFAULT_FAILURE_RATE,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            sampling_window: DEFAULT_SAMPLING_WINDOW,
            open_duration: DEFAULT_OPEN_DURATION,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            propagate: Some(DEFAULT_PROPAGATION_ALLOWANCE),
            retry_non_idempotent: false,
            retry_put_delete: true,
            seed: None,
        }
    }
}

impl<K, Ord, O> ClientBuilder<K, Ord, O> {
    /// The longest a logical call may take, every attempt and backoff sleep included.
    #[must_use]
    pub const fn total_timeout(mut self, timeout: Duration) -> Self {
        self.settings.total_timeout = timeout;
        self
    }

    /// The longest one attempt may take; at most `total_timeout`.
    #[must_use]
    pub const fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.settings.attempt_timeout = timeout;
        self
    }

    /// Retries after the first attempt (0 turns retry off): `max_retries(3)` makes at most 4
    /// attempts, as [`ServiceBuilderExt::weir_retry(3)`](crate::ServiceBuilderExt::weir_retry) and
    /// weir-retry's `max_retries(3)` do.
    #[must_use]
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.settings.max_retries = retries;
        self
    }

    /// Retries non-idempotent HTTP requests too (POST and PATCH without an `Idempotency-Key`;
    /// every gRPC call, gRPC calls being POSTs). Only when the server tolerates duplicates: a
    /// POST whose attempt timed out may have been done, and its retry does it again.
    #[must_use]
    pub const fn retry_non_idempotent(mut self) -> Self {
        self.settings.retry_non_idempotent = true;
        self
    }

    /// Retries PUT and DELETE only with an `Idempotency-Key`, as POST and PATCH: for a server
    /// whose PUT or DELETE is not idempotent. By default they are retried (RFC 9110 calls them
    /// idempotent).
    #[must_use]
    pub const fn no_put_delete_retries(mut self) -> Self {
        self.settings.retry_put_delete = false;
        self
    }

    /// The retry budget shared by every call through the stack.
    #[must_use]
    pub const fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = budget;
        self
    }

    /// The breaker opens when this percentage of the calls in the window failed.
    #[must_use]
    pub const fn failure_rate(mut self, percent: f64) -> Self {
        self.settings.failure_rate = percent;
        self
    }

    /// The breaker does not open before this many calls in the window.
    #[must_use]
    pub const fn minimum_calls(mut self, calls: u32) -> Self {
        self.settings.minimum_calls = calls;
        self
    }

    /// The breaker's sampling window (a time window of 10 buckets); at least twice
    /// `attempt_timeout`.
    #[must_use]
    pub const fn sampling_window(mut self, window: Duration) -> Self {
        self.settings.sampling_window = window;
        self
    }

    /// How long the breaker stays open before it lets probes through.
    #[must_use]
    pub const fn open_duration(mut self, duration: Duration) -> Self {
        self.settings.open_duration = duration;
        self
    }

    /// Seeds the stack's randomness (the retry's backoff jitter, the breaker's open-time
    /// jitter), for runs that replay exactly: tests, and weir-chaos's simulator. Each layer
    /// seeds itself from a cheap random value otherwise.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// The bulkhead: at most `max` calls to the transport at once, no queue.
    #[must_use]
    pub const fn max_concurrent(mut self, max: usize) -> Self {
        self.settings.max_concurrent = max;
        self
    }

    /// Whether each attempt carries the time left of the call's deadline (the earlier of the
    /// total and the attempt deadline, and any deadline already in the request's extensions) in
    /// `x-timeout-ms`, or `grpc-timeout` for a gRPC request; on by default. A request with no
    /// time left is not sent (a timeout error).
    #[must_use]
    pub const fn propagate_deadline(mut self, propagate: bool) -> Self {
        self.settings.propagate = if propagate {
            match self.settings.propagate {
                Some(allowance) => Some(allowance),
                None => Some(DEFAULT_PROPAGATION_ALLOWANCE),
            }
        } else {
            None
        };
        self
    }

    /// Takes `allowance` off the time left before it is sent (for the network, so the server
    /// gives up before the client does); none by default. Turns propagation on.
    #[must_use]
    pub const fn deadline_allowance(mut self, allowance: Duration) -> Self {
        self.settings.propagate = Some(allowance);
        self
    }

    /// Receives every layer's events (retries and give-ups, breaker transitions and refusals,
    /// bulkhead refusals, timeouts): weir-core's `Tracing` or `Metrics`, or your own
    /// [`ClientObserver`].
    #[must_use]
    pub fn observer<O2>(self, observer: O2) -> ClientBuilder<K, Ord, O2> {
        ClientBuilder {
            settings: self.settings,
            mode: self.mode,
            observer,
            registry: self.registry,
            name: self.name,
            order: self.order,
        }
    }

    /// An HTTP client: one breaker per authority (host and port) of the request, with these
    /// settings each, so one failing upstream does not cut the others off; outcomes classified
    /// with [`HttpStatus`] (5xx, 408 and 429 are retried, with `Retry-After` honoured) and
    /// request bodies replayed with [`HttpReplay`], as `RetryLayer::http()` does. For
    /// `http::Request`s; the transport receives `http::Request<ReplayBody<B>>` (a hyper client
    /// built with `build_http::<ReplayBody<B>>()`). Resets the breaker classifier to
    /// [`HttpStatus`].
    #[must_use]
    pub fn per_authority(self) -> ClientBuilder<PerAuthority, Ord, O> {
        self.retype(PerAuthority(HttpStatus::default()))
    }

    /// A gRPC client, around a tonic `Channel` as it is: [`GrpcStatus`] classification for the
    /// breaker and retry (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `ABORTED`, `DEADLINE_EXCEEDED`
    /// retried, `grpc-retry-pushback-ms` honoured, gRPC's ±20 % jitter), the breaker and the
    /// retry budget reading the status where gRPC sends it, in the trailers (an `UNAVAILABLE`
    /// after the first message is a failure, not the success its `200` head looks like; the
    /// breaker's permit is held until the response body ends), `grpc-timeout`
    /// propagation, tonic's request body, and every error a `tonic::Status` with its proper
    /// code: a transport failure (connection refused) is `UNAVAILABLE`, an open circuit or a
    /// full bulkhead `UNAVAILABLE` with a pushback, a timeout `DEADLINE_EXCEEDED` (see
    /// [`grpc_status`](crate::grpc_status)). gRPC calls are POSTs: they are retried only after
    /// [`retry_non_idempotent`](Self::retry_non_idempotent) (for services whose methods are
    /// idempotent) or with an `idempotency-key` in their metadata. Resets the breaker
    /// classifier to [`GrpcStatus`].
    #[cfg(feature = "tonic")]
    #[must_use]
    pub fn grpc(self) -> ClientBuilder<Grpc, Ord, O> {
        self.retype(Grpc(GrpcStatus::default()))
    }

    /// Names the retry layer, the circuit breaker and the bulkhead the preset builds (in
    /// errors, events and a [`registry`](Self::registry)); `"client"` by default. Name each
    /// stack when an application has several (one per downstream).
    #[must_use]
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows the layers the preset builds in `registry` (a status page, a metrics exporter):
    /// the retry layer, the circuit breaker (keyed, per authority, for `http()`) and the
    /// bulkhead, each under the stack's [`name`](Self::name) (`"client"` by default; a second
    /// client stack of the same name in one registry is a [`ConfigError`], duplicate `name`).
    /// The timeouts have no state to show.
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The seeds' order: total timeout → bulkhead → breaker → retry → attempt timeout. The
    /// breaker then counts one outcome per logical call instead of one per attempt; see the
    /// crate's [`# Ordering`](crate#ordering).
    #[must_use]
    pub fn breaker_outside_retry(self) -> ClientBuilder<K, BreakerOutside, O> {
        ClientBuilder {
            settings: self.settings,
            mode: self.mode,
            observer: self.observer,
            registry: self.registry,
            name: self.name,
            order: PhantomData,
        }
    }

    fn retype<K2>(self, mode: K2) -> ClientBuilder<K2, Ord, O> {
        self.swap_mode(mode).1
    }

    /// The mode, and the same settings with `mode` in its place.
    fn swap_mode<K2>(self, mode: K2) -> (K, ClientBuilder<K2, Ord, O>) {
        let rest = ClientBuilder {
            settings: self.settings,
            mode,
            observer: self.observer,
            registry: self.registry,
            name: self.name,
            order: self.order,
        };
        (self.mode, rest)
    }
}

impl<C, Ord, O> ClientBuilder<Single<C>, Ord, O> {
    /// The breaker's classifier, in place of [`AnyError`]: any [`Classify`](weir_core::Classify).
    #[must_use]
    pub fn breaker_classifier<C2>(self, classifier: C2) -> ClientBuilder<Single<C2>, Ord, O> {
        self.retype(Single(classifier))
    }
}

impl<C, Ord, O> ClientBuilder<PerAuthority<C>, Ord, O> {
    /// The breakers' classifier, in place of [`HttpStatus::default()`]: for instance an
    /// `HttpStatus` that counts a 429 as a failure, or a closure.
    #[must_use]
    pub fn breaker_classifier<C2>(self, classifier: C2) -> ClientBuilder<PerAuthority<C2>, Ord, O> {
        self.retype(PerAuthority(classifier))
    }
}

#[cfg(feature = "tonic")]
impl<C, Ord, O> ClientBuilder<Grpc<C>, Ord, O> {
    /// The breaker's classifier, in place of [`GrpcStatus::default()`] (for instance
    /// `GrpcStatus::new().only_retryable(..)`): one that reads the status in the trailers
    /// ([`ClassifyTrailers`]), since the breaker classifies each call at the end of its body.
    #[must_use]
    pub fn breaker_classifier<C2: ClassifyTrailers>(
        self,
        classifier: C2,
    ) -> ClientBuilder<Grpc<C2>, Ord, O> {
        self.retype(Grpc(classifier))
    }
}

impl<K, Ord, O: ClientObserver> ClientBuilder<K, Ord, O> {
    /// Checks the rules every mode shares.
    fn check(&self) -> Result<(), ConfigError> {
        check_timeout(CLIENT, "total_timeout", self.settings.total_timeout)?;
        check_timeout(CLIENT, "attempt_timeout", self.settings.attempt_timeout)?;
        weir_timeout::check_attempt_within_total(
            self.settings.attempt_timeout,
            self.settings.total_timeout,
        )
        .map_err(|_| {
            ConfigError::conflict(
                CLIENT,
                "attempt_timeout",
                format!(
                    "({:?}) must not be longer than `total_timeout` ({:?})",
                    self.settings.attempt_timeout, self.settings.total_timeout
                ),
            )
        })?;
        if self.settings.sampling_window < self.settings.attempt_timeout.saturating_mul(2) {
            return Err(ConfigError::out_of_range(
                CLIENT,
                "sampling_window",
                format!(
                    "({:?}) must be at least twice `attempt_timeout` ({:?})",
                    self.settings.sampling_window, self.settings.attempt_timeout
                ),
            ));
        }
        Ok(())
    }

    /// The breaker's settings, with the observer.
    fn breaker_settings(&self) -> CircuitBreakerBuilder<AnyError, O> {
        let breaker = CircuitBreakerLayer::standard()
            .name(self.name.clone())
            .failure_rate(self.settings.failure_rate)
            .minimum_calls(self.settings.minimum_calls)
            .time_window(self.settings.sampling_window, WINDOW_BUCKETS)
            .open_duration(self.settings.open_duration)
            .observer(self.observer.clone());
        let breaker = match &self.registry {
            Some(registry) => breaker.registry(registry),
            None => breaker,
        };
        match self.settings.seed {
            Some(seed) => breaker.seed(seed),
            None => breaker,
        }
    }

    /// The retry's settings, with the observer, over `retry`.
    fn retry_settings<R, C, P>(
        &self,
        retry: RetryBuilder<R, C, (), P>,
    ) -> RetryBuilder<R, C, O, P> {
        let retry = retry
            .name(self.name.clone())
            .max_retries(self.settings.max_retries)
            .budget(self.settings.budget)
            .observer(self.observer.clone());
        let retry = match &self.registry {
            Some(registry) => retry.registry(registry),
            None => retry,
        };
        match self.settings.seed {
            Some(seed) => retry.seed(seed),
            None => retry,
        }
    }

    /// Builds the timeouts and the bulkhead, and puts the stack together.
    fn assemble<K2: Mode>(
        self,
        (retry, retry_handle): (K2::Retry<O>, RetryHandle),
        (breaker, breaker_handle): (K2::Breaker<O>, K2::BreakerHandle),
        outer: K2::Outer,
        inner: K2::Inner,
    ) -> Result<ClientStack<K2, Ord, O>, ConfigError> {
        let zero = |field| move |_| ConfigError::zero(CLIENT, field, "must be greater than zero");
        let (total, total_handle) = self
            .total_timeout_settings()
            .name("total")
            .observer(self.observer.clone())
            .build_with_handle()
            .map_err(zero("total_timeout"))?;
        let (attempt, attempt_handle) = self
            .attempt_timeout_settings()
            .name("attempt")
            .observer(self.observer.clone())
            .build_with_handle()
            .map_err(zero("attempt_timeout"))?;
        let bulkhead = BulkheadLayer::builder()
            .name(self.name.clone())
            .max_concurrent(self.settings.max_concurrent)
            .observer(self.observer);
        let bulkhead = match &self.registry {
            Some(registry) => bulkhead.registry(registry),
            None => bulkhead,
        };
        let (bulkhead, bulkhead_handle) = bulkhead
            .build_with_handle()
            .map_err(|e| adopt("bulkhead", "max_concurrent", e))?;
        Ok(ClientStack {
            total,
            retry,
            breaker,
            bulkhead,
            attempt,
            outer,
            inner,
            breaker_handle,
            retry_handle,
            bulkhead_handle,
            timeout_handles: (total_handle, attempt_handle),
            fallback: Identity::new(),
            chaos: Identity::new(),
            order: PhantomData,
        })
    }
}

/// The parts of the settings a running stack can take again (a configuration reload).
impl<K, Ord, O> ClientBuilder<K, Ord, O> {
    /// The total timeout's settings, as `build` gives them (without its name and observer).
    pub(crate) fn total_timeout_settings(&self) -> TimeoutBuilder {
        TimeoutLayer::builder().timeout(self.settings.total_timeout)
    }

    /// The attempt timeout's settings, as `build` gives them (without its name and observer).
    pub(crate) fn attempt_timeout_settings(&self) -> TimeoutBuilder {
        let attempt = TimeoutLayer::builder().timeout(self.settings.attempt_timeout);
        match self.settings.propagate {
            Some(allowance) => attempt.propagate(allowance),
            None => attempt,
        }
    }

    /// `running` (a breaker's settings in force) with this builder's thresholds, window and
    /// open time.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) const fn breaker_tuning(
        &self,
        running: CircuitBreakerBuilder,
    ) -> CircuitBreakerBuilder {
        running
            .failure_rate(self.settings.failure_rate)
            .minimum_calls(self.settings.minimum_calls)
            .time_window(self.settings.sampling_window, WINDOW_BUCKETS)
            .open_duration(self.settings.open_duration)
    }

    /// Retries after the first attempt, as set.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) const fn max_retries_setting(&self) -> u32 {
        self.settings.max_retries
    }

    /// The bulkhead's size, as set.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) const fn max_concurrent_setting(&self) -> usize {
        self.settings.max_concurrent
    }
}

impl<C, Ord, O> ClientBuilder<Single<C>, Ord, O>
where
    C: Send + Sync + 'static,
    O: ClientObserver,
{
    /// Checks the settings and builds the stack.
    ///
    /// # Errors
    ///
    /// A zero timeout, `attempt_timeout` longer than `total_timeout`, `sampling_window` shorter
    /// than twice `attempt_timeout`, or a rule of the retry, breaker or bulkhead.
    pub fn build(self) -> Result<ClientStack<Single<C>, Ord, O>, ConfigError> {
        let (Single(classifier), this) = self.swap_mode(());
        this.check()?;
        let replay = IdempotentReplay::new()
            .retry_non_idempotent(this.settings.retry_non_idempotent)
            .retry_put_delete(this.settings.retry_put_delete);
        let retry = this
            .retry_settings(RetryLayer::builder().replay(replay))
            .build_with_handle()
            .map_err(|e| adopt("retry", "max_retries", e))?;
        let breaker = this
            .breaker_settings()
            .classifier(classifier)
            .build_with_handle()
            .map_err(|e| adopt("circuit breaker", "circuit_breaker", e))?;
        this.assemble::<Single<C>>(retry, breaker, Identity::new(), Identity::new())
    }
}

impl<C, Ord, O> ClientBuilder<PerAuthority<C>, Ord, O>
where
    C: Send + Sync + 'static,
    O: ClientObserver,
{
    /// Checks the settings and builds the stack, with one breaker per authority, HTTP
    /// classification and body replay.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    pub fn build(self) -> Result<ClientStack<PerAuthority<C>, Ord, O>, ConfigError> {
        let (PerAuthority(classifier), this) = self.swap_mode(());
        this.check()?;
        let http = RetryLayer::http().replay(
            HttpReplay::new()
                .non_idempotent(this.settings.retry_non_idempotent)
                .retry_put_delete(this.settings.retry_put_delete),
        );
        let retry = this
            .retry_settings(http)
            .build_with_handle()
            .map_err(|e| adopt("retry", "max_retries", e))?;
        let breaker = this
            .breaker_settings()
            .classifier(classifier)
            .keyed(Authority)
            .build_with_handle()
            .map_err(|e| adopt("circuit breaker", "circuit_breaker", e))?;
        // HTTP mode: a refusal carries the request's trace id (#19).
        let breaker = (breaker.0.http(), breaker.1);
        this.assemble::<PerAuthority<C>>(retry, breaker, Identity::new(), Identity::new())
    }
}

#[cfg(feature = "tonic")]
impl<C, Ord, O> ClientBuilder<Grpc<C>, Ord, O>
where
    C: Send + Sync + 'static,
    O: ClientObserver,
{
    /// Checks the settings and builds the gRPC stack.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    pub fn build(self) -> Result<ClientStack<Grpc<C>, Ord, O>, ConfigError> {
        let (Grpc(classifier), this) = self.swap_mode(());
        this.check()?;
        // gRPC's replay: a unary call's message is in memory and replayed; a streaming call is
        // sent at once and not retried (see `RetryLayer::grpc`).
        let replay = HttpReplay::new()
            .non_idempotent(this.settings.retry_non_idempotent)
            .retry_put_delete(this.settings.retry_put_delete)
            .wait_for_body(false);
        let retry = this
            .retry_settings(RetryLayer::grpc().replay(replay))
            .build_with_handle()
            .map_err(|e| adopt("retry", "max_retries", e))?;
        let breaker = this
            .breaker_settings()
            .classifier(classifier)
            .build_with_handle()
            .map_err(|e| adopt("circuit breaker", "circuit_breaker", e))?;
        // The status of a gRPC call is in its trailers: the breaker records each call at the
        // end of its response body, not at its `200` head.
        let breaker = (breaker.0.trailers().http(), breaker.1);
        this.assemble::<Grpc<C>>(
            retry,
            breaker,
            crate::grpc::GrpcStatusLayer::new(),
            crate::grpc::TonicBodyLayer::new(),
        )
    }
}

impl<K, Ord, O> fmt::Debug for ClientBuilder<K, Ord, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("total_timeout", &self.settings.total_timeout)
            .field("attempt_timeout", &self.settings.attempt_timeout)
            .field("max_retries", &self.settings.max_retries)
            .field("retry_non_idempotent", &self.settings.retry_non_idempotent)
            .field("retry_put_delete", &self.settings.retry_put_delete)
            .field("budget", &self.settings.budget)
            .field("failure_rate", &self.settings.failure_rate)
            .field("minimum_calls", &self.settings.minimum_calls)
            .field("sampling_window", &self.settings.sampling_window)
            .field("open_duration", &self.settings.open_duration)
            .field("max_concurrent", &self.settings.max_concurrent)
            .field("propagate", &self.settings.propagate)
            .finish_non_exhaustive()
    }
}
