//! The response future: the inner call with its permit, or an immediate rejection.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use weir_core::{BoxError, Error, Observer, classify::AnyError};

use crate::event::Event;
use crate::shared::Guard;
use crate::trailers::{BodyGuard, Head, Protocol};

pin_project! {
    /// The future of a [`CircuitBreaker`](crate::CircuitBreaker) call.
    ///
    /// It holds the call's permit and records the call's outcome when the inner future
    /// completes; dropped before that (a cancelled call), it records nothing and gives a
    /// half-open probe slot back. A rejected call's future fails on its first poll.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, C = AnyError, O = (), P = Head> {
        #[pin]
        kind: Kind<F, C, O>,
        _protocol: PhantomData<fn() -> P>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C, O> {
        Admitted {
            #[pin]
            future: F,
            guard: BodyGuard<C, O>,
        },
        Rejected {
            error: Option<Error>,
        },
    }
}

impl<F, C, O, P> ResponseFuture<F, C, O, P> {
    pub(crate) const fn admitted(future: F, guard: Guard<C, O>) -> Self {
        Self {
            kind: Kind::Admitted {
                future,
                guard: BodyGuard(guard),
            },
            _protocol: PhantomData,
        }
    }

    pub(crate) const fn rejected(error: Error) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
            _protocol: PhantomData,
        }
    }
}

impl<F, C, O, P, T, E> Future for ResponseFuture<F, C, O, P>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    P: Protocol<C, T, E>,
    O: for<'a> Observer<Event<'a>>,
{
    type Output = Result<P::Response<O>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted { future, guard } => {
                let result = ready!(future.poll(cx));
                Poll::Ready(P::finish(result, guard).map_err(Into::into))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("ResponseFuture polled after completion")
                .into())),
        }
    }
}

impl<F, C, O, P> fmt::Debug for ResponseFuture<F, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Admitted { guard, .. } => f
                .debug_struct("ResponseFuture")
                .field("admitted", &guard.0)
                .finish_non_exhaustive(),
            Kind::Rejected { error } => f
                .debug_struct("ResponseFuture")
                .field("rejected", error)
                .finish(),
        }
    }
}
