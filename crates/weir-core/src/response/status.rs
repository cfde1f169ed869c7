//! The status a weir error is answered with: HTTP and gRPC, one mapping each.

use http::StatusCode;

use crate::Error;
use crate::wire::GrpcCode;

/// The HTTP status for a weir error.
///
/// | error | status |
/// |---|---|
/// | rate limited | 429 Too Many Requests |
/// | a cost the quota can never admit | 413 Content Too Large (no `Retry-After`) |
/// | circuit open, bulkhead full, overloaded, retry budget exhausted | 503 Service Unavailable |
/// | timeout (the layer's own or the caller's deadline) | 504 Gateway Timeout (the layer can answer 408 instead, see [`ErrorResponseLayer::timeout_status`](crate::response::ErrorResponseLayer::timeout_status)) |
/// | a request without the key a keyed layer requires ([`Error::missing_key`]) | 401 Unauthorized (the layer can answer another, see [`ErrorResponseLayer::missing_key_status`](crate::response::ErrorResponseLayer::missing_key_status)) |
/// | a request a layer cannot read, e.g. a malformed timeout header ([`Error::bad_request`]) | 400 Bad Request |
///
/// An error that is not a weir error is a 500, answered by [`ErrorResponse`](crate::response::ErrorResponse) without its text.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use weir_core::Error;
/// use weir_core::response::http_status;
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
/// An error that is not a weir error is `INTERNAL` (13), answered by [`ErrorResponse`](crate::response::ErrorResponse) without
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
