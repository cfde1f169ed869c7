//! `Hedge`: the service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;
use weir_core::{AnyError, Classify, Observer};
use weir_retry::{IdempotentReplay, Replay};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::shared::Shared;

/// Sends a request again when its first attempt is slow or fails, and takes the first
/// acceptable answer; made by [`HedgeLayer`](crate::HedgeLayer).
///
/// `poll_ready` readies the inner service. `call` sends the primary attempt to it at once when
/// the request is ready at once ([`Replay::prepare_now`]; [`IdempotentReplay`] is) and, if the
/// request may be sent again, gives the response future a clone of the service, readied before
/// each hedge. Otherwise (an HTTP body to read first) the readied service moves into the future
/// and a clone stays behind.
pub struct Hedge<S, R = IdempotentReplay, C = AnyError, O = ()> {
    inner: S,
    shared: Arc<Shared<R, C, O>>,
}

impl<S, R, C, O> Hedge<S, R, C, O> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<R, C, O>>) -> Self {
        Self { inner, shared }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S: Clone, R, C, O> Clone for Hedge<S, R, C, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, R, C, O> fmt::Debug for Hedge<S, R, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
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
        let shared = &self.shared;
        shared.core.deposit();
        match shared.replay.prepare_now(request) {
            Ok((request, copy)) => {
                let deadline = shared.replay.deadline(&request).map(|d| d.instant());
                let future = self.inner.call(request);
                // A clone only when a hedge may follow.
                let (service, copy) = match copy {
                    Some(copy) if shared.max_attempts > 1 => (Some(self.inner.clone()), Some(copy)),
                    _ => (None, None),
                };
                ResponseFuture::running(future, service, copy, Arc::clone(shared), deadline)
            }
            Err(prepare) => {
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                ResponseFuture::preparing(service, Arc::clone(shared), prepare)
            }
        }
    }
}
