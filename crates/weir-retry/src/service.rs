//! `Retry`: the service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;
use weir_core::{Classify, Observer};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::replay::{CloneRequest, Replay};
use weir_core::AnyError;

/// Retries the inner service's transient failures; made by [`RetryLayer`](crate::RetryLayer).
///
/// `poll_ready` readies the inner service. `call` moves the readied inner service into the
/// response future (leaving a clone behind), which sends the request, and when an attempt fails
/// transiently, sleeps, readies the service again and sends the replayed request.
pub struct Retry<S, R = CloneRequest, C = AnyError, O = ()> {
    inner: S,
    shared: Arc<Shared<R, C, O>>,
}

impl<S, R, C, O> Retry<S, R, C, O> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<R, C, O>>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the retry.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R, C, O> Clone for Retry<S, R, C, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, R, C, O> fmt::Debug for Retry<S, R, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<S, Req, R, C, O> Service<Req> for Retry<S, R, C, O>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, R, C, O>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The readied instance goes into the future; the clone left behind is readied by the
        // next `poll_ready`.
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        let now = self.shared.needs_clock.then(Instant::now);
        self.shared.core.budget.deposit_now();
        let prepare = self.shared.replay.prepare(request);
        ResponseFuture::new(service, Arc::clone(&self.shared), prepare, now)
    }
}
