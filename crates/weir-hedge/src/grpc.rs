//! `GrpcAttempts`: gRFC A6's `grpc-previous-rpc-attempts` on every hedge.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request};
use weir_core::Deadline;
use weir_core::wire::GRPC_PREVIOUS_RPC_ATTEMPTS;
use weir_retry::Replay;

/// A [`Replay`] of HTTP requests whose every replayed copy carries
/// `grpc-previous-rpc-attempts` (gRFC A6): 1 on the first hedge, 2 on the second... The
/// primary is sent as it came. Used by [`HedgeLayer::grpc`](crate::HedgeLayer::grpc).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcAttempts<R> {
    inner: R,
}

impl<R> GrpcAttempts<R> {
    /// Wraps `inner`.
    #[must_use]
    pub const fn new(inner: R) -> Self {
        Self { inner }
    }
}

/// What [`GrpcAttempts`] keeps: the inner copy and the attempts sent so far.
#[derive(Debug)]
pub struct CountedCopy<C> {
    copy: C,
    sent: AtomicU32,
}

impl<C> CountedCopy<C> {
    const fn new(copy: C) -> Self {
        Self {
            copy,
            sent: AtomicU32::new(1),
        }
    }
}

pin_project_lite::pin_project! {
    /// The [`Replay::Prepare`] future of [`GrpcAttempts`].
    #[derive(Debug)]
    pub struct CountedPrepare<P> {
        #[pin]
        prepare: P,
    }
}

impl<P, Rq, C> Future for CountedPrepare<P>
where
    P: Future<Output = (Rq, Option<C>)>,
{
    type Output = (Rq, Option<CountedCopy<C>>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (request, copy) = ready!(self.project().prepare.poll(cx));
        Poll::Ready((request, copy.map(CountedCopy::new)))
    }
}

impl<Req, R, B> Replay<Req> for GrpcAttempts<R>
where
    R: Replay<Req, Request = Request<B>>,
{
    type Request = Request<B>;
    type Copy = CountedCopy<R::Copy>;
    type Prepare = CountedPrepare<R::Prepare>;

    fn prepare(&self, request: Req) -> Self::Prepare {
        CountedPrepare {
            prepare: self.inner.prepare(request),
        }
    }

    #[inline]
    fn prepare_now(
        &self,
        request: Req,
    ) -> Result<(Self::Request, Option<Self::Copy>), Self::Prepare> {
        match self.inner.prepare_now(request) {
            Ok((request, copy)) => Ok((request, copy.map(CountedCopy::new))),
            Err(prepare) => Err(CountedPrepare { prepare }),
        }
    }

    fn replay(&self, copy: &Self::Copy) -> Self::Request {
        let previous = copy.sent.fetch_add(1, Ordering::Relaxed);
        let mut request = self.inner.replay(&copy.copy);
        request
            .headers_mut()
            .insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(previous));
        request
    }

    fn deadline(&self, request: &Self::Request) -> Option<Deadline> {
        self.inner.deadline(request)
    }

    fn trace_id(&self, copy: &Self::Copy) -> Option<weir_core::observer::TraceId> {
        self.inner.trace_id(&copy.copy)
    }
}
