//! `GrpcStatus`: classifies gRPC responses by their `grpc-status`.

use super::any_error::classify_error;
use super::http_status::hint_of;
use crate::{Classify, Failure, Outcome};

use std::fmt;

use http::StatusCode;

use crate::degrade::Degraded;
use crate::wire::{GRPC_STATUS, GrpcCode, ServerHint};

/// Classifies gRPC responses by the `grpc-status` in their headers.
///
/// gRPC puts the status in the headers of a trailers-only response (how servers answer a call
/// that fails before any message: tonic's `Err(Status)`, weir's own rejections) and in the
/// trailers otherwise. As a [`Classify`] it reads the headers: a response whose status arrives
/// only in the trailers is classified as a success there. As a [`ClassifyTrailers`] it reads the
/// trailers: a circuit breaker given `weir_circuit_breaker::Trailers(GrpcStatus::new())`
/// classifies every call by its real status, at the end of its body. HTTP statuses other than 200 are classified as gRPC
/// does it (a 503 is `UNAVAILABLE`, a 429 `UNAVAILABLE`, and so on, per gRPC's
/// `http-grpc-status-mapping`).
///
/// | code | default outcome |
/// |---|---|
/// | `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`, `ABORTED` | transient failure |
/// | `RESOURCE_EXHAUSTED` with a `grpc-retry-pushback-ms`, or an HTTP 429 without `grpc-status` | [throttled](Failure::throttled) failure: one caller's quota, retried after the pushback, not counted against the upstream |
/// | `UNKNOWN`, `INTERNAL`, `DATA_LOSS` | permanent failure |
/// | every other code (`OK`, `NOT_FOUND`, `INVALID_ARGUMENT`, `CANCELLED`, ...) | success |
///
/// Failures carry the `grpc-retry-pushback-ms` hint (a negative pushback means "do not retry").
/// [`throttled`](Self::throttled) chooses the codes that speak of one caller's quota when the
/// server sends a pushback with them; [`transient`](Self::transient) on
/// `RESOURCE_EXHAUSTED` makes it count against the upstream again.
///
/// ```
/// use weir_core::{BoxError, Classify};
/// use weir_core::classify::GrpcStatus;
/// use weir_core::wire::GrpcCode;
///
/// let classify = GrpcStatus::new().permanent(GrpcCode::ResourceExhausted);
/// let response = |code: &'static str| -> Result<http::Response<()>, BoxError> {
///     Ok(http::Response::builder().header("grpc-status", code).body(()).unwrap())
/// };
/// assert!(classify.classify(&response("14")).is_retryable()); // UNAVAILABLE
/// assert!(!classify.classify(&response("8")).is_retryable()); // RESOURCE_EXHAUSTED, now permanent
/// assert!(classify.classify(&response("5")).is_success()); // NOT_FOUND
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcStatus {
    failure: u32,
    transient: u32,
    /// Codes that, with a pushback, are one caller's quota.
    throttled: u32,
    ignored: u32,
}

const fn bit(code: GrpcCode) -> u32 {
    1 << code.as_u8()
}

impl GrpcStatus {
    /// The default classification (see the type's docs).
    #[must_use]
    pub const fn new() -> Self {
        let transient = bit(GrpcCode::Unavailable)
            | bit(GrpcCode::ResourceExhausted)
            | bit(GrpcCode::DeadlineExceeded)
            | bit(GrpcCode::Aborted);
        Self {
            failure: transient
                | bit(GrpcCode::Unknown)
                | bit(GrpcCode::Internal)
                | bit(GrpcCode::DataLoss),
            transient,
            throttled: bit(GrpcCode::ResourceExhausted),
            ignored: 0,
        }
    }

    /// `code` is a transient failure of the upstream, pushback or not.
    #[must_use]
    pub const fn transient(self, code: GrpcCode) -> Self {
        self.set(code, true, true, false, false)
    }

    /// `code` is a failure that trying again will not fix.
    #[must_use]
    pub const fn permanent(self, code: GrpcCode) -> Self {
        self.set(code, true, false, false, false)
    }

    /// `code` is a transient failure, and [throttled](Failure::throttled) (one caller's quota,
    /// not counted against the upstream) when the server sends a `grpc-retry-pushback-ms` with
    /// it (the default for `RESOURCE_EXHAUSTED`).
    #[must_use]
    pub const fn throttled(self, code: GrpcCode) -> Self {
        self.set(code, true, true, true, false)
    }

    /// Only the `codes` listed are worth retrying (gRFC A6's `retryableStatusCodes`): each
    /// becomes a transient failure, and every other failure stays a failure but is permanent,
    /// so a user need not list every permanent code.
    ///
    /// ```
    /// use weir_core::{BoxError, Classify};
    /// use weir_core::classify::GrpcStatus;
    /// use weir_core::wire::GrpcCode;
    ///
    /// let classify = GrpcStatus::new().only_retryable(&[GrpcCode::Unavailable]);
    /// let response = |code: &'static str| -> Result<http::Response<()>, BoxError> {
    ///     Ok(http::Response::builder().header("grpc-status", code).body(()).unwrap())
    /// };
    /// assert!(classify.classify(&response("14")).is_retryable()); // UNAVAILABLE
    /// assert!(classify.classify(&response("4")).is_failure()); // DEADLINE_EXCEEDED: counted...
    /// assert!(!classify.classify(&response("4")).is_retryable()); // ...not retried
    /// ```
    #[must_use]
    pub const fn only_retryable(mut self, codes: &[GrpcCode]) -> Self {
        let mut transient = 0;
        let mut i = 0;
        while i < codes.len() {
            transient |= bit(codes[i]);
            i += 1;
        }
        self.failure |= transient;
        self.throttled &= transient;
        self.transient = transient;
        self.ignored &= !transient;
        self
    }

    /// `code` is a success.
    #[must_use]
    pub const fn success(self, code: GrpcCode) -> Self {
        self.set(code, false, false, false, false)
    }

    /// `code` counts neither way.
    #[must_use]
    pub const fn ignore(self, code: GrpcCode) -> Self {
        self.set(code, false, false, false, true)
    }

    const fn set(
        mut self,
        code: GrpcCode,
        failure: bool,
        transient: bool,
        throttled: bool,
        ignored: bool,
    ) -> Self {
        const fn put(set: u32, bit: u32, on: bool) -> u32 {
            if on { set | bit } else { set & !bit }
        }
        let bit = bit(code);
        self.failure = put(self.failure, bit, failure);
        self.transient = put(self.transient, bit, transient);
        self.throttled = put(self.throttled, bit, throttled);
        self.ignored = put(self.ignored, bit, ignored);
        self
    }

    /// The outcome for a status code, with the server's hint for failures.
    #[must_use]
    pub const fn classify_code(&self, code: GrpcCode, hint: Option<ServerHint>) -> Outcome {
        let bit = bit(code);
        if self.ignored & bit != 0 {
            Outcome::Ignored
        } else if self.failure & bit != 0 {
            let failure = if self.throttled & bit != 0 && hint.is_some() {
                Failure::throttled()
            } else if self.transient & bit != 0 {
                Failure::transient()
            } else {
                Failure::permanent()
            };
            Outcome::Failure(failure.with_hint(hint))
        } else {
            Outcome::Success
        }
    }

    /// The outcome for a response head.
    #[must_use]
    pub fn classify_response(&self, status: StatusCode, headers: &http::HeaderMap) -> Outcome {
        let code = match headers.get(GRPC_STATUS) {
            Some(value) => GrpcCode::from_bytes(value.as_bytes()).unwrap_or(GrpcCode::Unknown),
            None if status == StatusCode::OK => return Outcome::Success,
            // A proxy's 429: one caller's quota, whatever gRPC code it maps to.
            None if status == StatusCode::TOO_MANY_REQUESTS => {
                return Outcome::Failure(Failure::throttled().with_hint(hint_of(headers)));
            }
            None => code_for_http_status(status),
        };
        if code == GrpcCode::Ok {
            return Outcome::Success;
        }
        self.classify_code(code, hint_of(headers))
    }
}

/// A classifier that can wait for the end of a response body: a gRPC response's status is in its
/// trailers, after every message, so a classifier of the head alone sees `200` and no status.
///
/// A layer that supports it (a circuit breaker with `Trailers`) asks
/// [`in_trailers`](Self::in_trailers) of each response head; when the answer is yes it keeps
/// the call open until the body ends and classifies it with
/// [`classify_end`](Self::classify_end).
pub trait ClassifyTrailers {
    /// Whether the outcome of a response with this head is only known at the end of its body.
    fn in_trailers(&self, status: StatusCode, headers: &http::HeaderMap) -> bool;

    /// The outcome of a response whose body ended so.
    fn classify_end(&self, end: crate::body::BodyEnd<'_>) -> Outcome;
}

impl ClassifyTrailers for GrpcStatus {
    /// A `200` without `grpc-status` in its headers: every normal gRPC completion, and a failure
    /// after the first message.
    #[inline]
    fn in_trailers(&self, status: StatusCode, headers: &http::HeaderMap) -> bool {
        status == StatusCode::OK && !headers.contains_key(GRPC_STATUS)
    }

    /// The `grpc-status` of the trailers (with their pushback hint); a body that ends without
    /// trailers, or trailers without a status, is `UNKNOWN` (gRPC treats a missing status as an
    /// error); a body that fails is a transient failure (a reset stream, a broken connection).
    fn classify_end(&self, end: crate::body::BodyEnd<'_>) -> Outcome {
        use crate::body::BodyEnd;
        match end {
            BodyEnd::Trailers(trailers) => {
                let code = trailers
                    .get(GRPC_STATUS)
                    .map_or(GrpcCode::Unknown, |value| {
                        GrpcCode::from_bytes(value.as_bytes()).unwrap_or(GrpcCode::Unknown)
                    });
                if code == GrpcCode::Ok {
                    return Outcome::Success;
                }
                self.classify_code(code, hint_of(trailers))
            }
            BodyEnd::Eos => self.classify_code(GrpcCode::Unknown, None),
            BodyEnd::Error => Outcome::Failure(Failure::transient()),
        }
    }
}

/// gRPC's mapping of an HTTP status to a status code, for responses without `grpc-status`
/// (gRPC's `doc/http-grpc-status-mapping.md`).
const fn code_for_http_status(status: StatusCode) -> GrpcCode {
    match status.as_u16() {
        400 => GrpcCode::Internal,
        401 => GrpcCode::Unauthenticated,
        403 => GrpcCode::PermissionDenied,
        404 => GrpcCode::Unimplemented,
        429 | 502..=504 => GrpcCode::Unavailable,
        _ => GrpcCode::Unknown,
    }
}

impl Default for GrpcStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for GrpcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |set: u32| {
            (0u8..=16)
                .filter_map(GrpcCode::from_u8)
                .filter(|code| set & bit(*code) != 0)
                .collect::<Vec<_>>()
        };
        f.debug_struct("GrpcStatus")
            .field("failure", &list(self.failure))
            .field("transient", &list(self.transient))
            .field("throttled", &list(self.throttled))
            .field("ignored", &list(self.ignored))
            .finish()
    }
}

impl<B, E: 'static> Classify<http::Response<B>, E> for GrpcStatus {
    #[inline]
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(response) => Degraded::of(response)
                .unwrap_or_else(|| self.classify_response(response.status(), response.headers())),
            Err(err) => self.classify_error(err),
        }
    }
}

impl GrpcStatus {
    /// An error: a `tonic::Status` (with the `tonic` feature) by its code, anything else as
    /// [`AnyError`] does.
    fn classify_error<E: 'static>(&self, err: &E) -> Outcome {
        #[cfg(feature = "tonic")]
        if let Some(status) = (err as &dyn std::any::Any).downcast_ref::<tonic::Status>() {
            return self.classify_status(status);
        }
        classify_error(err)
    }

    /// A `tonic::Status` by its code, with the pushback hint from its metadata.
    #[cfg(feature = "tonic")]
    fn classify_status(&self, status: &tonic::Status) -> Outcome {
        let code = GrpcCode::from(status.code());
        if code == GrpcCode::Ok {
            return Outcome::Success;
        }
        let hint = status
            .metadata()
            .get(crate::wire::GRPC_RETRY_PUSHBACK_MS.as_str())
            .and_then(|value| crate::wire::parse_grpc_pushback(value.as_bytes()));
        self.classify_code(code, hint)
    }
}

#[cfg(feature = "tonic")]
impl<T> Classify<tonic::Response<T>, tonic::Status> for GrpcStatus {
    fn classify(&self, result: &Result<tonic::Response<T>, tonic::Status>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(status) => self.classify_status(status),
        }
    }
}
