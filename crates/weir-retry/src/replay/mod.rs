//! How a request is sent again: cloned, or (for HTTP) rebuilt from its parts and a buffered body.

use std::future::{Future, Ready, ready};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Method};
use weir_core::Deadline;
use weir_core::observer::TraceId;
use weir_core::protocol::{Auto, Http, Plain, Protocol};

mod body;
mod buffered;
#[cfg(test)]
mod tests;

pub use self::body::{BodyError, ReplayBody};
pub use self::buffered::{DEFAULT_BODY_LIMIT, HttpCopy, HttpReplay, PrepareBody};

/// How the retry layer keeps a request so it can send it again.
///
/// [`prepare`](Self::prepare) runs once per request: it returns the request for the first
/// attempt and, if the request may be retried, a copy to rebuild it from; it may take time
/// ([`HttpReplay`] reads the body into memory first). [`replay`](Self::replay) makes the request
/// of each further attempt from the copy.
///
/// Three are provided: [`IdempotentReplay`] (the default: a clone, but an `http::Request` only if
/// it is idempotent), [`CloneRequest`] (a clone of any request, HTTP or not) and [`HttpReplay`]
/// (for `http::Request<B>` of any body, no `Clone` needed, idempotent requests only).
pub trait Replay<Req> {
    /// The request the inner service receives.
    type Request;
    /// What is kept to build the request of a retry.
    type Copy;
    /// Makes the first attempt's request and the copy (`None`: the request is sent once).
    type Prepare: Future<Output = (Self::Request, Option<Self::Copy>)>;

    /// Starts preparing a request.
    fn prepare(&self, request: Req) -> Self::Prepare;

    /// Prepares a request at once when that needs no waiting: `Ok` with what
    /// [`prepare`](Self::prepare)'s future would give, and the layer then sends the first
    /// attempt from `call`, as tower's `Retry` does; `Err` with that future otherwise. The
    /// default always returns the future; [`CloneRequest`] is always ready.
    #[inline]
    fn prepare_now(
        &self,
        request: Req,
    ) -> Result<(Self::Request, Option<Self::Copy>), Self::Prepare> {
        Err(self.prepare(request))
    }

    /// The request of a retry, from the copy.
    fn replay(&self, copy: &Self::Copy) -> Self::Request;

    /// The request's deadline: no retry starts at or after it. `None` by default.
    fn deadline(&self, request: &Self::Request) -> Option<Deadline> {
        let _ = request;
        None
    }

    /// The W3C trace id of the `traceparent` header the kept copy carries, for the event of a
    /// retry or of a refusal to retry (read only then, never for a call that worked). `None`
    /// by default, and for a request that is not HTTP.
    fn trace_id(&self, copy: &Self::Copy) -> Option<TraceId> {
        let _ = copy;
        None
    }
}

/// Replays a request by cloning it: one clone per request, kept until the response, and one per
/// retry; the request has no deadline and no trace id (it reads nothing of the request). It does
/// not look at HTTP methods: an `http::Request` POST is retried like any other request. The default is [`IdempotentReplay`]; choose this one
/// only for requests that may be sent twice.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneRequest;

impl<Req: Clone> Replay<Req> for CloneRequest {
    type Request = Req;
    type Copy = Req;
    type Prepare = Ready<(Req, Option<Req>)>;

    #[inline]
    fn prepare(&self, request: Req) -> Self::Prepare {
        ready((request.clone(), Some(request)))
    }

    #[inline]
    fn prepare_now(&self, request: Req) -> Result<(Req, Option<Req>), Self::Prepare> {
        Ok((request.clone(), Some(request)))
    }

    #[inline]
    fn replay(&self, copy: &Req) -> Req {
        copy.clone()
    }
}

/// Replays a request by cloning it, as [`CloneRequest`] does, but applies HTTP's idempotency
/// rules to an `http::Request`: GET, HEAD, OPTIONS, PUT, DELETE and TRACE are retried; POST and
/// PATCH only with an `Idempotency-Key` header (or after
/// [`retry_non_idempotent`](Self::retry_non_idempotent)); CONNECT never. An HTTP request's
/// [`Deadline`] (in its extensions) bounds the retries.
///
/// `P` is the protocol ([`weir_core::protocol`]), which says how a request is read:
///
/// - [`Auto`] (the default, [`new`](Self::new), and so [`RetryLayer::new`](crate::RetryLayer::new)'s
///   and [`RetryLayer::builder`](crate::RetryLayer::builder)'s): an `http::Request` with the
///   rules above and its deadline; a standard library type (an integer, a `String`, a
///   `Duration`, a tuple, ...) cloned and always retried. A stack that sees `http::Request`s
///   applies the idempotency rules without being told. A request type of your own is not one
///   `Auto` reads: the layer does not build for it (the compiler says to choose [`Plain`]).
/// - [`Plain`] ([`plain`](Self::plain)): any request type, your own included, with no impl to
///   write for it, cloned and always retried, as [`CloneRequest`] (nothing is read: an
///   `http::Request` given to it is retried whatever its method).
/// - [`Http`] ([`http`](Self::http)): `http::Request`s only, with the rules above.
///
/// ```
/// use http::Request;
/// use weir_retry::IdempotentReplay;
///
/// let replay = IdempotentReplay::new();
/// let post = Request::post("http://shop/orders").body(()).unwrap();
/// assert!(!replay.may_retry(&post));
/// let keyed = Request::post("http://shop/orders")
///     .header("idempotency-key", "order-7")
///     .body(())
///     .unwrap();
/// assert!(replay.may_retry(&keyed));
/// assert!(replay.may_retry(&42_u32)); // not HTTP: always
/// assert!(replay.may_retry(&(7_u32, "seven")));
/// assert!(replay.retry_non_idempotent(true).may_retry(&post));
///
/// #[derive(Clone)]
/// struct Query;
/// assert!(IdempotentReplay::plain().may_retry(&Query)); // your own type: `plain()`
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct IdempotentReplay<P = Auto> {
    non_idempotent: bool,
    no_put_delete: bool,
    _protocol: PhantomData<P>,
}

impl IdempotentReplay {
    /// [`Auto`] mode: HTTP's idempotency rules and the [`Deadline`] for an `http::Request`,
    /// every standard library request type retried.
    #[must_use]
    pub const fn new() -> Self {
        Self::with_protocol()
    }

    /// [`Plain`] mode: any request type, your own included, cloned and always retried; nothing
    /// is read.
    #[must_use]
    pub const fn plain() -> IdempotentReplay<Plain> {
        IdempotentReplay::with_protocol()
    }

    /// [`Http`] mode: HTTP's idempotency rules for `http::Request`s only, and their [`Deadline`].
    #[must_use]
    pub const fn http() -> IdempotentReplay<Http> {
        IdempotentReplay::with_protocol()
    }
}

impl<P> IdempotentReplay<P> {
    /// The replay of protocol `P` chosen by type ([`Auto`], [`Plain`] or [`Http`]): what
    /// [`new`](IdempotentReplay::new), [`plain`](IdempotentReplay::plain) and
    /// [`http`](IdempotentReplay::http) make, for code generic over the protocol.
    #[must_use]
    pub const fn with_protocol() -> Self {
        Self {
            non_idempotent: false,
            no_put_delete: false,
            _protocol: PhantomData,
        }
    }

    /// Whether PUT and DELETE are retried without an `Idempotency-Key` (`true` unless set), see
    /// [`HttpReplay::retry_put_delete`].
    #[must_use]
    pub const fn retry_put_delete(mut self, yes: bool) -> Self {
        self.no_put_delete = !yes;
        self
    }

    /// `true` retries POST and PATCH (every HTTP method but CONNECT) even without an
    /// `Idempotency-Key`. Only when the server tolerates duplicates: a POST whose attempt timed
    /// out may have been done.
    #[must_use]
    pub const fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.non_idempotent = yes;
        self
    }

    /// Whether `request` may be sent more than once.
    #[must_use]
    #[inline]
    pub fn may_retry<Req>(&self, request: &Req) -> bool
    where
        P: Protocol<Req>,
    {
        match P::method(request) {
            None => true,
            Some(method) => self.may_retry_http(method, P::headers(request)),
        }
    }

    /// HTTP's rules, out of line: a request that is not HTTP never reaches them, and the code
    /// inlined in its `call` stays as small as `CloneRequest`'s.
    #[inline(never)]
    fn may_retry_http(self, method: &Method, headers: Option<&HeaderMap>) -> bool {
        headers.is_some_and(|headers| {
            HttpReplay::new()
                .non_idempotent(self.non_idempotent)
                .retry_put_delete(!self.no_put_delete)
                .is_retryable(method, headers)
        })
    }

    #[inline]
    fn split<Req: Clone>(&self, request: Req) -> (Req, Option<Req>)
    where
        P: Protocol<Req>,
    {
        if self.may_retry(&request) {
            (request.clone(), Some(request))
        } else {
            (request, None)
        }
    }
}

impl<Req: Clone, P: Protocol<Req>> Replay<Req> for IdempotentReplay<P> {
    type Request = Req;
    type Copy = Req;
    type Prepare = Ready<(Req, Option<Req>)>;

    #[inline]
    fn prepare(&self, request: Req) -> Self::Prepare {
        ready(self.split(request))
    }

    #[inline]
    fn prepare_now(&self, request: Req) -> Result<(Req, Option<Req>), Self::Prepare> {
        Ok(self.split(request))
    }

    #[inline]
    fn replay(&self, copy: &Req) -> Req {
        copy.clone()
    }

    #[inline]
    fn deadline(&self, request: &Req) -> Option<Deadline> {
        P::deadline(request)
    }

    /// An HTTP request's (one its protocol `P` reads headers of); `None` for any other.
    fn trace_id(&self, copy: &Req) -> Option<TraceId> {
        P::headers(copy).and_then(TraceId::from_headers)
    }
}

/// A [`Replay`] that sends again only the requests a predicate accepts; the others are sent
/// once. Made by [`RetryBuilder::retry_request_if`](crate::RetryBuilder::retry_request_if).
#[derive(Clone, Copy, Debug)]
pub struct Filtered<R, F> {
    replay: R,
    predicate: F,
}

impl<R, F> Filtered<R, F> {
    pub(crate) const fn new(replay: R, predicate: F) -> Self {
        Self { replay, predicate }
    }
}

impl<Req, R, F> Replay<Req> for Filtered<R, F>
where
    R: Replay<Req>,
    F: Fn(&Req) -> bool,
{
    type Request = R::Request;
    type Copy = R::Copy;
    type Prepare = FilteredPrepare<R::Prepare>;

    fn prepare(&self, request: Req) -> Self::Prepare {
        let keep = (self.predicate)(&request);
        FilteredPrepare {
            prepare: self.replay.prepare(request),
            keep,
        }
    }

    #[inline]
    fn prepare_now(
        &self,
        request: Req,
    ) -> Result<(Self::Request, Option<Self::Copy>), Self::Prepare> {
        let keep = (self.predicate)(&request);
        match self.replay.prepare_now(request) {
            Ok((request, copy)) => Ok((request, copy.filter(|_| keep))),
            Err(prepare) => Err(FilteredPrepare { prepare, keep }),
        }
    }

    fn replay(&self, copy: &Self::Copy) -> Self::Request {
        self.replay.replay(copy)
    }

    fn deadline(&self, request: &Self::Request) -> Option<Deadline> {
        self.replay.deadline(request)
    }

    fn trace_id(&self, copy: &Self::Copy) -> Option<TraceId> {
        self.replay.trace_id(copy)
    }
}

pin_project_lite::pin_project! {
    /// The [`Replay::Prepare`] future of [`Filtered`]: the inner one, without the copy when the
    /// predicate refused the request.
    #[derive(Debug)]
    pub struct FilteredPrepare<P> {
        #[pin]
        prepare: P,
        keep: bool,
    }
}

impl<P, Request, Copy> Future for FilteredPrepare<P>
where
    P: Future<Output = (Request, Option<Copy>)>,
{
    type Output = P::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (request, copy) = ready!(this.prepare.poll(cx));
        Poll::Ready((request, copy.filter(|_| *this.keep)))
    }
}
