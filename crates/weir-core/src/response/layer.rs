//! `ErrorResponseLayer`: what every error is answered with.

use std::error::Error as StdError;
use std::sync::{PoisonError, RwLock};

use crate::protocol::is_grpc;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use tower_layer::Layer;

use super::body::retry_after_secs;
use super::status::{grpc_code, http_status};
use super::{ErrorResponse, RefusalBody, ResponseBody, plain_text_body, problem_json_body};
use crate::error::{BoxError, Error};
use crate::wire::GrpcCode;
use crate::wire::HeaderStyle;
use crate::wire::grpc_pushback_millis;
use crate::wire::{GRPC_MESSAGE, GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS};

const APPLICATION_GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// The `grpc-message` answered for an error that is not a weir error.
const INTERNAL_GRPC_MESSAGE: &str = "internal error";

/// A byte the gRPC spec lets `grpc-message` carry as is: printable ASCII except `%`.
const fn grpc_unreserved(byte: u8) -> bool {
    matches!(byte, b' '..=b'~') && byte != b'%'
}

/// `message` percent-encoded as the gRPC spec requires for `grpc-message`.
pub(super) fn grpc_message(message: &'static str) -> HeaderValue {
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
/// error type is [`Infallible`](std::convert::Infallible) and it mounts on an axum `Router` with `Router::layer`, with no
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
/// use weir_core::{BoxError, Error};
/// use weir_core::response::ErrorResponseLayer;
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
    /// ([`Error::missing_key`], from [`MissingKey::Reject`](crate::key::MissingKey::Reject)); 401
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
    /// use weir_core::Error;
    /// use weir_core::response::ErrorResponseLayer;
    ///
    /// let res = ErrorResponseLayer::new().problem_json().http_response::<String>(&Error::circuit_open());
    /// assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// assert_eq!(res.headers()["content-type"], "application/problem+json");
    /// ```
    #[must_use]
    pub const fn problem_json(self) -> Self {
        self.refusal_body(problem_json_body)
    }

    /// Which rate-limit fields a rejection carrying [`RateLimitInfo`](crate::wire::RateLimitInfo)
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
    pub(super) fn respond<B>(&self, err: &BoxError, grpc: bool) -> Response<ResponseBody<B>> {
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

    pub(super) fn wants_grpc(&self, headers: &HeaderMap) -> bool {
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
/// [`Answers`]: the future of every call carries it, and the configuration itself (a `fn`
/// pointer and two statuses) or a pointer made every future of a server stack larger, and
/// futures are moved through the layers above (the figure is in benches/README.md, stacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AnswerRef(u32);

impl AnswerRef {
    /// [`ErrorResponseLayer::new`]'s answers, which need no look-up.
    pub(super) const DEFAULT: Self = Self(0);

    /// The configuration (its protocol is `Auto`: the future knows the protocol already).
    pub(super) fn get(self) -> ErrorResponseLayer {
        match self.0 {
            0 => ErrorResponseLayer::new(),
            n => Answers::get(n),
        }
    }
}

/// Every distinct answering configuration of the process other than the default, registered
/// by `layer()` (off the request path) and read only to answer an error. Bounded by the distinct
/// values a program configures (statuses, header style, refusal-body function), not by the
/// number of layers or requests: equal configurations share one entry.
struct Answers;

static ANSWERS: RwLock<Vec<ErrorResponseLayer>> = RwLock::new(Vec::new());

impl Answers {
    /// The reference to `config`'s answers, registering them on first sight.
    pub(super) fn intern(config: &ErrorResponseLayer) -> AnswerRef {
        let config = ErrorResponseLayer {
            protocol: Protocol::Auto,
            ..*config
        };
        if config.answers_as(&ErrorResponseLayer::new()) {
            return AnswerRef::DEFAULT;
        }
        let position = |all: &[ErrorResponseLayer]| all.iter().position(|c| c.answers_as(&config));
        let found = position(&ANSWERS.read().unwrap_or_else(PoisonError::into_inner));
        let index = found.unwrap_or_else(|| {
            let mut all = ANSWERS.write().unwrap_or_else(PoisonError::into_inner);
            position(&all).unwrap_or_else(|| {
                all.push(config);
                all.len() - 1
            })
        });
        // Four billion distinct configurations cannot be written in one program.
        AnswerRef(u32::try_from(index + 1).unwrap_or(u32::MAX))
    }

    fn get(n: u32) -> ErrorResponseLayer {
        let all = ANSWERS.read().unwrap_or_else(PoisonError::into_inner);
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| all.get(i).copied())
            .unwrap_or_else(ErrorResponseLayer::new)
    }
}

impl ErrorResponseLayer {
    /// Whether `self` answers every error as `other` does (the protocol aside). Refusal bodies
    /// are compared by address: two copies of one `fn` at different addresses only cost an
    /// entry more.
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
        ErrorResponse::with_config(inner, *self, Answers::intern(self))
    }
}
