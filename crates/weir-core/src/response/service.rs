//! `ErrorResponse`: the service that never fails.

use std::convert::Infallible;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tower_service::Service;

use super::future::State;
use super::layer::AnswerRef;
use super::{ErrorResponseLayer, ResponseBody, ResponseFuture};
use crate::error::BoxError;

/// The service of [`ErrorResponseLayer`]: answers every error of `S` with a response.
///
/// An error from the inner service's `poll_ready` is kept, `poll_ready` reports ready, and the
/// next `call` answers with the mapped response without calling the inner service (as axum's
/// `HandleError` does); the one after that polls the inner service again.
///
/// Clones share nothing but the inner service's clone; a clone is not ready and has no kept
/// error.
#[derive(Debug)]
pub struct ErrorResponse<S> {
    inner: S,
    config: ErrorResponseLayer,
    /// Where the response future finds `config` when it must answer an error.
    answer: AnswerRef,
    failed: Option<BoxError>,
}

impl<S> ErrorResponse<S> {
    /// Wraps `inner` with the default configuration of [`ErrorResponseLayer::new`].
    #[must_use]
    pub const fn new(inner: S) -> Self {
        Self::with_config(inner, ErrorResponseLayer::new(), AnswerRef::DEFAULT)
    }

    /// Wraps `inner` with the configuration of `config`, which `answer` refers to.
    pub(super) const fn with_config(
        inner: S,
        config: ErrorResponseLayer,
        answer: AnswerRef,
    ) -> Self {
        Self {
            inner,
            config,
            answer,
            failed: None,
        }
    }

    crate::inner_accessors!(inner: S);
}

impl<S: Clone> Clone for ErrorResponse<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config,
            answer: self.answer,
            failed: None,
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ErrorResponse<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.failed.is_none()
            && let Err(err) = ready!(self.inner.poll_ready(cx))
        {
            self.failed = Some(err.into());
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let grpc = self.config.wants_grpc(req.headers());
        if let Some(error) = self.failed.take() {
            return ResponseFuture::failed(error, self.answer, grpc);
        }
        // Built in one expression on the happy path: assembled in two branches, the future was
        // written piecewise and then copied, and the copy stalled on store forwarding.
        ResponseFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
            answer: self.answer,
            grpc,
        }
    }
}
