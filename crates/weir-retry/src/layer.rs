//! `RetryLayer`: its constructors, presets and the state its services share.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::protocol::{Http, Plain};
use weir_core::{AnyError, Backoff, GrpcStatus, HttpStatus, Jitter};

use crate::builder::{DEFAULT_BACKOFF, RetryBuilder};
use crate::handle::RetryHandle;
use crate::replay::{HttpReplay, IdempotentReplay};
use crate::service::Retry;
use crate::shared::Shared;

/// Retries transient failures with backoff, within attempts, deadline and budget.
///
/// Built once; every service it makes (and every clone of them) shares one budget and one
/// random source, so an axum router that calls `layer()` once per route still has one budget.
/// See the [crate docs](crate) for the semantics.
///
/// `R` is the [`Replay`](crate::Replay), `C` the classifier, `O` the observer, `P` the
/// [`Protocol`](crate::Protocol) (when the budget records an outcome: [`Plain`], or [`Http`]
/// for gRPC's status in the trailers) and `K` the [`BudgetScope`](crate::BudgetScope) (`()`, one
/// budget; [`PerKey`](crate::PerKey), one per server).
pub struct RetryLayer<R = IdempotentReplay, C = AnyError, O = (), P = Plain, K = ()> {
    shared: Arc<Shared<R, C, O, P, K>>,
}

impl RetryLayer {
    /// Retries any error (weir's own rejections excepted), cloning the request, with at most
    /// `max_attempts` calls (**the first one included**; 0 is taken as 1) and the other defaults
    /// of [`RetryBuilder`]. An `http::Request` is retried only if it is idempotent
    /// ([`IdempotentReplay`]): a POST without an `Idempotency-Key` is sent once.
    #[must_use]
    pub fn new(max_attempts: u32) -> Self {
        RetryBuilder::new()
            .max_attempts(max_attempts.max(1))
            .finish()
            .0
    }

    /// A builder with the defaults (see [`RetryBuilder`]).
    #[must_use]
    pub fn builder() -> RetryBuilder {
        RetryBuilder::new()
    }

    /// For HTTP clients: [`HttpStatus`] (5xx, 408, 429 and connection errors are transient;
    /// `Retry-After` honoured), [`HttpReplay`] (bodies buffered up to 64 KiB; idempotent methods,
    /// POST and PATCH only with an `Idempotency-Key`).
    #[must_use]
    pub fn http() -> RetryBuilder<HttpReplay, HttpStatus> {
        RetryBuilder::new()
            .replay(HttpReplay::new())
            .classify(HttpStatus::new())
    }

    /// For gRPC clients (tonic): [`GrpcStatus`] (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
    /// `DEADLINE_EXCEEDED`, `ABORTED` are transient; `grpc-retry-pushback-ms` honoured, a
    /// negative pushback stops), [`HttpReplay`] with every method retried (gRPC calls are POSTs:
    /// only put this on idempotent methods, or narrow the classifier) and without waiting for a
    /// body still being streamed (a unary call's message is in memory and is replayed; a
    /// streaming call is sent once), and gRFC A6's backoff: `random(0, d)` (full jitter) of an
    /// exponential backoff from 100 ms, capped at 5 s. As A6 has it, `max_attempts` is at most
    /// 5: a larger value is taken as 5. Narrow the retryable codes with
    /// `GrpcStatus::new().only_retryable(&[...])` (A6's `retryableStatusCodes`). The budget
    /// hears a call's status where gRPC puts it ([`Http`], see
    /// [`RetryBuilder::trailers`]): a call whose `grpc-status` arrives in the trailers is
    /// recorded at the end of its body.
    #[must_use]
    pub fn grpc() -> RetryBuilder<HttpReplay, GrpcStatus, (), Http> {
        RetryBuilder::new()
            .replay(HttpReplay::new().non_idempotent(true).wait_for_body(false))
            .classify(GrpcStatus::new())
            .backoff(grpc_backoff())
            .cap_attempts(GRPC_MAX_ATTEMPTS)
            .trailers()
    }
}

/// gRFC A6: "maxAttempts ... values greater than 5 are treated as 5".
const GRPC_MAX_ATTEMPTS: u32 = 5;

/// gRFC A6: the delay before retry n is `random(0, min(initial x multiplier^(n-1), max))`.
const fn grpc_backoff() -> Backoff {
    DEFAULT_BACKOFF.jitter(Jitter::Full)
}

impl<R, C, O, P, K> RetryLayer<R, C, O, P, K> {
    pub(crate) fn from_shared(shared: Shared<R, C, O, P, K>) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// A handle on the budget and counters this layer (and every service it makes, and every
    /// clone) shares: the same as [`build_with_handle`](RetryBuilder::build_with_handle)
    /// returns, for a layer built without one (`new`, a preset).
    ///
    /// ```
    /// use weir_retry::RetryLayer;
    ///
    /// let layer = RetryLayer::new(3);
    /// assert_eq!(layer.handle().retries(), 0);
    /// ```
    #[must_use]
    pub fn handle(&self) -> RetryHandle {
        RetryHandle::new(Arc::clone(&self.shared.core), self.shared.budget.clone())
    }
}

impl<R, C, O, P, K> Clone for RetryLayer<R, C, O, P, K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R, C, O, P, K> fmt::Debug for RetryLayer<R, C, O, P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("name", &self.shared.name)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl<S, R, C, O, P, K> Layer<S> for RetryLayer<R, C, O, P, K> {
    type Service = Retry<S, R, C, O, P, K>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, Arc::clone(&self.shared))
    }
}
