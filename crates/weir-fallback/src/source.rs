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
use weir_core::degrade::LoadLevel;
use weir_retry::Replay;

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

/// The request side of the alternative-service source: what the primary receives and what is
/// kept to build the alternative's request. Apart from [`Alternative`] because it does not depend
/// on the response type (the primary's request type must not).
///
/// Every alternative but [`AltReplay`] hands the request to the primary as it is and keeps a
/// copy at once; [`AltReplay`] goes through weir-retry's [`Replay`], which may first read an HTTP
/// body into memory.
pub trait Prepare<Req> {
    /// The request the primary (and the alternative) receive.
    type Request;
    /// What is kept to build the alternative's request.
    type Keep;
    /// Prepares a request that is not ready at once (an HTTP body being read).
    type Future: Future<Output = (Self::Request, Self::Keep)>;

    /// The primary's request and what is kept, at once (`Ok`), or a future giving them.
    ///
    /// # Errors
    ///
    /// `Err` carries the future when the request needs time to prepare.
    fn prepare(&self, req: Req) -> Result<(Self::Request, Self::Keep), Self::Future>;
}

/// The alternative-service source: a second service that gets a copy of the request.
pub trait Alternative<Req, Res>: Prepare<Req> {
    /// The alternative's call: `Some` answer, or `None` when it failed.
    type Future: Future<Output = Option<Res>>;

    /// Calls the alternative with what was kept, or `None` when there is no alternative (or
    /// nothing was kept: a body over the replay's limit).
    fn call(&self, keep: &mut Self::Keep) -> Option<<Self as Alternative<Req, Res>>::Future>;
}

/// No alternative service.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoService;

impl<Req> Prepare<Req> for NoService {
    type Request = Req;
    type Keep = ();
    type Future = Ready<(Req, ())>;

    #[inline(always)]
    fn prepare(&self, req: Req) -> Result<(Req, ()), Self::Future> {
        Ok((req, ()))
    }
}

impl<Req, Res> Alternative<Req, Res> for NoService {
    type Future = Ready<Option<Res>>;

    #[inline(always)]
    fn call(&self, _keep: &mut ()) -> Option<Ready<Option<Res>>> {
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

impl<A, Req: Clone> Prepare<Req> for AltService<A> {
    type Request = Req;
    type Keep = Option<Req>;
    type Future = Ready<(Req, Option<Req>)>;

    #[inline]
    fn prepare(&self, req: Req) -> Result<(Req, Option<Req>), Self::Future> {
        let keep = req.clone();
        Ok((req, Some(keep)))
    }
}

impl<A, Req, Res> Alternative<Req, Res> for AltService<A>
where
    A: Service<Req, Response = Res> + Clone,
    Req: Clone,
{
    type Future = AltFuture<A, Req>;

    fn call(&self, keep: &mut Option<Req>) -> Option<AltFuture<A, Req>> {
        let req = keep.take()?;
        Some(AltFuture::new(self.0.clone(), req))
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

impl<A, X, F, P, Req> Prepare<Req> for AltFrom<A, X, F>
where
    X: Fn(&Req) -> P,
{
    type Request = Req;
    type Keep = Option<P>;
    type Future = Ready<(Req, Option<P>)>;

    // The primary consumes the request: what the alternative's request is rebuilt from is copied
    // now, on every call; the closure decides how much that is (a `Uri` clone costs no
    // allocation).
    #[inline]
    fn prepare(&self, req: Req) -> Result<(Req, Option<P>), Self::Future> {
        let keep = (self.capture)(&req);
        Ok((req, Some(keep)))
    }
}

impl<A, X, F, P, Req, Req2, Res> Alternative<Req, Res> for AltFrom<A, X, F>
where
    A: Service<Req2, Response = Res> + Clone,
    X: Fn(&Req) -> P,
    F: Fn(P) -> Req2,
{
    type Future = AltFuture<A, Req2>;

    fn call(&self, keep: &mut Option<P>) -> Option<AltFuture<A, Req2>> {
        let parts = keep.take()?;
        Some(AltFuture::new(self.service.clone(), (self.rebuild)(parts)))
    }
}

impl<A: fmt::Debug, X, F> fmt::Debug for AltFrom<A, X, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AltFrom")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// An alternative service whose request is kept by weir-retry's [`Replay`], as a retry keeps
/// it: with [`HttpReplay`](weir_retry::HttpReplay), an `http::Request<B>` of any body (no
/// `Clone`) has its body read into memory before the primary is called, up to the replay's
/// limit, and the primary and the alternative both receive `http::Request<ReplayBody<B>>`. From
/// [`FallbackBuilder::service_replay`](crate::FallbackBuilder::service_replay).
///
/// A request the replay does not keep (a body over the limit, or a method it refuses: a POST
/// without `Idempotency-Key` unless `non_idempotent(true)`) is sent to the primary once, and
/// when it fails the alternative is skipped: the next source tries, or the primary's own
/// error is returned.
#[derive(Clone, Debug)]
pub struct AltReplay<A, R> {
    pub(crate) service: A,
    pub(crate) replay: R,
}

impl<A, R, Req> Prepare<Req> for AltReplay<A, R>
where
    R: Replay<Req>,
{
    type Request = R::Request;
    type Keep = Option<R::Copy>;
    type Future = R::Prepare;

    #[inline]
    fn prepare(&self, req: Req) -> Result<(R::Request, Option<R::Copy>), R::Prepare> {
        self.replay.prepare_now(req)
    }
}

impl<A, R, Req, Res> Alternative<Req, Res> for AltReplay<A, R>
where
    R: Replay<Req>,
    A: Service<R::Request, Response = Res> + Clone,
{
    type Future = AltFuture<A, R::Request>;

    fn call(&self, keep: &mut Option<R::Copy>) -> Option<AltFuture<A, R::Request>> {
        let copy = keep.take()?;
        Some(AltFuture::new(
            self.service.clone(),
            self.replay.replay(&copy),
        ))
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

impl<A: Service<Req>, Req> AltFuture<A, Req> {
    const fn new(service: A, req: Req) -> Self {
        Self {
            state: AltState::Ready {
                service,
                req: Some(req),
            },
        }
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
