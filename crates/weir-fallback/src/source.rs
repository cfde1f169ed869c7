//! The sources a fallback can answer from, and the switch that sends a request to them first.
//!
//! Each is a trait with a "none" implementation that costs nothing, so a layer pays only for the
//! sources it is given: [`NoValue`], [`NoService`] and [`Never`] keep nothing from the request and
//! are compiled away.

use std::fmt;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;
use weir_core::LoadLevel;

use crate::state::Reason;

/// What the fallback stands in for: the primary's error, the primary's failed response, or
/// nothing (the request was switched to the fallback before the primary was called).
#[derive(Debug)]
#[non_exhaustive]
pub enum Cause<'a, Res, E> {
    /// The primary returned this error, and the classifier called it a failure.
    Error(&'a E),
    /// The primary returned this response, and the classifier called it a failure.
    Response(&'a Res),
    /// The flag or the switch sent the request to the fallback first; the primary was not called.
    Switched(Reason),
}

impl<Res, E> Clone for Cause<'_, Res, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Res, E> Copy for Cause<'_, Res, E> {}

impl<'a, Res, E> Cause<'a, Res, E> {
    /// The primary's error, if it returned one.
    #[must_use]
    pub const fn error(&self) -> Option<&'a E> {
        match *self {
            Self::Error(e) => Some(e),
            Self::Response(_) | Self::Switched(_) => None,
        }
    }

    /// Why the fallback ran.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        match *self {
            Self::Error(_) => Reason::Error,
            Self::Response(_) => Reason::Response,
            Self::Switched(reason) => reason,
        }
    }
}

/// The value source: an answer made from the cause and, if it asks for them, from parts of the
/// request copied before the request went to the primary.
pub trait Value<Req, Res, E> {
    /// What is copied from each request before it is sent (`()`: nothing).
    type Parts;

    /// Copies what [`value`](Self::value) reads from the request.
    fn capture(&self, req: &Req) -> Self::Parts;

    /// The answer, or `None` to let the next source try.
    fn value(&self, cause: Cause<'_, Res, E>, parts: &Self::Parts) -> Option<Res>;
}

/// No value source.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoValue;

impl<Req, Res, E> Value<Req, Res, E> for NoValue {
    type Parts = ();

    #[inline(always)]
    fn capture(&self, _req: &Req) {}

    #[inline(always)]
    fn value(&self, _cause: Cause<'_, Res, E>, _parts: &()) -> Option<Res> {
        None
    }
}

/// A value source from a closure of the cause alone; copies nothing from the request. From
/// [`FallbackBuilder::value`](crate::FallbackBuilder::value).
#[derive(Clone, Copy)]
pub struct FromCause<F>(pub(crate) F);

impl<F, Req, Res, E> Value<Req, Res, E> for FromCause<F>
where
    F: Fn(Cause<'_, Res, E>) -> Option<Res>,
{
    type Parts = ();

    #[inline(always)]
    fn capture(&self, _req: &Req) {}

    fn value(&self, cause: Cause<'_, Res, E>, _parts: &()) -> Option<Res> {
        (self.0)(cause)
    }
}

/// A value source from a closure of the cause and of parts of the request that a second closure
/// copies before the request is sent. From
/// [`FallbackBuilder::value_from`](crate::FallbackBuilder::value_from).
#[derive(Clone, Copy)]
pub struct FromParts<X, F>(pub(crate) X, pub(crate) F);

impl<X, F, P, Req, Res, E> Value<Req, Res, E> for FromParts<X, F>
where
    X: Fn(&Req) -> P,
    F: Fn(Cause<'_, Res, E>, &P) -> Option<Res>,
{
    type Parts = P;

    // The request moves into the primary service, so what the fallback reads of it must be
    // copied now, on every call, even one that succeeds: this is the only cost a value source
    // adds to the happy path, and the closure decides how much it is (a `Method` and a `Uri`
    // are reference-counted and cost no allocation; a `HeaderMap` clone allocates).
    #[inline]
    fn capture(&self, req: &Req) -> P {
        (self.0)(req)
    }

    fn value(&self, cause: Cause<'_, Res, E>, parts: &P) -> Option<Res> {
        (self.1)(cause, parts)
    }
}

impl<F> fmt::Debug for FromCause<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromCause")
    }
}

impl<X, F> fmt::Debug for FromParts<X, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromParts")
    }
}

/// The alternative-service source: a second service that gets a copy of the request.
pub trait Alternative<Req, Res> {
    /// What is kept from each request for the alternative (`()`: nothing).
    type Keep;
    /// The alternative's call: `Some` answer, or `None` when it failed.
    type Future: Future<Output = Option<Res>>;

    /// Keeps what the alternative needs from a request before it is sent to the primary.
    fn keep(&self, req: &Req) -> Self::Keep;

    /// Calls the alternative with what was kept, or `None` when there is no alternative.
    fn call(&self, keep: &mut Self::Keep) -> Option<Self::Future>;
}

/// No alternative service.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoService;

impl<Req, Res> Alternative<Req, Res> for NoService {
    type Keep = ();
    type Future = Ready<Option<Res>>;

    #[inline(always)]
    fn keep(&self, _req: &Req) {}

    #[inline(always)]
    fn call(&self, _keep: &mut ()) -> Option<Self::Future> {
        None
    }
}

/// An alternative service; from [`FallbackBuilder::service`](crate::FallbackBuilder::service).
///
/// The primary consumes the request, so a copy is kept (`Req: Clone`) on every call while an
/// alternative is configured, as tower's retry does: for an HTTP request that is a clone of its
/// head (and of its body, which must be `Clone`, as `Full<Bytes>` is). The alternative itself is
/// cloned only when it is called.
#[derive(Clone, Debug)]
pub struct AltService<A>(pub(crate) A);

impl<A, Req, Res> Alternative<Req, Res> for AltService<A>
where
    A: Service<Req, Response = Res> + Clone,
    Req: Clone,
{
    type Keep = Option<Req>;
    type Future = AltFuture<A, Req>;

    #[inline]
    fn keep(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }

    fn call(&self, keep: &mut Option<Req>) -> Option<Self::Future> {
        let req = keep.take()?;
        Some(AltFuture {
            state: AltState::Ready {
                service: self.0.clone(),
                req: Some(req),
            },
        })
    }
}

/// An alternative service that gets a request rebuilt from parts of the original: for requests
/// that are not `Clone` (an HTTP request with a streaming body) when the alternative needs only
/// part of them (a static file service needs the path). From
/// [`FallbackBuilder::service_from`](crate::FallbackBuilder::service_from).
#[derive(Clone)]
pub struct AltFrom<A, X, F> {
    pub(crate) service: A,
    pub(crate) capture: X,
    pub(crate) rebuild: F,
}

impl<A, X, F, P, Req, Req2, Res> Alternative<Req, Res> for AltFrom<A, X, F>
where
    A: Service<Req2, Response = Res> + Clone,
    X: Fn(&Req) -> P,
    F: Fn(P) -> Req2,
{
    type Keep = Option<P>;
    type Future = AltFuture<A, Req2>;

    // The primary consumes the request: what the alternative's request is rebuilt from is copied
    // now, on every call; the closure decides how much that is (a `Uri` clone costs no
    // allocation).
    #[inline]
    fn keep(&self, req: &Req) -> Option<P> {
        Some((self.capture)(req))
    }

    fn call(&self, keep: &mut Option<P>) -> Option<Self::Future> {
        let parts = keep.take()?;
        Some(AltFuture {
            state: AltState::Ready {
                service: self.service.clone(),
                req: Some((self.rebuild)(parts)),
            },
        })
    }
}

impl<A: fmt::Debug, X, F> fmt::Debug for AltFrom<A, X, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AltFrom")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// One call of an alternative service: waits for it to be ready, calls it, and gives its
    /// response, or `None` when it failed.
    pub struct AltFuture<A: Service<Req>, Req> {
        #[pin]
        state: AltState<A, Req>,
    }
}

pin_project! {
    #[project = AltProj]
    enum AltState<A: Service<Req>, Req> {
        Ready { service: A, req: Option<Req> },
        Calling { #[pin] future: A::Future },
    }
}

impl<A: Service<Req>, Req> Future for AltFuture<A, Req> {
    type Output = Option<A::Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                AltProj::Ready { service, req } => {
                    if std::task::ready!(service.poll_ready(cx)).is_err() {
                        return Poll::Ready(None);
                    }
                    let req = req.take().expect("polled after completion");
                    let future = service.call(req);
                    state.set(AltState::Calling { future });
                }
                AltProj::Calling { future } => {
                    return future.poll(cx).map(Result::ok);
                }
            }
        }
    }
}

impl<A: Service<Req>, Req> fmt::Debug for AltFuture<A, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AltFuture")
    }
}

/// Sends a request to the fallback before the primary is called ("degrade first, not fail
/// first"). Any `Fn(&Req) -> bool` closure is a switch.
pub trait Switch<Req> {
    /// Whether this request goes to the fallback first.
    fn switch(&self, req: &Req) -> bool;
}

/// No switch: every request goes to the primary (the handle's flag still works).
#[derive(Clone, Copy, Debug, Default)]
pub struct Never;

impl<Req> Switch<Req> for Never {
    #[inline(always)]
    fn switch(&self, _req: &Req) -> bool {
        false
    }
}

impl<F, Req> Switch<Req> for F
where
    F: Fn(&Req) -> bool,
{
    #[inline]
    fn switch(&self, req: &Req) -> bool {
        self(req)
    }
}

/// Switches HTTP requests whose [`LoadLevel`] (in the request's extensions, put there by the load
/// shedder's `LoadLevelLayer`) is at least this level. A request without a level is not switched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtLoad(pub LoadLevel);

impl<B> Switch<http::Request<B>> for AtLoad {
    #[inline]
    fn switch(&self, req: &http::Request<B>) -> bool {
        req.extensions()
            .get::<LoadLevel>()
            .is_some_and(|level| *level >= self.0)
    }
}
