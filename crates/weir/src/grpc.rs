//! The gRPC client preset's two adapters around a tonic `Channel`: errors become
//! `tonic::Status`es with their proper codes, and request bodies become tonic's body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use weir_core::{BoxError, Error};

/// The status a tonic client reports for `err`, an error of the stack below it:
///
/// - a `tonic::Status` (the server's answer, or one a layer made) is kept as it is;
/// - a weir [`Error`] anywhere in the chain gets its own code (circuit open, bulkhead full:
///   `UNAVAILABLE` with `grpc-retry-pushback-ms` when the wait is known; a timeout:
///   `DEADLINE_EXCEEDED`; rate limited: `RESOURCE_EXHAUSTED`; see
///   [`grpc_code`](weir_core::response::grpc_code));
/// - an HTTP/2 error is mapped as tonic maps it;
/// - any other error is a transport failure (connection refused or reset, DNS, TLS) and is
///   `UNAVAILABLE`, as gRPC's own clients report it: the call may be retried elsewhere.
///
/// The error stays the status's source, so [`Error::find`] still finds a weir error in it.
#[must_use]
pub fn grpc_status(err: BoxError) -> tonic::Status {
    let err = match err.downcast::<tonic::Status>() {
        Ok(status) => return *status,
        Err(err) => err,
    };
    if let Some(weir) = Error::find(&*err) {
        let mut status = tonic::Status::from(weir);
        status.set_source(Arc::from(err));
        return status;
    }
    match tonic::Status::try_from_error(err) {
        Ok(status) => status,
        Err(err) => {
            let mut status = tonic::Status::unavailable(err.to_string());
            status.set_source(Arc::from(err));
            status
        }
    }
}

/// Turns every error of the services below into a [`tonic::Status`] with its proper code
/// ([`grpc_status`]); outermost in [`ClientStack::builder().grpc()`](crate::ClientBuilder::grpc).
///
/// `poll_ready` never fails: an error while readying is kept and returned by the next `call`,
/// so a generated tonic client (which reports a readiness error as `UNKNOWN "Service was not
/// ready"`) sees the error's own code.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcStatusLayer;

impl GrpcStatusLayer {
    /// The layer.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for GrpcStatusLayer {
    type Service = GrpcStatusService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcStatusService {
            inner,
            failed: None,
        }
    }
}

/// The service of [`GrpcStatusLayer`].
pub struct GrpcStatusService<S> {
    inner: S,
    failed: Option<tonic::Status>,
}

impl<S> GrpcStatusService<S> {
    weir_core::inner_accessors!(inner: S);
}

impl<S: Clone> Clone for GrpcStatusService<S> {
    /// Clones the inner service, not the readiness (nor an error kept from `poll_ready`).
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            failed: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for GrpcStatusService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcStatusService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for GrpcStatusService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = tonic::Status;
    type Future = GrpcStatusFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        if self.failed.is_none()
            && let Err(err) = ready!(self.inner.poll_ready(cx))
        {
            self.failed = Some(grpc_status(err.into()));
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        if let Some(status) = self.failed.take() {
            return GrpcStatusFuture::failed(status);
        }
        GrpcStatusFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`GrpcStatusService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct GrpcStatusFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Failed { status: Option<tonic::Status> },
    }
}

impl<F> GrpcStatusFuture<F> {
    /// The inner service failed in `poll_ready`.
    #[cold]
    const fn failed(status: tonic::Status) -> Self {
        Self {
            state: State::Failed {
                status: Some(status),
            },
        }
    }
}

impl<F> fmt::Debug for GrpcStatusFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Called { .. } => "GrpcStatusFuture::Called",
            State::Failed { .. } => "GrpcStatusFuture::Failed",
        })
    }
}

impl<F, T, E> Future for GrpcStatusFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, tonic::Status>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(|err| grpc_status(err.into())),
            StateProj::Failed { status } => {
                Poll::Ready(Err(status.take().expect("polled after completion")))
            }
        }
    }
}

/// Gives the transport tonic's request body (`tonic::body::Body`), whatever body the layers
/// above made (retry's [`ReplayBody`](weir_retry::ReplayBody)); innermost in
/// [`ClientStack::builder().grpc()`](crate::ClientBuilder::grpc), so the stack wraps a tonic
/// `Channel` as it is. `tonic::body::Body::new` boxes the body once per request: the `Channel`
/// takes no other body type.
#[derive(Clone, Copy, Debug, Default)]
pub struct TonicBodyLayer;

impl TonicBodyLayer {
    /// The layer.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for TonicBodyLayer {
    type Service = TonicBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TonicBody { inner }
    }
}

/// The service of [`TonicBodyLayer`].
#[derive(Clone, Debug)]
pub struct TonicBody<S> {
    inner: S,
}

impl<S> TonicBody<S> {
    weir_core::inner_accessors!(inner: S);
}

impl<S, B> Service<http::Request<B>> for TonicBody<S>
where
    S: Service<http::Request<tonic::body::Body>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: http::Request<B>) -> S::Future {
        self.inner.call(req.map(tonic::body::Body::new))
    }
}
