//! `HttpStatus`: classifies HTTP responses by their status.

use super::any_error::classify_error;
use crate::{Classify, Failure, Outcome};

use std::fmt;
use std::time::SystemTime;

use http::StatusCode;

use crate::degrade::Degraded;
use crate::wire::{ServerHint, server_hint};

/// A set of status codes 0..1024, one bit each.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StatusSet([u64; 16]);

impl StatusSet {
    const EMPTY: Self = Self([0; 16]);

    const fn contains(&self, code: u16) -> bool {
        let code = code as usize;
        code < 1024 && self.0[code / 64] & (1 << (code % 64)) != 0
    }

    const fn with(mut self, code: u16, on: bool) -> Self {
        let code = code as usize;
        if code < 1024 {
            if on {
                self.0[code / 64] |= 1 << (code % 64);
            } else {
                self.0[code / 64] &= !(1 << (code % 64));
            }
        }
        self
    }

    const fn with_range(mut self, from: u16, to: u16, on: bool) -> Self {
        let mut code = from;
        while code <= to {
            self = self.with(code, on);
            code += 1;
        }
        self
    }
}

/// Classifies HTTP responses by status code.
///
/// By default, as the HTTP semantics and Envoy's `retry_on: 5xx,retriable-4xx` have it:
///
/// | status | outcome |
/// |---|---|
/// | 5xx | transient failure |
/// | 408 Request Timeout | transient failure |
/// | 429 Too Many Requests | [throttled](Failure::throttled) failure: retried after its `Retry-After`, but one caller's quota, so no breaker, retry budget or adaptive limit counts it |
/// | every other status (1xx-4xx) | success: the server worked, the request was wrong |
/// | `Err(_)` | as [`AnyError`](crate::classify::AnyError) (a caller's own spent deadline is ignored) |
/// | a response marked [`Degraded`] (a fallback's answer) | the outcome it records |
///
/// Failures carry the server's hint from `Retry-After` or `grpc-retry-pushback-ms`. Change the
/// defaults per status with [`transient`](Self::transient), [`permanent`](Self::permanent),
/// [`throttled`](Self::throttled), [`success`](Self::success) and [`ignore`](Self::ignore):
/// `HttpStatus::new().transient(StatusCode::TOO_MANY_REQUESTS)` makes a 429 count against the
/// upstream again.
///
/// ```
/// use http::{Response, StatusCode};
/// use weir_core::{BoxError, Classify, Outcome};
/// use weir_core::classify::HttpStatus;
///
/// let classify = HttpStatus::new().permanent(StatusCode::NOT_IMPLEMENTED);
/// let response = |code: u16| -> Result<Response<()>, BoxError> {
///     Ok(Response::builder().status(code).body(()).unwrap())
/// };
/// assert!(classify.classify(&response(503)).is_retryable());
/// assert!(classify.classify(&response(501)).is_failure());
/// assert!(!classify.classify(&response(501)).is_retryable());
/// assert_eq!(classify.classify(&response(404)), Outcome::Success);
/// // A 429 is retried, but it is one caller's quota: not the upstream's failure.
/// assert!(classify.classify(&response(429)).is_retryable());
/// assert_eq!(classify.classify(&response(429)).for_upstream(), Outcome::Ignored);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpStatus {
    failure: StatusSet,
    transient: StatusSet,
    throttled: StatusSet,
    ignored: StatusSet,
}

impl HttpStatus {
    /// The default classification (see the type's docs).
    #[must_use]
    pub const fn new() -> Self {
        let failure = StatusSet::EMPTY
            .with_range(500, 599, true)
            .with(408, true)
            .with(429, true);
        Self {
            failure,
            transient: failure,
            throttled: StatusSet::EMPTY.with(429, true),
            ignored: StatusSet::EMPTY,
        }
    }

    /// `status` is a transient failure of the upstream.
    #[must_use]
    pub const fn transient(self, status: StatusCode) -> Self {
        self.set(status.as_u16(), true, true, false, false)
    }

    /// `status` is a failure that trying again will not fix.
    #[must_use]
    pub const fn permanent(self, status: StatusCode) -> Self {
        self.set(status.as_u16(), true, false, false, false)
    }

    /// `status` is a [throttled](Failure::throttled) failure: retried, but one caller's quota,
    /// not counted against the upstream (the default for 429).
    #[must_use]
    pub const fn throttled(self, status: StatusCode) -> Self {
        self.set(status.as_u16(), true, true, true, false)
    }

    /// Only the `statuses` listed are worth retrying (gRFC A6's `retryableStatusCodes`, for
    /// HTTP): each becomes a transient failure, and every other failure stays a failure but is
    /// permanent (not retried). A 429 listed stays [throttled](Failure::throttled).
    ///
    /// ```
    /// use http::{Response, StatusCode};
    /// use weir_core::{BoxError, Classify};
    /// use weir_core::classify::HttpStatus;
    ///
    /// let classify = HttpStatus::new().only_retryable(&[StatusCode::SERVICE_UNAVAILABLE]);
    /// let response = |code: u16| -> Result<Response<()>, BoxError> {
    ///     Ok(Response::builder().status(code).body(()).unwrap())
    /// };
    /// assert!(classify.classify(&response(503)).is_retryable());
    /// assert!(classify.classify(&response(500)).is_failure());
    /// assert!(!classify.classify(&response(500)).is_retryable());
    /// ```
    #[must_use]
    pub fn only_retryable(mut self, statuses: &[StatusCode]) -> Self {
        let mut transient = StatusSet::EMPTY;
        for status in statuses {
            transient = transient.with(status.as_u16(), true);
        }
        for i in 0..16 {
            self.failure.0[i] |= transient.0[i];
            self.throttled.0[i] &= transient.0[i];
            self.transient.0[i] = transient.0[i];
            self.ignored.0[i] &= !transient.0[i];
        }
        self
    }

    /// `status` is a success.
    #[must_use]
    pub const fn success(self, status: StatusCode) -> Self {
        self.set(status.as_u16(), false, false, false, false)
    }

    /// `status` counts neither way.
    #[must_use]
    pub const fn ignore(self, status: StatusCode) -> Self {
        self.set(status.as_u16(), false, false, false, true)
    }

    const fn set(
        mut self,
        code: u16,
        failure: bool,
        transient: bool,
        throttled: bool,
        ignored: bool,
    ) -> Self {
        self.failure = self.failure.with(code, failure);
        self.transient = self.transient.with(code, transient);
        self.throttled = self.throttled.with(code, throttled);
        self.ignored = self.ignored.with(code, ignored);
        self
    }

    /// The outcome for a response with this status and headers.
    #[must_use]
    pub fn classify_response(&self, status: StatusCode, headers: &http::HeaderMap) -> Outcome {
        let code = status.as_u16();
        if self.ignored.contains(code) {
            Outcome::Ignored
        } else if self.failure.contains(code) {
            let failure = if self.throttled.contains(code) {
                Failure::throttled()
            } else if self.transient.contains(code) {
                Failure::transient()
            } else {
                Failure::permanent()
            };
            Outcome::Failure(failure.with_hint(hint_of(headers)))
        } else {
            Outcome::Success
        }
    }
}

impl Default for HttpStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |set: &StatusSet| {
            (100u16..1000)
                .filter(|code| set.contains(*code))
                .collect::<Vec<_>>()
        };
        f.debug_struct("HttpStatus")
            .field("failure", &list(&self.failure))
            .field("transient", &list(&self.transient))
            .field("throttled", &list(&self.throttled))
            .field("ignored", &list(&self.ignored))
            .finish()
    }
}

impl<B, E: 'static> Classify<http::Response<B>, E> for HttpStatus {
    #[inline]
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(response) => Degraded::of(response)
                .unwrap_or_else(|| self.classify_response(response.status(), response.headers())),
            Err(err) => classify_error(err),
        }
    }
}

/// The server's hint, read only when there is a header to read (a clock read is needed for an
/// HTTP-date `Retry-After` only).
pub(super) fn hint_of(headers: &http::HeaderMap) -> Option<ServerHint> {
    if headers.is_empty() {
        None
    } else {
        server_hint(headers, SystemTime::now())
    }
}
