//! The response future of `ErrorResponse`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use super::ResponseBody;
use super::layer::AnswerRef;
use crate::error::BoxError;

pin_project! {
    /// The response future of [`ErrorResponse`].
    pub struct ResponseFuture<F> {
        #[pin]
        pub(super) state: State<F>,
        // Four bytes, not the layer's configuration: only an error needs it, and the future of
        // every call is moved through the stack above it.
        pub(super) answer: AnswerRef,
        pub(super) grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    pub(super) enum State<F> {
        Called { #[pin] future: F },
        Failed { error: Option<BoxError> },
    }
}

impl<F> ResponseFuture<F> {
    /// The inner service failed in `poll_ready`: the future answers with its error response.
    #[cold]
    pub(super) fn failed(error: BoxError, answer: AnswerRef, grpc: bool) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            answer,
            grpc,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.state.project() {
            StateProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(res) => res.map(ResponseBody::new),
                Err(err) => this.answer.get().respond(&err.into(), *this.grpc),
            },
            StateProj::Failed { error } => {
                let error = error
                    .take()
                    .expect("ResponseFuture polled after completion");
                this.answer.get().respond(&error, *this.grpc)
            }
        };
        Poll::Ready(Ok(res))
    }
}
