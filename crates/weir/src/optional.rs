//! `OptionalLayer`: a layer that a configuration file may leave out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use weir_core::BoxError;

/// A layer that is there or not, decided at run time (by a configuration file): with
/// `Some(layer)` it wraps the service in `layer`, with `None` it passes requests straight
/// through. Either way the service's error is a [`BoxError`], so the stack above it has one
/// type. Unlike tower's `option_layer`, the two sides need not share an error type.
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// use weir::OptionalLayer;
/// use weir::timeout::TimeoutLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let configured: Option<TimeoutLayer> = None;
/// let svc = OptionalLayer::new(configured)
///     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct OptionalLayer<L> {
    layer: Option<L>,
}

impl<L> OptionalLayer<L> {
    /// `layer` when `Some`, nothing when `None`.
    #[must_use]
    pub const fn new(layer: Option<L>) -> Self {
        Self { layer }
    }

    /// The layer, when there is one.
    #[must_use]
    pub const fn get(&self) -> Option<&L> {
        self.layer.as_ref()
    }
}

impl<S, L: Layer<S>> Layer<S> for OptionalLayer<L> {
    type Service = Optional<L::Service, S>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.layer {
            Some(layer) => Optional::With(layer.layer(inner)),
            None => Optional::Without(inner),
        }
    }
}

/// The service of an [`OptionalLayer`]: the wrapped service, or the inner one alone.
#[derive(Clone)]
pub enum Optional<A, S> {
    /// The layer is there.
    With(A),
    /// The layer was left out.
    Without(S),
}

impl<A: fmt::Debug, S: fmt::Debug> fmt::Debug for Optional<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::With(svc) => f.debug_tuple("With").field(svc).finish(),
            Self::Without(svc) => f.debug_tuple("Without").field(svc).finish(),
        }
    }
}

impl<A, S, Req> Service<Req> for Optional<A, S>
where
    A: Service<Req>,
    A::Error: Into<BoxError>,
    S: Service<Req, Response = A::Response>,
    S::Error: Into<BoxError>,
{
    type Response = A::Response;
    type Error = BoxError;
    type Future = OptionalFuture<A::Future, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::With(svc) => svc.poll_ready(cx).map_err(Into::into),
            Self::Without(svc) => svc.poll_ready(cx).map_err(Into::into),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self {
            Self::With(svc) => OptionalFuture {
                kind: Kind::With {
                    future: svc.call(req),
                },
            },
            Self::Without(svc) => OptionalFuture {
                kind: Kind::Without {
                    future: svc.call(req),
                },
            },
        }
    }
}

pin_project! {
    /// The future of an [`Optional`] service.
    #[must_use = "futures do nothing unless polled"]
    pub struct OptionalFuture<A, S> {
        #[pin]
        kind: Kind<A, S>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<A, S> {
        With {
            #[pin]
            future: A,
        },
        Without {
            #[pin]
            future: S,
        },
    }
}

impl<A, S> fmt::Debug for OptionalFuture<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::With { .. } => "OptionalFuture::With",
            Kind::Without { .. } => "OptionalFuture::Without",
        })
    }
}

impl<A, S, T, E1, E2> Future for OptionalFuture<A, S>
where
    A: Future<Output = Result<T, E1>>,
    S: Future<Output = Result<T, E2>>,
    E1: Into<BoxError>,
    E2: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::With { future } => future.poll(cx).map_err(Into::into),
            KindProj::Without { future } => future.poll(cx).map_err(Into::into),
        }
    }
}
