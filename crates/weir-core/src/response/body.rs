//! The bodies of the responses written for errors.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::Error;
use crate::wire::ceil_secs;

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// The body of the 500 answered for an error that is not a weir error; never the error's text.
const INTERNAL_HTTP_BODY: &str = "internal server error";

/// `Retry-After` in whole seconds, rounded up and never 0: a client told "0" retries at once.
pub(super) fn retry_after_secs(after: Duration) -> u64 {
    ceil_secs(after).max(1)
}

/// Writes the body of an HTTP response [`ErrorResponseLayer`](crate::response::ErrorResponseLayer) answers an error with: its
/// `content-type` and its bytes, from the response's status and the weir error it answers
/// (`None` for an error that is not weir's, answered with a 500 whose body must not reveal it).
///
/// Set with [`ErrorResponseLayer::refusal_body`](crate::response::ErrorResponseLayer::refusal_body); [`plain_text_body`] (the default) and
/// [`problem_json_body`] are built in. A plain `fn`, so the layer stays `Copy` and nothing is
/// kept per request; it runs only when an error is answered, never for a response of the inner
/// service. gRPC refusals have no body: their message is `grpc-message`.
///
/// ```
/// use bytes::Bytes;
/// use http::{HeaderValue, StatusCode};
/// use weir_core::Error;
/// use weir_core::response::ErrorResponseLayer;
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
/// use weir_core::Error;
/// use weir_core::response::problem_json_body;
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
    let detail = err.map_or(INTERNAL_HTTP_BODY, Error::reason);
    problem_json(status, detail, err.and_then(Error::retry_after))
}

/// An RFC 9457 problem document of a layer's own, not from an [`Error`]:
/// `content-type: application/problem+json` and an object with `type` (`"about:blank"`),
/// `title` (the status's reason phrase), `status`, `detail` and, when given, the extension member
/// `retry_after` (whole seconds, at least 1, as the `Retry-After` header). The same document as
/// [`problem_json_body`], for an answer whose reason is not one of [`Error`]'s (weir-idempotency's
/// 409 and 422).
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use weir_core::response::problem_json;
///
/// let (content_type, body) = problem_json(
///     StatusCode::CONFLICT,
///     "a request with this idempotency key is in progress",
///     Some(Duration::from_secs(1)),
/// );
/// assert_eq!(content_type, "application/problem+json");
/// assert_eq!(
///     body,
///     r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"a request with this idempotency key is in progress","retry_after":1}"#
/// );
/// ```
#[must_use]
pub fn problem_json(
    status: StatusCode,
    detail: &str,
    retry_after: Option<Duration>,
) -> (HeaderValue, Bytes) {
    use fmt::Write as _;

    let title = status.canonical_reason().unwrap_or("Error");
    // Allocates: a refusal is off the happy path.
    let mut json = String::with_capacity(128 + detail.len());
    json.push_str(r#"{"type":"about:blank","title":"#);
    push_json_string(&mut json, title);
    let _ = write!(json, r#","status":{},"detail":"#, status.as_u16());
    push_json_string(&mut json, detail);
    if let Some(after) = retry_after {
        let _ = write!(json, r#","retry_after":{}"#, retry_after_secs(after));
    }
    json.push('}');
    (PROBLEM_JSON, Bytes::from(json))
}

/// `text` as a JSON string, quotes included (RFC 8259: `"`, `\` and control characters escaped).
pub(super) fn push_json_string(json: &mut String, text: &str) {
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

    pub(super) fn rejection(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejection { data: Some(data) },
        }
    }

    pub(super) const fn empty() -> Self {
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
