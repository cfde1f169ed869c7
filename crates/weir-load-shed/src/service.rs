//! `LoadShed`: the service.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep, sleep_until};

use tower_service::Service;
use weir_core::protocol::Plain;
use weir_core::{BoxError, Observer};

use crate::classify::{Prioritize, Uniform};
use crate::event::Event;
use crate::future::ResponseFuture;
use crate::limit::{Fixed, Limit};
use crate::protocol::Protocol;
use crate::shared::{Finish, InFlight, Shared};

/// Refuses at once, with `weir_core::Error::overloaded()`, a call that would take the calls in
/// flight to the limit its priority may use; made by [`LoadShedLayer`](crate::LoadShedLayer).
///
/// - `poll_ready` readies the inner service. With `max_ready_wait`, once it has waited that long
///   for the inner service it turns ready anyway and the next call is refused at once (shedding
///   by queue time).
/// - `call` classifies the request, takes an in-flight slot with one compare-and-swap (no lock,
///   no allocation) or refuses, then calls the inner service.
/// - The slot lives in the response future and is given back when it completes (as a success, a
///   drop or ignored, which feeds an adaptive limit) or is dropped (ignored); in
///   `weir_core::protocol::Http` mode a successful response's body holds it until the body ends.
pub struct LoadShed<S, L = Fixed, C = Uniform, O = (), P = Plain> {
    inner: S,
    shared: Arc<Shared<L, C, O>>,
    /// `max_ready_wait` only: the timer, boxed once per service and reset; whether it runs for
    /// the current wait; whether the next call is to be shed because the wait ran out.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    shed_next: bool,
    _protocol: PhantomData<fn() -> P>,
}

impl<S, L, C, O, P> LoadShed<S, L, C, O, P> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<L, C, O>>) -> Self {
        Self {
            inner,
            shared,
            timer: None,
            armed: false,
            shed_next: false,
            _protocol: PhantomData,
        }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S, L, C, O, P, Req> Service<Req> for LoadShed<S, L, C, O, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError> + 'static,
    L: Limit,
    C: Prioritize<Req> + Send + Sync + 'static,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    P: Protocol<S::Response> + weir_core::protocol::Protocol<Req>,
{
    type Response = P::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shed_next {
            return Poll::Ready(Ok(()));
        }
        let polled = self.inner.poll_ready(cx);
        if polled.is_ready() {
            self.armed = false;
            return polled.map_err(Into::into);
        }
        let Some(max) = self.shared.max_ready_wait.get() else {
            return Poll::Pending;
        };
        // Only while the inner service is not ready: one timer per service, boxed once and reset.
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(Instant::now() + max)));
        if !self.armed {
            timer.as_mut().reset(Instant::now() + max);
            self.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        // Waited `max_ready_wait` for the inner service: the next call is shed at once.
        self.armed = false;
        self.shed_next = true;
        Poll::Ready(Ok(()))
    }

    // Inlined into the caller's `call`, so that the inner future is built in place and the
    // request is not moved into this call's own place (an HTTP request is 248 bytes).
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let priority = self.shared.classifier.priority(&req);
        // A refused request goes whole to an out-of-line refusal, which reads its trace id (an
        // HTTP request's `traceparent`) for the event: an admitted call never looks at its
        // headers nor lends its address out.
        if self.shed_next {
            self.shed_next = false;
            let in_flight = self.shared.core.flight.in_flight();
            return ResponseFuture::rejected(
                self.shared.refuse::<P, Req>(priority, in_flight, req),
            );
        }
        if let Err(in_flight) = self.shared.enter(priority) {
            return ResponseFuture::rejected(
                self.shared.refuse::<P, Req>(priority, in_flight, req),
            );
        }
        // The admitted future is built in one place, not in a branch of a `match`: built in
        // branches, it was assembled piecewise and copied, and the copy stalled.
        let shared: Arc<dyn Finish> = Arc::clone(&self.shared) as Arc<dyn Finish>;
        let token = InFlight::new(shared, L::ADAPTIVE);
        ResponseFuture::running(self.inner.call(req), token)
    }
}

impl<S: Clone, L, C, O, P> Clone for LoadShed<S, L, C, O, P> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, L, C, O, P> fmt::Debug for LoadShed<S, L, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadShed")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}
