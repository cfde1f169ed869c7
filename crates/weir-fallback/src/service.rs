//! `Fallback`: the service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;
use weir_core::lanes::Lanes;
use weir_core::{Classify, Observer, classify::AnyError};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::shared::{Plan, Shared};
use crate::source::Prepare;
use crate::state::Reason;

/// Answers from fallback sources when the inner (primary) service fails, or before it is called
/// when the flag or the switch says so; made by [`FallbackLayer`](crate::FallbackLayer).
///
/// - `poll_ready` readies the primary; its errors pass through (nothing to stand in for yet).
/// - `call` checks the flag and the switch (an atomic load and the switch's predicate), keeps
///   what the configured sources need from the request (nothing, unless a source reads it), and
///   calls the primary. With [`service_replay`](crate::FallbackBuilder::service_replay), a
///   request whose body must first be read moves the readied primary into the future, which
///   calls it once the body is in memory. A switched request instead moves the readied primary into the future
///   (a clone is left in its place) and tries the sources first.
/// - The future classifies the primary's result; on a failure it tries the sources in their
///   configured order and the first answer wins; when none answers, the primary's own result is
///   returned. Dropping the future drops the call: no source is tried for a cancelled request.
pub struct Fallback<S, Src, C = AnyError, O = ()> {
    inner: S,
    /// The shared state, through its lanes: a call's future clones this thread's lane, not one
    /// `Arc` every thread writes.
    shared: Arc<Lanes<Shared<Src, C, O>>>,
}

impl<S, Src, C, O> Fallback<S, Src, C, O> {
    pub(crate) const fn new(inner: S, shared: Arc<Lanes<Shared<Src, C, O>>>) -> Self {
        Self { inner, shared }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S, Src, C, O, Req> Service<Req> for Fallback<S, Src, C, O>
where
    Src: Prepare<Req>,
    S: Service<<Src as Prepare<Req>>::Request> + Clone,
    S::Error: 'static,
    Src: Plan<Req, S::Response, S::Error>,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
{
    type Response = Src::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, Src, C, O>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // This thread's lane: what the future clones (an atomic add on a count no other core
        // writes, in the usual case), and the way to the shared state here too.
        let shared = self.shared.pick();
        let reason = if shared.is_forced() {
            Some(Reason::Flag)
        } else if shared.sources.switched(&req) {
            Some(Reason::Switch)
        } else {
            None
        };
        // The trace id only for an observer that wants it (HTTP mode): the request is gone to
        // the primary when a fallback is reported.
        let head = shared.sources.head(&req, shared.observer.wants_trace_id());
        match shared.sources.prepare(req) {
            Ok((req, keep)) => {
                let kept = shared.sources.kept(head, keep);
                match reason {
                    None => ResponseFuture::primary(self.inner.call(req), kept, Arc::clone(shared)),
                    // Off the happy path: the readied primary moves into the future (a source
                    // may answer and it is then never called) and a clone, not yet readied,
                    // stays here.
                    Some(reason) => {
                        let inner = take_readied(&mut self.inner);
                        ResponseFuture::switched(inner, req, kept, reason, Arc::clone(shared))
                    }
                }
            }
            // The request needs time (an HTTP body read for the alternative): the readied
            // primary waits for it in the future.
            Err(preparing) => {
                let inner = take_readied(&mut self.inner);
                ResponseFuture::preparing(inner, preparing, head, reason, Arc::clone(shared))
            }
        }
    }
}

/// The readied inner service, a clone left in its place.
#[cold]
fn take_readied<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    mem::replace(inner, clone)
}

impl<S: Clone, Src, C, O> Clone for Fallback<S, Src, C, O> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, Src, C, O> fmt::Debug for Fallback<S, Src, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Future, Ready, ready};
    use std::task::Waker;

    use tower_layer::Layer;

    use super::*;
    use crate::{Cause, FallbackLayer};

    #[derive(Clone)]
    struct Echo;

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = Infallible;
        type Future = Ready<Result<u32, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: u32) -> Self::Future {
            ready(Ok(req))
        }
    }

    /// The happy path writes no reference count that every thread writes (#20's two-thread
    /// gap): a call's future holds this thread's lane, never the shared state itself, and gives
    /// it back when done.
    #[test]
    fn a_call_holds_this_threads_lane_not_the_shared_state() {
        let mut cx = Context::from_waker(Waker::noop());
        let layer = FallbackLayer::new(|_: Cause<'_, u32, Infallible>| Some(0));
        let mut svc = layer.layer(Echo);
        let shared = Arc::strong_count(svc.shared.shared());
        let lane = Arc::clone(svc.shared.pick());
        assert!(Arc::ptr_eq(&lane, svc.shared.pick()), "one lane per thread");
        let held = Arc::strong_count(&lane);
        for i in 0..200 {
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            let mut future = std::pin::pin!(svc.call(i));
            assert_eq!(Arc::strong_count(svc.shared.shared()), shared);
            assert_eq!(Arc::strong_count(&lane), held + 1);
            assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(n)) if n == i));
        }
        assert_eq!(Arc::strong_count(&lane), held);
        assert_eq!(Arc::strong_count(svc.shared.shared()), shared);
    }
}
