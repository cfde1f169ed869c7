//! [`HttpReplay`]: `http::Request`s rebuilt from their parts and a buffered body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};
use http_body::Body;
use weir_core::observer::TraceId;
use weir_core::protocol::{Http, Protocol};
use weir_core::wire::IDEMPOTENCY_KEY;
use weir_core::{BoxError, Deadline};

use super::Replay;
use super::body::{BodyError, BodyKind, ReplayBody};

/// The default buffer limit of [`HttpReplay`]: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

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

    /// Through weir-core's one answer for HTTP requests (`weir_core::protocol::Http`).
    #[inline]
    fn deadline(&self, request: &Self::Request) -> Option<Deadline> {
        <Http as Protocol<Self::Request>>::deadline(request)
    }

    /// The kept head's.
    fn trace_id(&self, copy: &HttpCopy) -> Option<TraceId> {
        TraceId::from_headers(&copy.headers)
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
        // Nothing kept yet, but the chunk that went past the limit may be in `more`.
        None => more.freeze(),
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
