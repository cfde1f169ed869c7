//! `Bulkhead`: the service.

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;
use weir_core::observer::TraceId;
use weir_core::protocol::Plain;
use weir_core::{BoxError, Deadline, Error, Observer};

use crate::event::Event;
use crate::future::{ResponseFuture, Wait};
use crate::permit::{Permit, Waiter};
use crate::protocol::Protocol;
use crate::shared::{Rejecter, Shared};
use crate::state::{RejectReason, wait_until};

/// At most `max_concurrent` calls at once through `S`; made by
/// [`BulkheadLayer`](crate::BulkheadLayer).
///
/// - `poll_ready` readies the inner service. In `backpressure()` mode it first waits for a
///   permit, in arrival order.
/// - `call` takes a free permit (one compare-and-swap, no lock, no allocation) and calls the
///   inner service. With none free it refuses at once, or, with a queue, returns a future that
///   waits in line (at most `max_wait` and the request's deadline) and then calls the inner
///   service it readied, which it moved into the future (a clone stays behind: `S: Clone`).
/// - The permit lives in the response future (in `weir_core::protocol::Http` mode, in the
///   response body) and is released exactly once when that completes or is dropped.
pub struct Bulkhead<S, O = (), P = Plain> {
    inner: S,
    shared: Arc<Shared<O>>,
    /// `backpressure()` mode only: the permit `poll_ready` reserved, or its place in line.
    permit: Option<Permit>,
    waiter: Option<Waiter>,
    _protocol: PhantomData<fn() -> P>,
}

impl<S, O, P> Bulkhead<S, O, P> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<O>>) -> Self {
        Self {
            inner,
            shared,
            permit: None,
            waiter: None,
            _protocol: PhantomData,
        }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S, O, P, Req> Service<Req> for Bulkhead<S, O, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    O: for<'a> Observer<Event<'a>>,
    P: Protocol<Req, S::Response>,
{
    type Response = P::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, O, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shared.backpressure && self.permit.is_none() {
            if self.waiter.is_none() {
                match self.shared.core.try_acquire() {
                    Some(permit) => self.permit = Some(permit),
                    None => self.waiter = self.shared.core.enqueue(usize::MAX),
                }
            }
            if let Some(waiter) = &mut self.waiter {
                match waiter.poll_permit(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(permit) => {
                        self.waiter = None;
                        match permit {
                            Some(permit) => self.permit = Some(permit),
                            None => {
                                return Poll::Ready(Err(self
                                    .shared
                                    .reject(RejectReason::QueueFull, None)
                                    .into()));
                            }
                        }
                    }
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        if shared.backpressure {
            let permit = self.permit.take().expect("poll_ready must be called first");
            return ResponseFuture::running(self.inner.call(req), permit, shared.hold_body);
        }
        if let Some(permit) = shared.core.try_acquire() {
            return ResponseFuture::running(self.inner.call(req), permit, shared.hold_body);
        }
        // The future is built here, not in the out-of-line part: a future returned from there
        // would be assembled in a temporary and copied, on the happy path too.
        let hold_body = shared.hold_body;
        match self.queue(req) {
            Ok(wait) => ResponseFuture::waiting(wait, hold_body),
            Err(error) => ResponseFuture::rejected(error),
        }
    }
}

impl<S, O, P> Bulkhead<S, O, P> {
    /// `call` with no permit free: the request's place in line, or why it may not wait (out of
    /// line: the happy path, inlined into the caller, stays short).
    #[cold]
    #[inline(never)]
    fn queue<Req>(&mut self, req: Req) -> Result<Pin<Box<Wait<S, Req, O>>>, Error>
    where
        S: Service<Req> + Clone,
        O: for<'a> Observer<Event<'a>>,
        P: Protocol<Req, S::Response>,
    {
        let shared = &self.shared;
        // One version of the queue settings for this request (a handle may change them).
        let policy = shared.tuning.policy();
        // The request's trace id, read only for a refusal's event.
        let trace_id = || {
            <P as weir_core::protocol::Protocol<Req>>::headers(&req).and_then(TraceId::from_headers)
        };
        if policy.max_queue == 0 {
            return Err(shared.reject(RejectReason::QueueFull, trace_id()));
        }
        let deadline =
            <P as weir_core::protocol::Protocol<Req>>::deadline(&req).map(Deadline::instant);
        let now = Instant::now();
        let (until, reason) = wait_until(now, policy.max_wait, deadline)
            .map_err(|reason| shared.reject(reason, trace_id()))?;
        let Some(waiter) = shared.core.enqueue(policy.max_queue) else {
            return Err(shared.reject(RejectReason::QueueFull, trace_id()));
        };
        // The readied instance goes into the future; an unreadied clone stays behind.
        let clone = self.inner.clone();
        let readied = mem::replace(&mut self.inner, clone);
        Ok(Wait::boxed(
            waiter,
            (now, until),
            reason,
            readied,
            req,
            Rejecter::Layer(Arc::clone(shared)),
        ))
    }
}

impl<S: Clone, O, P> Clone for Bulkhead<S, O, P> {
    /// Shares the permits, not the readiness: the clone has no reserved permit.
    // Inlined, as the breaker's: a layer above may clone it on every call (tower's `Retry`).
    #[inline]
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, O, P> fmt::Debug for Bulkhead<S, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("reserved", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
