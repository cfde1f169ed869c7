//! `ErrorResponse`: the service that never fails.

use std::convert::Infallible;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tower_service::Service;

use super::future::State;
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
    failed: Option<BoxError>,
}

impl<S> ErrorResponse<S> {
    /// Wraps `inner` with the default configuration of [`ErrorResponseLayer::new`].
    #[must_use]
    pub const fn new(inner: S) -> Self {
        Self::with_config(inner, ErrorResponseLayer::new())
    }

    /// Wraps `inner` with the configuration of `config`.
    pub(super) const fn with_config(inner: S, config: ErrorResponseLayer) -> Self {
        Self {
            inner,
            config,
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
            return ResponseFuture::failed(error, self.config, grpc);
        }
        // Built in one expression on the happy path: assembled in two branches, the future was
        // written piecewise and then copied, and the copy stalled on store forwarding.
        ResponseFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
            config: self.config,
            grpc,
        }
    }
}
