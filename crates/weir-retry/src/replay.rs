//! How a request is sent again: cloned, or (for HTTP) rebuilt from its parts and a buffered body.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{Extensions, HeaderMap, HeaderName, Method, Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use weir_core::{BoxError, Deadline};
use weir_timeout::Carrier;

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
}

/// Replays a request by cloning it: one clone per request, kept until the response, and one per
/// retry; the request has no deadline. It does not look at HTTP methods: an `http::Request`
/// POST is retried like any other request. The default is [`IdempotentReplay`]; choose this one
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
/// [`retry_non_idempotent`](Self::retry_non_idempotent)); CONNECT never. A request that is not
/// HTTP (no HTTP parts, see [`Carrier`]) is always retried. An HTTP request's [`Deadline`] (in
/// its extensions) bounds the retries.
///
/// The default replay of [`RetryLayer::new`](crate::RetryLayer::new) and
/// [`RetryLayer::builder`](crate::RetryLayer::builder), and of the umbrella crate's presets: a
/// stack that sees `http::Request`s applies the idempotency rules whichever way it was built.
/// A request type of your own implements [`Carrier`] in one line (`impl Carrier for Query {}`).
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
/// assert!(replay.retry_non_idempotent(true).may_retry(&post));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct IdempotentReplay {
    non_idempotent: bool,
    no_put_delete: bool,
}

impl IdempotentReplay {
    /// HTTP's idempotency rules for HTTP requests; every other request retried.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            non_idempotent: false,
            no_put_delete: false,
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
    pub fn may_retry<Req: Carrier>(&self, request: &Req) -> bool {
        match request.method() {
            None => true,
            Some(method) => self.may_retry_http(method, request.headers()),
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
    fn split<Req: Clone + Carrier>(&self, request: Req) -> (Req, Option<Req>) {
        if self.may_retry(&request) {
            (request.clone(), Some(request))
        } else {
            (request, None)
        }
    }
}

impl<Req: Clone + Carrier> Replay<Req> for IdempotentReplay {
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
        request.extensions().and_then(Deadline::get)
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

/// The default buffer limit of [`HttpReplay`]: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header).
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Replays `http::Request<B>` for any body `B`, without `Clone`.
///
/// - **Which requests**: those whose method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE,
///   TRACE); POST and PATCH only when they carry an `Idempotency-Key` header, or when
///   [`non_idempotent`](Self::non_idempotent) opts in (CONNECT never). Others are sent once.
/// - **The body** is read into memory before the first attempt, up to [`limit`](Self::limit)
///   bytes (64 KiB unless set), then sent from memory on every attempt. A body whose size hint
///   says it is larger is not read: it is sent once, streaming, and not retried. A body of
///   unknown size is read until the limit; if it goes past, the part read and the rest are sent
///   once and not retried.
/// - **The rest**: method, URI, version, headers and extensions (`http::Extensions` is `Clone`)
///   are copied once and cloned for each retry; trailers too.
/// - **Deadline**: read from the request's extensions ([`Deadline::get`]).
///
/// The inner service receives `http::Request<ReplayBody<B>>`; for a service that wants its own
/// body type (tonic's `Channel`), map it: `.map_request(|r: Request<ReplayBody<_>>|
/// r.map(tonic::body::Body::new))`.
#[derive(Clone, Copy, Debug)]
pub struct HttpReplay {
    limit: usize,
    non_idempotent: bool,
    put_delete: bool,
    wait: bool,
}

impl HttpReplay {
    /// Idempotent methods only, bodies up to 64 KiB.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            limit: DEFAULT_BODY_LIMIT,
            non_idempotent: false,
            put_delete: true,
            wait: true,
        }
    }

    /// Buffers bodies up to `bytes` (inclusive).
    #[must_use]
    pub const fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Retries every method but CONNECT, idempotent or not. Only when the server tolerates
    /// duplicates: a POST that timed out may have been done.
    #[must_use]
    pub const fn non_idempotent(mut self, yes: bool) -> Self {
        self.non_idempotent = yes;
        self
    }

    /// Whether PUT and DELETE are retried without an `Idempotency-Key` (`true` unless set: RFC
    /// 9110 calls them idempotent). `false` for a server whose PUT or DELETE is not (a PUT that
    /// appends, a DELETE that answers differently the second time): they are then retried only
    /// with an `Idempotency-Key`, as POST and PATCH are.
    #[must_use]
    pub const fn retry_put_delete(mut self, yes: bool) -> Self {
        self.put_delete = yes;
        self
    }

    /// Whether to wait for a body that is not all there yet (`true` unless set). With `false`,
    /// a body that would make the layer wait (a stream still being written: a client-streaming
    /// gRPC call, a proxied upload) is sent at once, what was read followed by the rest, and not
    /// retried; only bodies already in memory are replayed. `RetryLayer::grpc()` sets `false`,
    /// so a streaming call is never held back waiting for its own end.
    #[must_use]
    pub const fn wait_for_body(mut self, wait: bool) -> Self {
        self.wait = wait;
        self
    }

    /// The buffer limit in bytes.
    #[must_use]
    pub const fn body_limit(&self) -> usize {
        self.limit
    }

    /// Whether a request with this method and headers may be sent more than once.
    #[must_use]
    pub fn is_retryable(&self, method: &Method, headers: &HeaderMap) -> bool {
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE => true,
            Method::PUT | Method::DELETE if self.put_delete => true,
            Method::CONNECT => false,
            Method::POST | Method::PATCH | Method::PUT | Method::DELETE
                if headers.contains_key(IDEMPOTENCY_KEY) =>
            {
                true
            }
            _ => self.non_idempotent,
        }
    }
}

impl Default for HttpReplay {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`HttpReplay`] keeps of a request to send it again.
#[derive(Debug)]
pub struct HttpCopy {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl HttpCopy {
    fn request<B>(&self) -> Request<ReplayBody<B>> {
        let mut request = Request::new(ReplayBody::full(self.body.clone(), self.trailers.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }

    /// The buffered body.
    #[must_use]
    pub const fn body(&self) -> &Bytes {
        &self.body
    }
}

impl<B> Replay<Request<B>> for HttpReplay
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Request = Request<ReplayBody<B>>;
    type Copy = HttpCopy;
    type Prepare = PrepareBody<B>;

    fn prepare(&self, request: Request<B>) -> PrepareBody<B> {
        let (parts, body) = request.into_parts();
        let once = |parts, body| PrepareBody {
            state: Some(Preparing::Once(Request::from_parts(
                parts,
                ReplayBody::streaming(Bytes::new(), body),
            ))),
        };
        if !self.is_retryable(&parts.method, &parts.headers) {
            return once(parts, body);
        }
        let limit = u64::try_from(self.limit).unwrap_or(u64::MAX);
        if body.size_hint().lower() > limit {
            return once(parts, body);
        }
        PrepareBody {
            state: Some(Preparing::Reading {
                parts,
                body,
                first: None,
                more: BytesMut::new(),
                trailers: None,
                limit: self.limit,
                wait: self.wait,
            }),
        }
    }

    fn replay(&self, copy: &HttpCopy) -> Self::Request {
        copy.request()
    }

    fn deadline(&self, request: &Self::Request) -> Option<Deadline> {
        Deadline::get(request.extensions())
    }
}

/// The [`Replay::Prepare`] future of [`HttpReplay`]: reads the body up to the limit.
pub struct PrepareBody<B> {
    state: Option<Preparing<B>>,
}

enum Preparing<B> {
    Once(Request<ReplayBody<B>>),
    Reading {
        parts: http::request::Parts,
        body: B,
        /// The first data chunk, kept without copying.
        first: Option<Bytes>,
        /// Later chunks, copied after the first.
        more: BytesMut,
        trailers: Option<HeaderMap>,
        limit: usize,
        wait: bool,
    },
}

impl<B> fmt::Debug for PrepareBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            Some(Preparing::Once(_)) => "once",
            Some(Preparing::Reading { .. }) => "reading",
            None => "done",
        };
        f.debug_struct("PrepareBody")
            .field("state", &state)
            .finish()
    }
}

fn joined(first: Option<Bytes>, more: BytesMut) -> Bytes {
    match first {
        None => Bytes::new(),
        Some(first) if more.is_empty() => first,
        Some(first) => {
            let mut all = BytesMut::with_capacity(first.len() + more.len());
            all.extend_from_slice(&first);
            all.extend_from_slice(&more);
            all.freeze()
        }
    }
}

impl<B> Future for PrepareBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Output = (Request<ReplayBody<B>>, Option<HttpCopy>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let Some(Preparing::Reading {
                body,
                first,
                more,
                trailers,
                limit,
                wait,
                ..
            }) = &mut this.state
            else {
                return match this.state.take() {
                    Some(Preparing::Once(request)) => Poll::Ready((request, None)),
                    _ => panic!("PrepareBody polled after completion"),
                };
            };
            let frame = if body.is_end_stream() {
                None
            } else {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(frame) => frame,
                    Poll::Pending if *wait => return Poll::Pending,
                    Poll::Pending => {
                        // Not all there and not to be waited for: send it once, as it comes.
                        let Some(Preparing::Reading {
                            parts,
                            body,
                            first,
                            more,
                            ..
                        }) = this.state.take()
                        else {
                            unreachable!("matched above")
                        };
                        let body = ReplayBody::streaming(joined(first, more), body);
                        return Poll::Ready((Request::from_parts(parts, body), None));
                    }
                }
            };
            match frame {
                Some(Err(err)) => {
                    // The body failed while being read: send what was read and the error, once;
                    // the inner service reports it as its own error.
                    let Some(Preparing::Reading {
                        parts, first, more, ..
                    }) = this.state.take()
                    else {
                        unreachable!("matched above")
                    };
                    let body = ReplayBody {
                        kind: BodyKind::Failed {
                            read: Some(joined(first, more)).filter(|b| !b.is_empty()),
                            error: Some(BodyError { inner: err.into() }),
                        },
                    };
                    return Poll::Ready((Request::from_parts(parts, body), None));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let len = first.as_ref().map_or(0, Bytes::len) + more.len();
                        if len + data.remaining() > *limit {
                            // Past the limit: send what was read and the rest, once.
                            let Some(Preparing::Reading {
                                parts,
                                body,
                                first,
                                mut more,
                                ..
                            }) = this.state.take()
                            else {
                                unreachable!("matched above")
                            };
                            more.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                            let read = joined(first, more);
                            let request =
                                Request::from_parts(parts, ReplayBody::streaming(read, body));
                            return Poll::Ready((request, None));
                        }
                        let data = data.copy_to_bytes(data.remaining());
                        if first.is_none() {
                            *first = Some(data);
                        } else {
                            more.extend_from_slice(&data);
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            match trailers {
                                Some(existing) => existing.extend(t),
                                None => *trailers = Some(t),
                            }
                        }
                    }
                },
                None => {
                    let Some(Preparing::Reading {
                        parts,
                        first,
                        more,
                        trailers,
                        ..
                    }) = this.state.take()
                    else {
                        unreachable!("matched above")
                    };
                    let copy = HttpCopy {
                        method: parts.method,
                        uri: parts.uri,
                        version: parts.version,
                        headers: parts.headers,
                        extensions: parts.extensions,
                        body: joined(first, more),
                        trailers,
                    };
                    return Poll::Ready((copy.request(), Some(copy)));
                }
            }
        }
    }
}

/// The body of a request sent through [`HttpReplay`]: the buffered body (the same bytes on every
/// attempt), or, for a request sent once, what was read of the original body followed by the
/// rest of it.
pub struct ReplayBody<B> {
    kind: BodyKind<B>,
}

enum BodyKind<B> {
    Full {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    Streaming {
        read: Option<Bytes>,
        rest: B,
    },
    /// The original body failed while being read: what was read, then its error.
    Failed {
        read: Option<Bytes>,
        error: Option<BodyError>,
    },
}

impl<B> ReplayBody<B> {
    fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: BodyKind::Full {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    fn streaming(read: Bytes, rest: B) -> Self {
        Self {
            kind: BodyKind::Streaming {
                read: (!read.is_empty()).then_some(read),
                rest,
            },
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Full { data, .. } => f
                .debug_struct("ReplayBody::Full")
                .field("remaining", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            BodyKind::Streaming { read, .. } => f
                .debug_struct("ReplayBody::Streaming")
                .field("read", &read.as_ref().map_or(0, Bytes::len))
                .finish_non_exhaustive(),
            BodyKind::Failed { error, .. } => f
                .debug_struct("ReplayBody::Failed")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

/// The error of a [`ReplayBody`]: the original body's error, for a body sent once. A concrete
/// type rather than a `BoxError`, so an async block that reads a `ReplayBody` stays `Send` (a
/// `BoxError` here trips a rustc limitation with higher-ranked lifetimes in axum handlers).
#[derive(Debug)]
pub struct BodyError {
    inner: BoxError,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            BodyKind::Full { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            BodyKind::Streaming { read, rest } => {
                if let Some(read) = read.take() {
                    return Poll::Ready(Some(Ok(Frame::data(read))));
                }
                let frame = ready!(Pin::new(rest).poll_frame(cx));
                Poll::Ready(frame.map(|frame| match frame {
                    Ok(frame) => Ok(frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))),
                    Err(err) => Err(BodyError { inner: err.into() }),
                }))
            }
            BodyKind::Failed { read, error } => Poll::Ready(
                read.take()
                    .map(|read| Ok(Frame::data(read)))
                    .or_else(|| error.take().map(Err)),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Full { data, trailers } => data.is_none() && trailers.is_none(),
            BodyKind::Streaming { read, rest } => read.is_none() && rest.is_end_stream(),
            BodyKind::Failed { read, error } => read.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            BodyKind::Streaming { read, rest } => {
                let read = read.as_ref().map_or(0, |d| d.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
            BodyKind::Failed { read, .. } => {
                let mut hint = SizeHint::new();
                hint.set_lower(read.as_ref().map_or(0, |d| d.len() as u64));
                hint
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

    use super::*;

    async fn prepare<B>(
        replay: HttpReplay,
        request: Request<B>,
    ) -> (Request<ReplayBody<B>>, Option<HttpCopy>)
    where
        B: Body + Unpin,
        B::Error: Into<BoxError>,
    {
        replay.prepare(request).await
    }

    async fn bytes_of<B>(request: Request<ReplayBody<B>>) -> Bytes
    where
        B: Body + Unpin,
        B::Error: Into<BoxError>,
    {
        request
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    }

    fn req(method: Method, body: &'static str) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
        *request.method_mut() = method;
        *request.uri_mut() = Uri::from_static("http://example.com/x?y=1");
        request.headers_mut().insert("x-a", "1".parse().unwrap());
        request.extensions_mut().insert(7_u32);
        request
    }

    #[tokio::test]
    async fn idempotent_requests_are_buffered_and_replayed_whole() {
        let replay = HttpReplay::new();
        let (first, copy) = prepare(replay, req(Method::PUT, "hello")).await;
        let copy = copy.expect("PUT is replayable");
        assert_eq!(copy.body(), "hello");
        let again: Request<ReplayBody<Full<Bytes>>> = replay.replay(&copy);
        assert_eq!(again.method(), Method::PUT);
        assert_eq!(again.uri(), "http://example.com/x?y=1");
        assert_eq!(again.headers()["x-a"], "1");
        assert_eq!(again.extensions().get::<u32>(), Some(&7));
        assert_eq!(again.body().size_hint().exact(), Some(5));
        assert_eq!(bytes_of(first).await, "hello");
        assert_eq!(bytes_of(again).await, "hello");
    }

    #[tokio::test]
    async fn post_needs_a_key_or_an_opt_in() {
        let (first, copy) = prepare(HttpReplay::new(), req(Method::POST, "pay")).await;
        assert!(copy.is_none());
        assert_eq!(bytes_of(first).await, "pay");

        let mut keyed = req(Method::POST, "pay");
        keyed
            .headers_mut()
            .insert("idempotency-key", "abc".parse().unwrap());
        assert!(prepare(HttpReplay::new(), keyed).await.1.is_some());
        assert!(
            prepare(
                HttpReplay::new().non_idempotent(true),
                req(Method::PATCH, "x")
            )
            .await
            .1
            .is_some()
        );
        assert!(
            prepare(
                HttpReplay::new().non_idempotent(true),
                req(Method::CONNECT, "")
            )
            .await
            .1
            .is_none()
        );
    }

    #[tokio::test]
    async fn a_body_known_to_be_too_large_is_not_read() {
        let (first, copy) = prepare(HttpReplay::new().limit(4), req(Method::GET, "hello")).await;
        assert!(copy.is_none());
        assert_eq!(bytes_of(first).await, "hello");
    }

    /// A body of unknown size, yielding its chunks one by one.
    struct Chunks(Vec<&'static str>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0.is_empty() {
                return Poll::Ready(None);
            }
            let chunk = self.0.remove(0);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(chunk.as_bytes())))))
        }
    }

    /// A body that yields one chunk, then fails.
    struct Broken(bool);

    impl Body for Broken {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0 {
                return Poll::Ready(Some(Err(std::io::Error::other("reset by peer"))));
            }
            self.0 = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"ab")))))
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_is_sent_once_with_its_error() {
        let (first, copy) = prepare(HttpReplay::new(), Request::new(Broken(false))).await;
        assert!(copy.is_none());
        let mut body = first.into_body();
        let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(chunk, "ab");
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "reset by peer");
        assert!(body.frame().await.is_none());
    }

    /// A body whose second chunk is not there yet on the first poll.
    struct Slow(u8);

    impl Body for Slow {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0 += 1;
            match self.0 {
                1 => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"ab"))))),
                2 => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                3 => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"cd"))))),
                _ => Poll::Ready(None),
            }
        }
    }

    #[tokio::test]
    async fn a_body_still_streaming_is_waited_for_or_sent_once() {
        let (first, copy) = prepare(HttpReplay::new(), Request::new(Slow(0))).await;
        assert_eq!(copy.expect("waited for").body(), "abcd");
        assert_eq!(bytes_of(first).await, "abcd");

        let replay = HttpReplay::new().wait_for_body(false);
        let (first, copy) = prepare(replay, Request::new(Slow(0))).await;
        assert!(copy.is_none());
        assert_eq!(bytes_of(first).await, "abcd");
    }

    #[tokio::test]
    async fn a_stream_past_the_limit_is_sent_once_whole() {
        let request = Request::new(Chunks(vec!["ab", "cd", "ef", "gh"]));
        let (first, copy) = prepare(HttpReplay::new().limit(5), request).await;
        assert!(copy.is_none());
        assert_eq!(bytes_of(first).await, "abcdefgh");

        let request = Request::new(Chunks(vec!["ab", "cd"]));
        let (first, copy) = prepare(HttpReplay::new().limit(5), request).await;
        assert_eq!(copy.expect("within the limit").body(), "abcd");
        assert_eq!(bytes_of(first).await, "abcd");
    }
}
