//! Turning errors into HTTP responses and gRPC statuses, written once for every weir layer.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::protocol::is_grpc;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{BoxError, Error};
use crate::grpc::GrpcCode;
use crate::hint::grpc_pushback_millis;
use crate::ratelimit::{HeaderStyle, ceil_secs};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
const APPLICATION_GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// The body of the 500 answered for an error that is not a weir error; never the error's text.
const INTERNAL_HTTP_BODY: &str = "internal server error";
/// The `grpc-message` answered for an error that is not a weir error.
const INTERNAL_GRPC_MESSAGE: &str = "internal error";

/// The HTTP status for a weir error.
///
/// | error | status |
/// |---|---|
/// | rate limited | 429 Too Many Requests |
/// | a cost the quota can never admit | 413 Content Too Large (no `Retry-After`) |
/// | circuit open, bulkhead full, overloaded, retry budget exhausted | 503 Service Unavailable |
/// | timeout (the layer's own or the caller's deadline) | 504 Gateway Timeout (the layer can answer 408 instead, see [`ErrorResponseLayer::timeout_status`]) |
/// | a request without the key a keyed layer requires ([`Error::missing_key`]) | 401 Unauthorized (the layer can answer another, see [`ErrorResponseLayer::missing_key_status`]) |
/// | a request a layer cannot read, e.g. a malformed timeout header ([`Error::bad_request`]) | 400 Bad Request |
///
/// An error that is not a weir error is a 500, answered by [`ErrorResponse`] without its text.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use weir_core::{Error, http_status};
///
/// assert_eq!(http_status(&Error::rate_limited(Duration::from_secs(1))), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(http_status(&Error::circuit_open()), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(http_status(&Error::timeout()), StatusCode::GATEWAY_TIMEOUT);
/// ```
#[must_use]
pub fn http_status(err: &Error) -> StatusCode {
    if err.is_rate_limited() {
        StatusCode::TOO_MANY_REQUESTS
    } else if err.is_never_admissible() {
        StatusCode::PAYLOAD_TOO_LARGE
    } else if err.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else if err.is_missing_key() {
        StatusCode::UNAUTHORIZED
    } else if err.is_bad_request() {
        StatusCode::BAD_REQUEST
    } else {
        // Circuit open, bulkhead full, overloaded, retry budget exhausted, and any refusal added
        // later: the service cannot take the request now.
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The gRPC status code for a weir error.
///
/// | error | code |
/// |---|---|
/// | rate limited | `RESOURCE_EXHAUSTED` (8) |
/// | a cost the quota can never admit | `RESOURCE_EXHAUSTED` (8), without a pushback |
/// | circuit open, bulkhead full, overloaded, retry budget exhausted | `UNAVAILABLE` (14) |
/// | timeout | `DEADLINE_EXCEEDED` (4) |
/// | a request without the key a keyed layer requires | `UNAUTHENTICATED` (16) |
/// | a request a layer cannot read ([`Error::bad_request`]) | `INVALID_ARGUMENT` (3) |
///
/// An error that is not a weir error is `INTERNAL` (13), answered by [`ErrorResponse`] without
/// its text.
#[must_use]
pub fn grpc_code(err: &Error) -> GrpcCode {
    if err.is_rate_limited() || err.is_never_admissible() {
        GrpcCode::ResourceExhausted
    } else if err.is_timeout() {
        GrpcCode::DeadlineExceeded
    } else if err.is_missing_key() {
        GrpcCode::Unauthenticated
    } else if err.is_bad_request() {
        GrpcCode::InvalidArgument
    } else {
        GrpcCode::Unavailable
    }
}

/// Writes the body of an HTTP response [`ErrorResponseLayer`] answers an error with: its
/// `content-type` and its bytes, from the response's status and the weir error it answers
/// (`None` for an error that is not weir's, answered with a 500 whose body must not reveal it).
///
/// Set with [`ErrorResponseLayer::refusal_body`]; [`plain_text_body`] (the default) and
/// [`problem_json_body`] are built in. A plain `fn`, so the layer stays `Copy` and nothing is
/// kept per request; it runs only when an error is answered, never for a response of the inner
/// service. gRPC refusals have no body: their message is `grpc-message`.
///
/// ```
/// use bytes::Bytes;
/// use http::{HeaderValue, StatusCode};
/// use weir_core::{Error, ErrorResponseLayer};
///
/// fn body(status: StatusCode, err: Option<&Error>) -> (HeaderValue, Bytes) {
///     let reason = err.map_or("internal error", Error::reason);
///     let json = format!(r#"{{"error":{{"code":{},"message":"{reason}"}}}}"#, status.as_u16());
///     (HeaderValue::from_static("application/json"), Bytes::from(json))
/// }
///
/// let layer = ErrorResponseLayer::new().refusal_body(body);
/// let res = layer.http_response::<String>(&Error::overloaded());
/// assert_eq!(res.headers()["content-type"], "application/json");
/// ```
pub type RefusalBody = fn(StatusCode, Option<&Error>) -> (HeaderValue, Bytes);

/// The default [`RefusalBody`]: `text/plain; charset=utf-8` with [`Error::reason`]
/// (`rate limited`), or `internal server error` for an error that is not weir's.
#[must_use]
pub fn plain_text_body(_status: StatusCode, err: Option<&Error>) -> (HeaderValue, Bytes) {
    let text = err.map_or(INTERNAL_HTTP_BODY, Error::reason);
    (TEXT_PLAIN, Bytes::from_static(text.as_bytes()))
}

/// The RFC 9457 [`RefusalBody`] ("Problem Details for HTTP APIs"), for JSON APIs:
/// `content-type: application/problem+json` and an object with `type` (`"about:blank"`: the
/// status says it all), `title` (the status's reason phrase), `status`, `detail`
/// ([`Error::reason`], or `internal server error`) and, when [`Error::retry_after`] is known, the
/// extension member `retry_after` (whole seconds, as the `Retry-After` header).
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use weir_core::{Error, problem_json_body};
///
/// let (content_type, body) =
///     problem_json_body(StatusCode::TOO_MANY_REQUESTS, Some(&Error::rate_limited(Duration::from_secs(2))));
/// assert_eq!(content_type, "application/problem+json");
/// assert_eq!(
///     body,
///     r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limited","retry_after":2}"#
/// );
/// ```
#[must_use]
pub fn problem_json_body(status: StatusCode, err: Option<&Error>) -> (HeaderValue, Bytes) {
    use fmt::Write as _;

    let title = status.canonical_reason().unwrap_or("Error");
    let detail = err.map_or(INTERNAL_HTTP_BODY, Error::reason);
    // Allocates: a refusal is off the happy path.
    let mut json = String::with_capacity(128);
    json.push_str(r#"{"type":"about:blank","title":"#);
    push_json_string(&mut json, title);
    let _ = write!(json, r#","status":{},"detail":"#, status.as_u16());
    push_json_string(&mut json, detail);
    if let Some(after) = err.and_then(Error::retry_after) {
        let _ = write!(json, r#","retry_after":{}"#, retry_after_secs(after));
    }
    json.push('}');
    (PROBLEM_JSON, Bytes::from(json))
}

/// `text` as a JSON string, quotes included (RFC 8259: `"`, `\` and control characters escaped).
fn push_json_string(json: &mut String, text: &str) {
    use fmt::Write as _;

    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if c < ' ' => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

/// `Retry-After` in whole seconds, rounded up and never 0: a client told "0" retries at once.
fn retry_after_secs(after: Duration) -> u64 {
    ceil_secs(after).max(1)
}

/// A byte the gRPC spec lets `grpc-message` carry as is: printable ASCII except `%`.
const fn grpc_unreserved(byte: u8) -> bool {
    matches!(byte, b' '..=b'~') && byte != b'%'
}

/// `message` percent-encoded as the gRPC spec requires for `grpc-message`.
fn grpc_message(message: &'static str) -> HeaderValue {
    if message.bytes().all(grpc_unreserved) {
        // Every byte is printable ASCII, which `from_static` accepts.
        return HeaderValue::from_static(message);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(message.len() * 3);
    for byte in message.bytes() {
        if grpc_unreserved(byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    HeaderValue::try_from(encoded).unwrap_or(HeaderValue::from_static(""))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Auto,
    Http,
    Grpc,
}

/// Turns every error of the inner service into a response, so the service never fails: its
/// error type is [`Infallible`] and it mounts on an axum `Router` with `Router::layer`, with no
/// `HandleErrorLayer`.
///
/// A weir [`Error`] anywhere in the error's source chain becomes the matching response (see
/// [`http_response`](Self::http_response) and [`grpc_response`](Self::grpc_response)); any other
/// error becomes a 500 (gRPC `INTERNAL`) whose body never contains the error's text, and is
/// logged with `tracing::error!`.
///
/// By default the protocol is chosen per request: a request whose `content-type` starts with
/// `application/grpc` gets a gRPC trailers-only response, any other an HTTP one. Force one with
/// [`http`](Self::http) or [`grpc`](Self::grpc).
///
/// The layer holds only `Copy` configuration; passing a response through costs nothing but a
/// look at the request's `content-type`.
///
/// ```
/// use std::time::Duration;
/// use http::{Request, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use weir_core::{BoxError, Error, ErrorResponseLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(ErrorResponseLayer::new())
///     .service(service_fn(|_req: Request<String>| async {
///         Err::<http::Response<String>, BoxError>(
///             Error::rate_limited(Duration::from_millis(1500)).into(),
///         )
///     }));
/// let res = svc.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(res.headers()["retry-after"], "2");
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ErrorResponseLayer {
    protocol: Protocol,
    timeout_status: StatusCode,
    missing_key_status: StatusCode,
    header_style: HeaderStyle,
    body: RefusalBody,
}

impl Default for ErrorResponseLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorResponseLayer {
    /// Chooses HTTP or gRPC per request by its `content-type`, answers timeouts with 504 and a
    /// missing key with 401, writes the IETF `RateLimit` fields, and plain-text bodies.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            protocol: Protocol::Auto,
            timeout_status: StatusCode::GATEWAY_TIMEOUT,
            missing_key_status: StatusCode::UNAUTHORIZED,
            header_style: HeaderStyle::Ietf,
            body: plain_text_body,
        }
    }

    /// Always answers with HTTP responses, whatever the request's `content-type`.
    #[must_use]
    pub const fn http(mut self) -> Self {
        self.protocol = Protocol::Http;
        self
    }

    /// Always answers with gRPC trailers-only responses, whatever the request's `content-type`.
    #[must_use]
    pub const fn grpc(mut self) -> Self {
        self.protocol = Protocol::Grpc;
        self
    }

    /// The HTTP status for a timeout; 504 Gateway Timeout by default. A server whose timeout
    /// bounds the handling of the client's own request may prefer 408 Request Timeout:
    /// `.timeout_status(StatusCode::REQUEST_TIMEOUT)`. gRPC answers are always
    /// `DEADLINE_EXCEEDED`.
    #[must_use]
    pub const fn timeout_status(mut self, status: StatusCode) -> Self {
        self.timeout_status = status;
        self
    }

    /// The HTTP status for a request a keyed layer refused for carrying no key
    /// ([`Error::missing_key`], from [`MissingKey::Reject`](crate::MissingKey::Reject)); 401
    /// Unauthorized by default, right when the key is a credential (an API key). When it is not
    /// (a tenant header), 400 Bad Request may suit better:
    /// `.missing_key_status(StatusCode::BAD_REQUEST)`. gRPC answers are always `UNAUTHENTICATED`.
    #[must_use]
    pub const fn missing_key_status(mut self, status: StatusCode) -> Self {
        self.missing_key_status = status;
        self
    }

    /// Writes the bodies of HTTP refusals with `body` instead of plain text; see [`RefusalBody`].
    #[must_use]
    pub const fn refusal_body(mut self, body: RefusalBody) -> Self {
        self.body = body;
        self
    }

    /// Answers HTTP refusals with RFC 9457 problem details (`application/problem+json`), for
    /// JSON APIs: [`refusal_body(problem_json_body)`](problem_json_body).
    ///
    /// ```
    /// use http::StatusCode;
    /// use weir_core::{Error, ErrorResponseLayer};
    ///
    /// let res = ErrorResponseLayer::new().problem_json().http_response::<String>(&Error::circuit_open());
    /// assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// assert_eq!(res.headers()["content-type"], "application/problem+json");
    /// ```
    #[must_use]
    pub const fn problem_json(self) -> Self {
        self.refusal_body(problem_json_body)
    }

    /// Which rate-limit fields a rejection carrying [`RateLimitInfo`](crate::RateLimitInfo)
    /// gets; [`HeaderStyle::Ietf`] by default.
    #[must_use]
    pub const fn header_style(mut self, style: HeaderStyle) -> Self {
        self.header_style = style;
        self
    }

    /// The HTTP response this layer answers `err` with:
    ///
    /// - the status of [`http_status`] (or [`timeout_status`](Self::timeout_status) for a
    ///   timeout, [`missing_key_status`](Self::missing_key_status) for a missing key);
    /// - `Retry-After` when [`Error::retry_after`] is known, in whole seconds rounded up and at
    ///   least 1 (1.5 s is `2`, 0.2 s and 0 s are `1`);
    /// - the rate-limit fields of [`Error::rate_limit`] when set, in the configured
    ///   [`HeaderStyle`];
    /// - the body and `content-type` of the [`RefusalBody`]: by default
    ///   `text/plain; charset=utf-8` and [`Error::reason`] (`rate limited`), with
    ///   [`problem_json`](Self::problem_json) RFC 9457 problem details.
    ///
    /// `B` is the body type of the responses the response is mixed with; the rejection never
    /// uses it.
    #[must_use]
    pub fn http_response<B>(&self, err: &Error) -> Response<ResponseBody<B>> {
        let status = if err.is_timeout() {
            self.timeout_status
        } else if err.is_missing_key() {
            self.missing_key_status
        } else {
            http_status(err)
        };
        let (content_type, body) = (self.body)(status, Some(err));
        let mut res = Response::new(ResponseBody::rejection(body));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, content_type);
        if let Some(after) = err.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(after)));
        }
        if let Some(info) = err.rate_limit() {
            info.write_headers(headers, self.header_style);
        }
        res
    }

    /// The gRPC trailers-only response this layer answers `err` with: HTTP 200,
    /// `content-type: application/grpc`, `grpc-status` from [`grpc_code`], `grpc-message` with
    /// [`Error::reason`] (percent-encoded as the gRPC spec requires), `grpc-retry-pushback-ms`
    /// when [`Error::retry_after`] is known (milliseconds, rounded up) and an empty body.
    #[must_use]
    pub fn grpc_response<B>(&self, err: &Error) -> Response<ResponseBody<B>> {
        let mut res = trailers_only(grpc_code(err), err.reason());
        if let Some(after) = err.retry_after() {
            res.headers_mut().insert(
                GRPC_RETRY_PUSHBACK_MS,
                HeaderValue::from(grpc_pushback_millis(after)),
            );
        }
        res
    }

    /// The response for any error: a weir error in its chain is mapped, anything else is a
    /// logged 500 / `INTERNAL` that does not reveal the error's text.
    fn respond<B>(&self, err: &BoxError, grpc: bool) -> Response<ResponseBody<B>> {
        let err: &(dyn StdError + 'static) = &**err;
        match Error::find(err) {
            Some(weir) if grpc => self.grpc_response(weir),
            Some(weir) => self.http_response(weir),
            None => {
                tracing::error!(
                    error = err,
                    "inner service failed; answering an internal error"
                );
                if grpc {
                    trailers_only(GrpcCode::Internal, INTERNAL_GRPC_MESSAGE)
                } else {
                    let status = StatusCode::INTERNAL_SERVER_ERROR;
                    let (content_type, body) = (self.body)(status, None);
                    let mut res = Response::new(ResponseBody::rejection(body));
                    *res.status_mut() = status;
                    res.headers_mut().insert(CONTENT_TYPE, content_type);
                    res
                }
            }
        }
    }

    fn wants_grpc(&self, headers: &HeaderMap) -> bool {
        match self.protocol {
            Protocol::Http => false,
            Protocol::Grpc => true,
            Protocol::Auto => is_grpc(headers),
        }
    }
}

fn trailers_only<B>(code: GrpcCode, message: &'static str) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::empty());
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, APPLICATION_GRPC);
    headers.insert(GRPC_STATUS, HeaderValue::from_static(code.as_str()));
    headers.insert(GRPC_MESSAGE, grpc_message(message));
    res
}

/// The configuration a response future answers an error with, as a 4-byte reference into
/// [`Answers`]: the futures of every call carry it, and a pointer, or the configuration itself
/// (a `fn` pointer and two statuses), made every future of a server stack larger (about 10
/// instructions per call in the server-stack bench, where futures are moved through the layers
/// above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AnswerRef(u32);

impl AnswerRef {
    /// [`ErrorResponseLayer::new`]'s answers, which need no look-up.
    const DEFAULT: Self = Self(0);

    /// The configuration (its protocol is `Auto`: the future knows the protocol already).
    fn get(self) -> ErrorResponseLayer {
        match self.0 {
            0 => ErrorResponseLayer::new(),
            n => Answers::get(n),
        }
    }
}

/// Every distinct answering configuration of the process other than the default, made by
/// `layer()` (off the request path) and read only to answer an error. Bounded by the distinct
/// values a program configures (statuses, header style, refusal-body function), not by the
/// number of layers or requests: equal configurations share one entry.
struct Answers;

static ANSWERS: std::sync::RwLock<Vec<ErrorResponseLayer>> = std::sync::RwLock::new(Vec::new());

impl Answers {
    /// The reference to `config`'s answers, registering them on first sight.
    fn intern(config: &ErrorResponseLayer) -> AnswerRef {
        let config = ErrorResponseLayer {
            protocol: Protocol::Auto,
            ..*config
        };
        if config.answers_as(&ErrorResponseLayer::new()) {
            return AnswerRef::DEFAULT;
        }
        let position = |all: &[ErrorResponseLayer]| all.iter().position(|c| c.answers_as(&config));
        let found = position(
            &ANSWERS
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let index = found.unwrap_or_else(|| {
            let mut all = ANSWERS
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            position(&all).unwrap_or_else(|| {
                all.push(config);
                all.len() - 1
            })
        });
        // Four billion distinct configurations cannot be written in one program.
        AnswerRef(u32::try_from(index + 1).unwrap_or(u32::MAX))
    }

    fn get(n: u32) -> ErrorResponseLayer {
        let all = ANSWERS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| all.get(i).copied())
            .unwrap_or_else(ErrorResponseLayer::new)
    }
}

impl ErrorResponseLayer {
    /// Whether `self` answers every error as `other` does (the protocol aside). The refusal
    /// bodies are compared by address: two copies of one `fn` at different addresses only cost
    /// an entry more.
    fn answers_as(&self, other: &Self) -> bool {
        self.timeout_status == other.timeout_status
            && self.missing_key_status == other.missing_key_status
            && self.header_style == other.header_style
            && self.body as usize == other.body as usize
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse {
            inner,
            config: *self,
            answer: Answers::intern(self),
            failed: None,
        }
    }
}

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
    /// Where the response future finds `config` when it must answer an error.
    answer: AnswerRef,
    failed: Option<BoxError>,
}

impl<S> ErrorResponse<S> {
    /// Wraps `inner` with the default configuration of [`ErrorResponseLayer::new`].
    #[must_use]
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            config: ErrorResponseLayer::new(),
            answer: AnswerRef::DEFAULT,
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
            answer: self.answer,
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
            return ResponseFuture::failed(error, self.answer, grpc);
        }
        // Built in one expression on the happy path: assembled in two branches, the future was
        // written piecewise and then copied, and the copy stalled on store forwarding.
        ResponseFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
            answer: self.answer,
            grpc,
        }
    }
}

pin_project! {
    /// The response future of [`ErrorResponse`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        // Four bytes, not the layer's configuration: only an error needs it, and the future of
        // every call is moved through the stack above it.
        answer: AnswerRef,
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Failed { error: Option<BoxError> },
    }
}

impl<F> ResponseFuture<F> {
    /// The inner service failed in `poll_ready`: the future answers with its error response.
    #[cold]
    fn failed(error: BoxError, answer: AnswerRef, grpc: bool) -> Self {
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

pin_project! {
    /// The body of a response from [`ErrorResponse`]: the inner service's body, passed through
    /// untouched, or the short body of a response written for an error.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps a body of the inner service.
    #[must_use]
    pub const fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    fn rejection(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejection { data: Some(data) },
        }
    }

    const fn empty() -> Self {
        Self {
            kind: Kind::Rejection { data: None },
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("ResponseBody").field(body).finish(),
            Kind::Rejection { data } => f.debug_tuple("ResponseBody").field(data).finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

#[cfg(feature = "tonic")]
impl From<&Error> for tonic::Status {
    /// The status with the code of [`grpc_code`], [`Error::reason`] as the message and, when
    /// [`Error::retry_after`] is known, `grpc-retry-pushback-ms` in the metadata (milliseconds,
    /// rounded up).
    fn from(err: &Error) -> Self {
        let mut status = Self::new(grpc_code(err).into(), err.reason());
        if let Some(after) = err.retry_after() {
            status.metadata_mut().insert(
                tonic::metadata::MetadataKey::from_static("grpc-retry-pushback-ms"),
                tonic::metadata::MetadataValue::from(grpc_pushback_millis(after)),
            );
        }
        status
    }
}

#[cfg(feature = "tonic")]
impl From<Error> for tonic::Status {
    /// As `From<&Error>`, and the error is kept as the status's source, so
    /// `Error::find(&status)` still finds it in-process.
    fn from(err: Error) -> Self {
        let mut status = Self::from(&err);
        status.set_source(std::sync::Arc::new(err));
        status
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::*;
    use crate::ratelimit::RateLimitInfo;

    type Res = Response<ResponseBody<Full<Bytes>>>;

    fn http(err: &Error) -> Res {
        ErrorResponseLayer::new().http_response(err)
    }

    fn grpc(err: &Error) -> Res {
        ErrorResponseLayer::new().grpc_response(err)
    }

    async fn body_text(res: Res) -> String {
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    fn header<'a>(res: &'a Res, name: &str) -> Option<&'a str> {
        res.headers().get(name).map(|v| v.to_str().expect("ASCII"))
    }

    fn edge_limit() -> RateLimitInfo {
        RateLimitInfo::new("edge", 100, Duration::from_secs(60))
            .remaining(0)
            .reset(Duration::from_millis(1500))
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        for (after, expected) in [
            (Duration::from_millis(1500), "2"),
            (Duration::ZERO, "1"),
            (Duration::from_millis(200), "1"),
            (Duration::from_secs(3), "3"),
            (Duration::from_nanos(3_000_000_001), "4"),
        ] {
            let res = http(&Error::rate_limited(after));
            assert_eq!(header(&res, "retry-after"), Some(expected), "{after:?}");
        }
    }

    #[tokio::test]
    async fn rate_limited_is_429_with_ietf_fields_and_a_text_body() {
        let res =
            http(&Error::rate_limited(Duration::from_millis(1500)).with_rate_limit(edge_limit()));
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&res, "retry-after"), Some("2"));
        assert_eq!(
            header(&res, "ratelimit-policy"),
            Some(r#""edge";q=100;w=60"#)
        );
        assert_eq!(header(&res, "ratelimit"), Some(r#""edge";r=0;t=2"#));
        assert_eq!(header(&res, "x-ratelimit-limit"), None);
        assert_eq!(
            header(&res, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(res.body().size_hint().exact(), Some(12));
        assert_eq!(body_text(res).await, "rate limited");
    }

    #[test]
    fn header_style_selects_the_rate_limit_fields() {
        let err = Error::rate_limited(Duration::from_millis(1500)).with_rate_limit(edge_limit());
        let legacy: Res = ErrorResponseLayer::new()
            .header_style(HeaderStyle::XRateLimit)
            .http_response(&err);
        assert_eq!(header(&legacy, "x-ratelimit-limit"), Some("100"));
        assert_eq!(header(&legacy, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(&legacy, "x-ratelimit-reset"), Some("2"));
        assert_eq!(header(&legacy, "ratelimit"), None);
        assert_eq!(header(&legacy, "ratelimit-policy"), None);

        let none: Res = ErrorResponseLayer::new()
            .header_style(HeaderStyle::None)
            .http_response(&err);
        assert_eq!(header(&none, "retry-after"), Some("2"));
        assert_eq!(header(&none, "ratelimit"), None);
        assert_eq!(header(&none, "x-ratelimit-limit"), None);

        let both: Res = ErrorResponseLayer::new()
            .header_style(HeaderStyle::Both)
            .http_response(&err);
        assert_eq!(header(&both, "ratelimit"), Some(r#""edge";r=0;t=2"#));
        assert_eq!(header(&both, "x-ratelimit-reset"), Some("2"));
    }

    #[tokio::test]
    async fn refusals_are_503_with_retry_after_only_when_known() {
        let refusals: [(fn() -> Error, &str); 4] = [
            (Error::circuit_open, "circuit open"),
            (Error::bulkhead_full, "bulkhead full"),
            (Error::overloaded, "overloaded"),
            (Error::retry_budget_exhausted, "retry budget exhausted"),
        ];
        for (make, reason) in refusals {
            let res = http(&make());
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{reason}");
            assert_eq!(header(&res, "retry-after"), None, "{reason}");
            assert_eq!(header(&res, "ratelimit"), None, "{reason}");
            assert_eq!(body_text(res).await, reason);

            let res = http(&make().with_retry_after(Duration::from_millis(29_001)));
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{reason}");
            assert_eq!(header(&res, "retry-after"), Some("30"), "{reason}");
        }
    }

    #[tokio::test]
    async fn timeout_is_504_or_the_configured_408() {
        let res = http(&Error::timeout());
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body_text(res).await, "timed out");

        let res: Res = ErrorResponseLayer::new()
            .timeout_status(StatusCode::REQUEST_TIMEOUT)
            .http_response(&Error::timeout());
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        // Only timeouts move; a rate limit is still a 429.
        let res: Res = ErrorResponseLayer::new()
            .timeout_status(StatusCode::REQUEST_TIMEOUT)
            .http_response(&Error::rate_limited(Duration::ZERO));
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    /// #27.6: refusals a JSON API can send: RFC 9457 problem details for every refusal and for
    /// the 500 of a foreign error (which still hides the error's text), headers unchanged.
    #[tokio::test]
    async fn problem_json_bodies_for_refusals() {
        let layer = ErrorResponseLayer::new().problem_json();
        let res: Res = layer.http_response(&Error::rate_limited(Duration::from_millis(1500)));
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            header(&res, "content-type"),
            Some("application/problem+json")
        );
        assert_eq!(header(&res, "retry-after"), Some("2"));
        assert_eq!(
            body_text(res).await,
            r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limited","retry_after":2}"#
        );

        let res: Res = layer
            .timeout_status(StatusCode::REQUEST_TIMEOUT)
            .http_response(&Error::timeout());
        assert_eq!(
            body_text(res).await,
            r#"{"type":"about:blank","title":"Request Timeout","status":408,"detail":"timed out"}"#
        );

        let inner = Scripted {
            call_fails: Some(secret),
            ..Scripted::ok()
        };
        let res = layer
            .layer(inner)
            .oneshot(Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            header(&res, "content-type"),
            Some("application/problem+json")
        );
        let body = body_text(res).await;
        assert_eq!(
            body,
            r#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal server error"}"#
        );
    }

    /// #27.6: the refusal body is a hook: a user's own function writes it, from the status and
    /// the error; gRPC answers are unchanged.
    #[tokio::test]
    async fn a_refusal_body_hook_writes_the_body() {
        fn body(status: StatusCode, err: Option<&Error>) -> (HeaderValue, Bytes) {
            let text = format!(
                "{} {}",
                status.as_u16(),
                err.and_then(Error::layer).unwrap_or("-")
            );
            (HeaderValue::from_static("text/x-custom"), Bytes::from(text))
        }
        let layer = ErrorResponseLayer::new().refusal_body(body);
        let res: Res = layer.http_response(&Error::overloaded().with_layer("edge"));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&res, "content-type"), Some("text/x-custom"));
        assert_eq!(res.body().size_hint().exact(), Some(8));
        assert_eq!(body_text(res).await, "503 edge");
        let res: Res = layer.grpc_response(&Error::overloaded());
        assert_eq!(body_text(res).await, "");
    }

    /// Each service answers with its own layer's configuration, whatever other layers the
    /// process has (the futures find it by reference), and a future stays small.
    #[tokio::test]
    async fn services_of_differently_configured_layers_answer_each_their_own_way() {
        fn json(_: StatusCode, _: Option<&Error>) -> (HeaderValue, Bytes) {
            (
                HeaderValue::from_static("application/json"),
                Bytes::from("{}"),
            )
        }
        let failing = || {
            tower::service_fn(|_: Request<()>| async {
                Err::<Response<Full<Bytes>>, BoxError>(Error::missing_key().into())
            })
        };
        let layers = [
            ErrorResponseLayer::new(),
            ErrorResponseLayer::new().missing_key_status(StatusCode::BAD_REQUEST),
            ErrorResponseLayer::new()
                .missing_key_status(StatusCode::FORBIDDEN)
                .refusal_body(json),
            ErrorResponseLayer::new().missing_key_status(StatusCode::BAD_REQUEST),
        ];
        let mut answers = Vec::new();
        for layer in layers {
            let res = layer.layer(failing()).oneshot(Request::new(())).await;
            let res = res.expect("infallible");
            answers.push((
                res.status(),
                header(&res, "content-type").map(str::to_owned),
            ));
        }
        let text = Some("text/plain; charset=utf-8".to_owned());
        assert_eq!(
            answers,
            [
                (StatusCode::UNAUTHORIZED, text.clone()),
                (StatusCode::BAD_REQUEST, text.clone()),
                (StatusCode::FORBIDDEN, Some("application/json".to_owned())),
                (StatusCode::BAD_REQUEST, text),
            ]
        );
        type Inner = std::future::Ready<Result<Response<()>, BoxError>>;
        assert!(size_of::<ResponseFuture<Inner>>() <= size_of::<Inner>() + 8);
    }

    /// #27.6: a request refused for carrying no key is a 401 (or the status chosen), gRPC
    /// `UNAUTHENTICATED`, never a 429 with a `Retry-After` to wait out.
    #[tokio::test]
    async fn a_missing_key_answers_401() {
        let err = Error::missing_key().with_layer("edge");
        assert!(err.is_rejection() && !err.is_rate_limited());
        assert_eq!(http_status(&err), StatusCode::UNAUTHORIZED);
        assert_eq!(grpc_code(&err), GrpcCode::Unauthenticated);
        let res = http(&err);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&res, "retry-after"), None);
        assert_eq!(body_text(res).await, "missing key");
        let res: Res = ErrorResponseLayer::new()
            .missing_key_status(StatusCode::BAD_REQUEST)
            .http_response(&err);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(&grpc(&err), "grpc-status"), Some("16"));
    }

    /// #16.2: a request refused as malformed (a bad timeout header) is a 400, gRPC
    /// `INVALID_ARGUMENT`, a rejection with no `Retry-After`.
    #[tokio::test]
    async fn a_bad_request_answers_400_and_invalid_argument() {
        let err = Error::bad_request().with_layer("edge");
        assert!(err.is_bad_request() && err.is_rejection() && !err.is_timeout());
        assert_eq!(http_status(&err), StatusCode::BAD_REQUEST);
        assert_eq!(grpc_code(&err), GrpcCode::InvalidArgument);
        let res = http(&err);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(&res, "retry-after"), None);
        assert_eq!(body_text(res).await, "bad request");
        assert_eq!(header(&grpc(&err), "grpc-status"), Some("3"));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut json = String::new();
        push_json_string(&mut json, "a\"b\\c\u{1}é");
        assert_eq!(json, r#""a\"b\\c\u0001é""#);
    }

    #[test]
    fn free_functions_match_the_table() {
        let cases: [(Error, StatusCode, GrpcCode); 6] = [
            (
                Error::rate_limited(Duration::from_secs(1)),
                StatusCode::TOO_MANY_REQUESTS,
                GrpcCode::ResourceExhausted,
            ),
            (
                Error::circuit_open(),
                StatusCode::SERVICE_UNAVAILABLE,
                GrpcCode::Unavailable,
            ),
            (
                Error::bulkhead_full(),
                StatusCode::SERVICE_UNAVAILABLE,
                GrpcCode::Unavailable,
            ),
            (
                Error::overloaded(),
                StatusCode::SERVICE_UNAVAILABLE,
                GrpcCode::Unavailable,
            ),
            (
                Error::retry_budget_exhausted(),
                StatusCode::SERVICE_UNAVAILABLE,
                GrpcCode::Unavailable,
            ),
            (
                Error::timeout(),
                StatusCode::GATEWAY_TIMEOUT,
                GrpcCode::DeadlineExceeded,
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(http_status(&err), status, "{err:?}");
            assert_eq!(grpc_code(&err), code, "{err:?}");
        }
    }

    #[tokio::test]
    async fn grpc_trailers_only_for_each_kind() {
        let cases: [(Error, &str, &str, Option<&str>); 6] = [
            (
                Error::rate_limited(Duration::from_micros(1_500_001)),
                "8",
                "rate limited",
                Some("1501"),
            ),
            (Error::circuit_open(), "14", "circuit open", None),
            (
                Error::bulkhead_full().with_retry_after(Duration::from_secs(2)),
                "14",
                "bulkhead full",
                Some("2000"),
            ),
            (Error::overloaded(), "14", "overloaded", None),
            (
                Error::retry_budget_exhausted(),
                "14",
                "retry budget exhausted",
                None,
            ),
            (Error::timeout(), "4", "timed out", None),
        ];
        for (err, status, message, pushback) in cases {
            let res = grpc(&err);
            assert_eq!(res.status(), StatusCode::OK, "{err:?}");
            assert_eq!(header(&res, "content-type"), Some("application/grpc"));
            assert_eq!(header(&res, "grpc-status"), Some(status), "{err:?}");
            assert_eq!(header(&res, "grpc-message"), Some(message), "{err:?}");
            assert_eq!(header(&res, "grpc-retry-pushback-ms"), pushback, "{err:?}");
            assert_eq!(header(&res, "retry-after"), None);
            assert!(res.body().is_end_stream());
            assert_eq!(res.body().size_hint().exact(), Some(0));
            assert_eq!(body_text(res).await, "");
        }
    }

    #[test]
    fn grpc_message_percent_encodes_what_the_spec_reserves() {
        assert_eq!(grpc_message("rate limited"), "rate limited");
        assert_eq!(grpc_message("100% full"), "100%25 full");
        assert_eq!(grpc_message("caf\u{e9}\n"), "caf%C3%A9%0A");
    }

    /// #15.8: a wait longer than gRFC A6's `int32` of milliseconds (a monthly quota) is written
    /// as `i32::MAX`, and weir's own parser reads it back as a wait, never "do not retry".
    #[test]
    fn a_long_wait_is_a_pushback_within_int32_that_reads_back_as_a_wait() {
        let month = Duration::from_secs(30 * 86_400);
        let res = grpc(&Error::rate_limited(month));
        let written = header(&res, "grpc-retry-pushback-ms").expect("pushback");
        assert_eq!(written, "2147483647");
        assert_eq!(
            crate::hint::parse_grpc_pushback(written.as_bytes()),
            Some(crate::hint::ServerHint::RetryAfter(crate::hint::MAX_HINT))
        );
    }

    /// #15.8: the pushback is whole milliseconds rounded up, clamped to gRFC A6's `int32`.
    #[test]
    fn retry_pushback_is_milliseconds_rounded_up_within_int32() {
        assert_eq!(grpc_pushback_millis(Duration::ZERO), 0);
        assert_eq!(grpc_pushback_millis(Duration::from_nanos(1)), 1);
        assert_eq!(grpc_pushback_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(
            grpc_pushback_millis(Duration::from_millis(2_147_483_647)),
            i32::MAX
        );
        assert_eq!(
            grpc_pushback_millis(Duration::from_millis(2_147_483_648)),
            i32::MAX
        );
        assert_eq!(grpc_pushback_millis(Duration::MAX), i32::MAX);
    }

    // ---- the service ----

    /// Answers `Ok` with a body, or fails `call` or `poll_ready` with the given error.
    #[derive(Clone)]
    struct Scripted {
        call_fails: Option<fn() -> BoxError>,
        ready_fails: Option<fn() -> BoxError>,
        calls: Arc<AtomicUsize>,
    }

    impl Scripted {
        fn ok() -> Self {
            Self {
                call_fails: None,
                ready_fails: None,
                calls: Arc::new(AtomicUsize::new(0)),
            }
        }
    }

    impl Service<Request<()>> for Scripted {
        type Response = Response<Full<Bytes>>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Self::Response, BoxError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(self.ready_fails.take().map_or(Ok(()), |make| Err(make())))
        }

        fn call(&mut self, _req: Request<()>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(match self.call_fails {
                Some(make) => Err(make()),
                None => {
                    let mut res = Response::new(Full::new(Bytes::from_static(b"from inner")));
                    *res.status_mut() = StatusCode::ACCEPTED;
                    Ok(res)
                }
            })
        }
    }

    fn grpc_request() -> Request<()> {
        let mut req = Request::new(());
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/GRPC+proto"),
        );
        req
    }

    fn secret() -> BoxError {
        "db password is hunter2".into()
    }

    fn circuit() -> BoxError {
        Error::circuit_open()
            .with_retry_after(Duration::from_secs(5))
            .into()
    }

    #[tokio::test]
    async fn success_passes_through_untouched() {
        let res = ErrorResponseLayer::new()
            .layer(Scripted::ok())
            .oneshot(Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(res.body().size_hint().exact(), Some(10));
        assert_eq!(body_text(res).await, "from inner");
    }

    #[tokio::test]
    async fn a_foreign_error_is_a_generic_500_that_hides_its_text() {
        let inner = Scripted {
            call_fails: Some(secret),
            ..Scripted::ok()
        };
        let res = ErrorResponseLayer::new()
            .layer(inner.clone())
            .oneshot(Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            header(&res, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        let headers = format!("{:?}", res.headers());
        let body = body_text(res).await;
        assert_eq!(body, "internal server error");
        assert!(!body.contains("hunter2") && !headers.contains("hunter2"));

        let res = ErrorResponseLayer::new()
            .layer(inner)
            .oneshot(grpc_request())
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "grpc-status"), Some("13"));
        assert_eq!(header(&res, "grpc-message"), Some("internal error"));
    }

    #[tokio::test]
    async fn a_weir_error_wrapped_in_a_source_chain_is_still_mapped() {
        #[derive(Debug)]
        struct Wrapper(BoxError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapper")
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&*self.0)
            }
        }
        let inner = Scripted {
            call_fails: Some(|| Box::new(Wrapper(Error::overloaded().into()))),
            ..Scripted::ok()
        };
        let res = ErrorResponseLayer::new()
            .layer(inner)
            .oneshot(Request::new(()))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_text(res).await, "overloaded");
    }

    #[tokio::test]
    async fn protocol_is_chosen_by_content_type_unless_forced() {
        let inner = Scripted {
            call_fails: Some(circuit),
            ..Scripted::ok()
        };
        let call =
            |layer: ErrorResponseLayer, req: Request<()>| layer.layer(inner.clone()).oneshot(req);

        let auto_grpc = call(ErrorResponseLayer::new(), grpc_request())
            .await
            .expect("ok");
        assert_eq!(auto_grpc.status(), StatusCode::OK);
        assert_eq!(header(&auto_grpc, "grpc-status"), Some("14"));
        assert_eq!(header(&auto_grpc, "grpc-retry-pushback-ms"), Some("5000"));

        let auto_http = call(ErrorResponseLayer::new(), Request::new(()))
            .await
            .expect("ok");
        assert_eq!(auto_http.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&auto_http, "retry-after"), Some("5"));

        let mut not_grpc = Request::new(());
        not_grpc
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let res = call(ErrorResponseLayer::new(), not_grpc).await.expect("ok");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

        let forced_http = call(ErrorResponseLayer::new().http(), grpc_request())
            .await
            .expect("ok");
        assert_eq!(forced_http.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&forced_http, "grpc-status"), None);

        let forced_grpc = call(ErrorResponseLayer::new().grpc(), Request::new(()))
            .await
            .expect("ok");
        assert_eq!(header(&forced_grpc, "grpc-status"), Some("14"));
    }

    #[tokio::test]
    async fn a_poll_ready_error_is_answered_without_calling_the_inner_service() {
        let inner = Scripted {
            ready_fails: Some(circuit),
            ..Scripted::ok()
        };
        let calls = Arc::clone(&inner.calls);
        let mut svc = ErrorResponseLayer::new().layer(inner);

        let res = svc
            .ready()
            .await
            .expect("infallible")
            .call(Request::new(()))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&res, "retry-after"), Some("5"));
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // The kept error was spent; the next call reaches the inner service again.
        let res = svc
            .ready()
            .await
            .expect("infallible")
            .call(Request::new(()))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_clone_does_not_inherit_a_kept_poll_ready_error() {
        let inner = Scripted {
            ready_fails: Some(circuit),
            ..Scripted::ok()
        };
        let mut svc = ErrorResponseLayer::new().layer(inner);
        let _ = svc.ready().await.expect("infallible");
        let mut clone = svc.clone();
        clone.get_mut().ready_fails = None;
        let res = clone
            .ready()
            .await
            .expect("infallible")
            .call(Request::new(()))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let res = svc.call(Request::new(())).await.expect("ok");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(svc.get_ref().calls.load(Ordering::SeqCst), 1);
        assert_eq!(svc.into_inner().calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn service_future_and_body_are_send_sync_and_clone_when_the_inner_ones_are() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>() {}
        fn assert_clone<T: Clone>() {}
        assert_send_sync::<ErrorResponseLayer>();
        assert_send_sync::<ErrorResponse<Scripted>>();
        assert_clone::<ErrorResponse<Scripted>>();
        assert_send::<ResponseFuture<<Scripted as Service<Request<()>>>::Future>>();
        assert_send_sync::<ResponseBody<Full<Bytes>>>();
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn converts_into_a_tonic_status_with_code_message_and_pushback() {
        use std::error::Error as _;

        let err = Error::rate_limited(Duration::from_millis(1500)).with_layer("edge");
        let status = tonic::Status::from(&err);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "rate limited");
        assert_eq!(
            status
                .metadata()
                .get("grpc-retry-pushback-ms")
                .map(|v| v.to_str().expect("ASCII")),
            Some("1500")
        );

        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let source = status.source().expect("the weir error is the source");
        assert_eq!(Error::find(source).and_then(Error::layer), Some("edge"));

        for (err, code) in [
            (Error::circuit_open(), tonic::Code::Unavailable),
            (Error::bulkhead_full(), tonic::Code::Unavailable),
            (Error::overloaded(), tonic::Code::Unavailable),
            (Error::retry_budget_exhausted(), tonic::Code::Unavailable),
            (Error::timeout(), tonic::Code::DeadlineExceeded),
        ] {
            let status = tonic::Status::from(err);
            assert_eq!(status.code(), code);
            assert!(status.metadata().get("grpc-retry-pushback-ms").is_none());
        }
    }

    proptest! {
        #[test]
        fn retry_after_covers_the_wait_by_less_than_a_second(nanos in any::<u64>()) {
            let after = Duration::from_nanos(nanos);
            let res = http(&Error::rate_limited(after));
            let secs: u64 = header(&res, "retry-after").expect("set").parse().expect("a number");
            prop_assert!(secs >= 1);
            prop_assert!(Duration::from_secs(secs) >= after);
            prop_assert!(secs == 1 || Duration::from_secs(secs - 1) < after);
        }

        #[test]
        fn any_content_type_chooses_a_protocol_without_panicking(value in any::<Vec<u8>>()) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let expected = value.as_bytes().len() >= 16
                    && value.as_bytes()[..16].eq_ignore_ascii_case(b"application/grpc");
                headers.insert(CONTENT_TYPE, value);
                prop_assert_eq!(is_grpc(&headers), expected);
            }
        }
    }
}
