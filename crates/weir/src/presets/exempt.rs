//! [`Exempt`]: the server preset's way around its own protections for health probes.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

/// The probe paths a [`ServerStack`](crate::ServerStack) exempts by default: weir-health's
/// `HealthService` defaults, `/livez`, `/readyz` and `/startupz`.
pub const DEFAULT_EXEMPT_PATHS: [&str; 3] = ["/livez", "/readyz", "/startupz"];

/// The service a [`ServerStack`](crate::ServerStack) makes inside its response mapping: a
/// request whose path is one of the exempt paths (the health probes) goes to `direct` (the
/// server timeout and the service), every other request to `protected` (the rate limit, the
/// load shedder, the server timeout and the service).
///
/// A probe is thus never refused by the protections it reports on: a flood that makes the rate
/// limit refuse everyone, or fills the load shedder, leaves the probes answering. The probes
/// must be cheap for this to be safe, as weir-health's are (a check runs at most once per
/// caching period, however many probes arrive).
///
/// The response body is the protected path's or the direct path's (an
/// [`Either`](http_body_util::Either) body): the load shedder's body holds its slot to the end,
/// a probe's holds none.
///
/// `poll_ready` readies the protected path (in the stack's default modes it is always ready: a
/// refusal is decided in `call`); a probe is sent to a clone of the direct path, readied first
/// (`Oneshot`, in a box: one allocation per probe, so that the future of every other request is
/// the protected path's and a tag), so the readied protected service keeps its readiness for
/// the next request.
pub struct Exempt<P, D> {
    protected: P,
    direct: D,
    paths: Arc<[Cow<'static, str>]>,
}

impl<P, D> Exempt<P, D> {
    pub(crate) const fn new(protected: P, direct: D, paths: Arc<[Cow<'static, str>]>) -> Self {
        Self {
            protected,
            direct,
            paths,
        }
    }

    // `get_ref` / `get_mut` / `into_inner` reach the protected path (rate limit, load shedder,
    // timeout, service).
    weir_core::inner_accessors!(protected: P);

    #[inline]
    fn is_exempt(&self, path: &str) -> bool {
        self.paths.iter().any(|exempt| exempt.as_ref() == path)
    }
}

impl<P, D, B, PB, DB> Service<Request<B>> for Exempt<P, D>
where
    P: Service<Request<B>, Response = Response<PB>>,
    D: Service<Request<B>, Response = Response<DB>, Error = P::Error> + Clone,
{
    type Response = Response<Either<PB, DB>>;
    type Error = P::Error;
    type Future = ExemptFuture<P::Future, D, Request<B>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.protected.poll_ready(cx)
    }

    // Out of line: inlined into the response mapping's `call`, the request (248 bytes) was
    // copied once more into this call's own place (the figures are in benches/README.md).
    #[inline(never)]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.paths.is_empty() && self.is_exempt(req.uri().path()) {
            probe(self.direct.clone(), req)
        } else {
            ExemptFuture {
                kind: Kind::Protected {
                    future: self.protected.call(req),
                },
            }
        }
    }
}

/// The future of a probe, boxed and out of line: the direct path's readiness and the request
/// wait in the box, so the future of every other request is the protected path's and a tag,
/// not the size of a request and a service (an `http::Request` alone is 248 bytes), which each
/// outer future would move in turn (the figures are in benches/README.md, stacks). One
/// allocation per probe.
#[cold]
#[inline(never)]
fn probe<F, D, Req>(direct: D, req: Req) -> ExemptFuture<F, D, Req>
where
    D: Service<Req>,
{
    ExemptFuture {
        kind: Kind::Direct {
            future: Box::pin(Oneshot::new(direct, req)),
        },
    }
}

impl<P: Clone, D: Clone> Clone for Exempt<P, D> {
    fn clone(&self) -> Self {
        Self {
            protected: self.protected.clone(),
            direct: self.direct.clone(),
            paths: Arc::clone(&self.paths),
        }
    }
}

impl<P: fmt::Debug, D> fmt::Debug for Exempt<P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exempt")
            .field("protected", &self.protected)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`Exempt`]: the protected path's, or the direct path's for a probe.
    pub struct ExemptFuture<F, D, Req>
    where
        D: Service<Req>,
    {
        #[pin]
        kind: Kind<F, D, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, D, Req>
    where
        D: Service<Req>,
    {
        Protected { #[pin] future: F },
        Direct { future: Pin<Box<Oneshot<D, Req>>> },
    }
}

impl<F, D, Req, PB, DB, E> Future for ExemptFuture<F, D, Req>
where
    F: Future<Output = Result<Response<PB>, E>>,
    D: Service<Req, Response = Response<DB>, Error = E>,
{
    type Output = Result<Response<Either<PB, DB>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Protected { future } => future
                .poll(cx)
                .map(|result| result.map(|res| res.map(Either::Left))),
            KindProj::Direct { future } => future
                .as_mut()
                .poll(cx)
                .map(|result| result.map(|res| res.map(Either::Right))),
        }
    }
}

impl<F, D: Service<Req>, Req> fmt::Debug for ExemptFuture<F, D, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = match &self.kind {
            Kind::Protected { .. } => "protected",
            Kind::Direct { .. } => "direct",
        };
        f.debug_struct("ExemptFuture").field("path", &path).finish()
    }
}
