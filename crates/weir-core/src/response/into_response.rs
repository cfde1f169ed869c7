//! `impl IntoResponse for weir_core::Error` (feature `axum`).

use axum::body::Body;
use axum::response::{IntoResponse, Response};

use super::ErrorResponseLayer;
use crate::Error;

impl IntoResponse for Error {
    /// The HTTP response [`ErrorResponseLayer::new`] answers this error with: the status of
    /// [`http_status`](super::http_status) (429 for a rate limit, 503 for an open circuit,
    /// 504 for a timeout, ...), `Retry-After` when known, the `RateLimit` fields of
    /// [`Error::rate_limit`], and a plain-text body with [`Error::reason`]. So an axum handler
    /// returning `Result<_, weir_core::Error>` can `?` the refusal of a weir-wrapped client and
    /// pass it on to its own caller.
    fn into_response(self) -> Response {
        ErrorResponseLayer::new()
            .http_response::<Body>(&self)
            .map(Body::new)
    }
}
