//! `Hedge`: the service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;
use weir_core::lanes::Lanes;
use weir_core::{Classify, Observer, classify::AnyError};
use weir_retry::{IdempotentReplay, Replay};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::shared::{Local, Shared};

/// Sends a request again when its first attempt is slow or fails, and takes the first
/// acceptable answer; made by [`HedgeLayer`](crate::HedgeLayer).
///
/// `poll_ready` readies the inner service. `call` sends the primary attempt to it at once when
/// the request is ready at once ([`Replay::prepare_now`]; [`IdempotentReplay`] is); the
/// response future clones the service (the instance given to the layer) only when it sends its
/// first hedge, and readies it before each hedge. Otherwise (an HTTP body to read first) the
/// readied service moves into the future and a clone stays behind.
pub struct Hedge<S, R = IdempotentReplay, C = AnyError, O = ()> {
    inner: S,
    /// The layer's state and the service's copy, through lanes (`weir_core::lanes`): a call's
    /// future clones this thread's lane, not one `Arc` every thread writes.
    local: Arc<Lanes<Local<S, R, C, O>>>,
}

impl<S: Clone, R, C, O> Hedge<S, R, C, O> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<R, C, O>>) -> Self {
        let local = Arc::new(Lanes::new(Arc::new(Local::new(shared, &inner))));
        Self { inner, local }
    }
}

impl<S, R, C, O> Hedge<S, R, C, O> {
    weir_core::inner_accessors!(inner: S);
}

impl<S: Clone, R, C, O> Clone for Hedge<S, R, C, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            local: Arc::clone(&self.local),
        }
    }
}

impl<S: fmt::Debug, R, C, O> fmt::Debug for Hedge<S, R, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.local.name)
            .finish_non_exhaustive()
    }
}

impl<S, Req, R, C, O> Service<Req> for Hedge<S, R, C, O>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    S::Error: 'static,
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

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let local = self.local.pick();
        let shared: &Shared<R, C, O> = local;
        shared.core.deposit();
        match shared.replay.prepare_now(request) {
            Ok((request, copy)) => {
                let deadline = shared.replay.deadline(&request).map(|d| d.instant());
                let future = self.inner.call(request);
                // No clone of the service here: the first hedge, if any, takes one.
                let copy = copy.filter(|_| shared.max_attempts > 1);
                ResponseFuture::running(future, copy, Arc::clone(local), deadline)
            }
            Err(prepare) => {
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                ResponseFuture::preparing(service, Arc::clone(local), prepare)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Future, Ready, ready};
    use std::task::Waker;
    use std::time::Duration;

    use tower_layer::Layer;

    use super::*;
    use crate::HedgeLayer;

    #[derive(Clone)]
    struct Echo;

    impl Service<u64> for Echo {
        type Response = u64;
        type Error = Infallible;
        type Future = Ready<Result<u64, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: u64) -> Self::Future {
            ready(Ok(req))
        }
    }

    /// The immediate path writes no reference count that every thread writes (#21's two-thread
    /// gap): a call's future holds this thread's lane, never the shared state itself, and gives
    /// it back when done.
    #[test]
    fn a_call_holds_this_threads_lane_not_the_shared_state() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut svc = HedgeLayer::new(Duration::from_millis(50)).layer(Echo);
        let shared = Arc::strong_count(svc.local.shared());
        let lane = Arc::clone(svc.local.pick());
        assert!(Arc::ptr_eq(&lane, svc.local.pick()), "one lane per thread");
        let held = Arc::strong_count(&lane);
        for i in 0..200 {
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            let mut future = std::pin::pin!(svc.call(i));
            assert_eq!(Arc::strong_count(svc.local.shared()), shared);
            assert_eq!(Arc::strong_count(&lane), held + 1);
            assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(n)) if n == i));
        }
        assert_eq!(Arc::strong_count(&lane), held);
        assert_eq!(Arc::strong_count(svc.local.shared()), shared);
    }
}
