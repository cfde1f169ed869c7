//! `RetryLayer`: its infallible `new`, its handle, and `impl Layer`.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::classify::AnyError;
use weir_core::lanes::{Lanes, Prototype};
use weir_core::protocol::Plain;

use crate::handle::RetryHandle;
use crate::replay::IdempotentReplay;
use crate::service::Retry;
use crate::settings::RetrySettings;
use crate::shared::{Parts, Shared};

/// Retries transient failures with backoff, within attempts, deadline and budget.
///
/// Built once; every service it makes (and every clone of them) shares one budget and one
/// random source, so an axum router that calls `layer()` once per route still has one budget.
/// See the [crate docs](crate) for the semantics.
///
/// `R` is the [`Replay`](crate::Replay), `C` the classifier, `O` the observer, `P` the
/// [`Protocol`](crate::Protocol) (when the budget records an outcome: [`Plain`], or
/// [`Http`](weir_core::protocol::Http) for gRPC's status in the trailers) and `K` the
/// [`BudgetScope`](crate::BudgetScope) (`()`, one budget; [`PerKey`](crate::PerKey), one per
/// server).
pub struct RetryLayer<R = IdempotentReplay, C = AnyError, O = (), P = Plain, K = ()> {
    shared: Arc<Shared<R, C, O, P, K>>,
}

impl RetryLayer {
    /// Retries any error (weir's own rejections excepted), cloning the request, with at most
    /// `max_attempts` calls (**the first one included**) and the other defaults of
    /// [`RetryBuilder`](crate::RetryBuilder). An `http::Request` is retried only if it is
    /// idempotent ([`IdempotentReplay`]): a POST without an `Idempotency-Key` is sent once.
    /// A `max_attempts` of 0 is raised to 1 (the rule of every `new` in weir).
    #[must_use]
    pub fn new(max_attempts: u32) -> Self {
        let settings = RetrySettings {
            max_attempts: max_attempts.max(1),
            ..RetrySettings::new()
        };
        let parts = Parts {
            replay: IdempotentReplay::new(),
            classify: AnyError,
            observer: (),
            scope: (),
            budget: None,
        };
        Self::from_shared(Shared::new(settings, u32::MAX, parts))
    }
}

impl<R, C, O, P, K> RetryLayer<R, C, O, P, K> {
    pub(crate) fn from_shared(shared: Shared<R, C, O, P, K>) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// A handle on the budget and counters this layer (and every service it makes, and every
    /// clone) shares: the same as [`build_with_handle`](crate::RetryBuilder::build_with_handle)
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
        RetryHandle::new(
            Arc::clone(&self.shared.core),
            self.shared.budget.clone(),
            self.shared.name.clone(),
        )
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
            .field(
                "policy",
                &self
                    .shared
                    .core
                    .policies
                    .get(self.shared.core.policies.current()),
            )
            .finish_non_exhaustive()
    }
}

/// `S: Clone`: the services made share a clone of `inner` that retries are cloned from (see
/// [`Retry`]); a service that is not `Clone` could not be retried anyway.
impl<S: Clone, R, C, O, P, K> Layer<S> for RetryLayer<R, C, O, P, K> {
    type Service = Retry<S, R, C, O, P, K>;

    fn layer(&self, inner: S) -> Self::Service {
        let prototype = Prototype::new(Arc::clone(&self.shared), &inner);
        Retry::new(inner, Arc::new(Lanes::new(Arc::new(prototype))))
    }
}
