//! Failure classification: one trait that every weir layer takes to decide what a result means.

use std::fmt;
use std::time::SystemTime;

use http::StatusCode;

use crate::degrade::Degraded;
use crate::error::Error;
use crate::grpc::GrpcCode;
use crate::hint::{ServerHint, server_hint};

/// Decides what a service's result means for resilience: a success, a failure (and whether it is
/// worth retrying), or neither.
///
/// The circuit breaker, retry, hedging, fallback, health and metrics layers all take the same
/// classifier, so one decision ("a 503 is a transient failure, a 404 is not a failure of the
/// server") holds across a whole stack. Every layer defaults to [`AnyError`], so no turbofish is
/// needed; [`HttpStatus`] and [`GrpcStatus`] read responses; any
/// `Fn(&Result<Res, E>) -> Outcome` closure is a classifier too.
///
/// ```
/// use weir_core::{Classify, Failure, Outcome};
///
/// // Only errors whose text mentions "reset" are worth retrying.
/// let classify = |result: &Result<u16, String>| match result {
///     Ok(_) => Outcome::Success,
///     Err(e) if e.contains("reset") => Outcome::Failure(Failure::transient()),
///     Err(_) => Outcome::Failure(Failure::permanent()),
/// };
/// assert!(classify.classify(&Err("connection reset".into())).is_retryable());
/// assert!(!classify.classify(&Err("bad certificate".into())).is_retryable());
/// ```
pub trait Classify<Res, E> {
    /// Classifies one result.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        self(result)
    }
}

/// What a result means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call worked: it counts towards closing a circuit and is not retried.
    Success,
    /// The call failed: it counts towards opening a circuit and may be retried.
    Failure(Failure),
    /// Neither: it counts neither way and is not retried (for example weir's own rejections,
    /// which say nothing about the service behind them).
    Ignored,
}

impl Outcome {
    /// The result is a success.
    #[must_use]
    pub const fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// The result is a failure, retryable or not.
    #[must_use]
    pub const fn is_failure(&self) -> bool {
        matches!(self, Self::Failure(_))
    }

    /// The result is a transient failure that the server did not ask us not to retry.
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Failure(failure) => failure.is_retryable(),
            Self::Success | Self::Ignored => false,
        }
    }

    /// The server's hint, for a failure that carried one.
    #[must_use]
    pub const fn hint(&self) -> Option<ServerHint> {
        match self {
            Self::Failure(failure) => failure.hint(),
            Self::Success | Self::Ignored => None,
        }
    }

    /// The outcome as it speaks of the upstream's health: a [throttled](Failure::throttled)
    /// failure (one caller's quota: a 429, a `RESOURCE_EXHAUSTED` with pushback) is
    /// [`Ignored`](Self::Ignored), anything else is unchanged.
    ///
    /// What a circuit breaker, a retry budget and an adaptive limit record: state shared by every
    /// caller must not move because one caller ran out of its own quota. (Retry still reads the
    /// outcome itself, so a throttled call is retried after the server's `Retry-After`.)
    ///
    /// ```
    /// use weir_core::{Failure, Outcome};
    ///
    /// let quota = Outcome::Failure(Failure::throttled());
    /// assert!(quota.is_retryable());
    /// assert_eq!(quota.for_upstream(), Outcome::Ignored);
    /// let down = Outcome::Failure(Failure::transient());
    /// assert_eq!(down.for_upstream(), down);
    /// ```
    #[must_use]
    #[inline]
    pub const fn for_upstream(self) -> Self {
        match self {
            Self::Failure(failure) if failure.is_throttled() => Self::Ignored,
            other => other,
        }
    }
}

/// A failed result: whether it is transient (worth trying again) and what the server said about
/// trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    transient: bool,
    throttled: bool,
    hint: Option<ServerHint>,
}

impl Failure {
    /// A failure that may go away on its own: a connect error, a timeout, a 503, `UNAVAILABLE`.
    #[must_use]
    pub const fn transient() -> Self {
        Self {
            transient: true,
            throttled: false,
            hint: None,
        }
    }

    /// A failure that trying again will not fix.
    #[must_use]
    pub const fn permanent() -> Self {
        Self {
            transient: false,
            throttled: false,
            hint: None,
        }
    }

    /// A transient failure that speaks of one caller's quota, not of the upstream's health: a
    /// 429 Too Many Requests, a `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`.
    ///
    /// Retry retries it (after the server's `Retry-After` or pushback, if it gave one), but a
    /// circuit breaker, a retry budget and an adaptive limit, whose state every caller shares,
    /// count it neither way ([`Outcome::for_upstream`]): one caller over its quota must not cut
    /// the upstream off for the others.
    #[must_use]
    pub const fn throttled() -> Self {
        Self {
            transient: true,
            throttled: true,
            hint: None,
        }
    }

    /// Adds the server's hint (`Retry-After`, `grpc-retry-pushback-ms`).
    #[must_use]
    pub const fn with_hint(mut self, hint: Option<ServerHint>) -> Self {
        self.hint = hint;
        self
    }

    /// The failure is transient.
    #[must_use]
    pub const fn is_transient(&self) -> bool {
        self.transient
    }

    /// The failure is [throttled](Self::throttled): one caller's quota, not the upstream's
    /// health.
    #[must_use]
    pub const fn is_throttled(&self) -> bool {
        self.throttled
    }

    /// Transient, and the server did not say "do not retry".
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        self.transient && !matches!(self.hint, Some(ServerHint::DoNotRetry))
    }

    /// The server's hint, if it gave one.
    #[must_use]
    pub const fn hint(&self) -> Option<ServerHint> {
        self.hint
    }
}

/// Classifies an error of any type the way every weir classifier does.
///
/// - weir's own rejections (rate limited, circuit open, bulkhead full, overloaded) and an
///   exhausted retry budget are [`Outcome::Ignored`]: they were decided here, say nothing about the
///   service behind the layer, and retrying them at once only adds load;
/// - a weir timeout is a transient failure, except one of the caller's own deadline
///   ([`Error::is_caller_deadline`]: spent before the request was sent, or before the layer's own
///   timeout): that is [`Outcome::Ignored`], never the upstream's failure, and not retried (the
///   caller has no time left);
/// - any other error (a connect error, an I/O error, a status from the service) is a transient
///   failure. Use a closure classifier to be stricter.
fn classify_error<E: 'static>(err: &E) -> Outcome {
    match Error::find_in(err) {
        Some(weir) if weir.is_caller_deadline() => Outcome::Ignored,
        Some(weir) if weir.is_timeout() => Outcome::Failure(Failure::transient()),
        Some(_) => Outcome::Ignored,
        None => Outcome::Failure(Failure::transient()),
    }
}

/// The default classifier: every `Ok` is a success and every `Err` a failure.
///
/// Errors are transient (worth retrying), except weir's own rejections, which are ignored: a
/// circuit breaker must not count "rate limited by us" as a failure of the service, and a retry
/// layer must not retry "circuit open". This is the classifier every weir layer uses unless told
/// otherwise; it reads no response.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyError;

impl<Res, E: 'static> Classify<Res, E> for AnyError {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(err) => classify_error(err),
        }
    }
}

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
/// | `Err(_)` | as [`AnyError`] (a caller's own spent deadline is ignored) |
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
/// use weir_core::{BoxError, Classify, HttpStatus, Outcome};
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
    /// use weir_core::{BoxError, Classify, HttpStatus};
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
fn hint_of(headers: &http::HeaderMap) -> Option<ServerHint> {
    if headers.is_empty() {
        None
    } else {
        server_hint(headers, SystemTime::now())
    }
}

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
/// use weir_core::{BoxError, Classify, GrpcCode, GrpcStatus};
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
    /// use weir_core::{BoxError, Classify, GrpcCode, GrpcStatus};
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
        let code = match headers.get("grpc-status") {
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
        status == StatusCode::OK && !headers.contains_key("grpc-status")
    }

    /// The `grpc-status` of the trailers (with their pushback hint); a body that ends without
    /// trailers, or trailers without a status, is `UNKNOWN` (gRPC treats a missing status as an
    /// error); a body that fails is a transient failure (a reset stream, a broken connection).
    fn classify_end(&self, end: crate::body::BodyEnd<'_>) -> Outcome {
        use crate::body::BodyEnd;
        match end {
            BodyEnd::Trailers(trailers) => {
                let code = trailers
                    .get("grpc-status")
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
            .get("grpc-retry-pushback-ms")
            .and_then(|value| crate::hint::parse_grpc_pushback(value.as_bytes()));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::BoxError;

    fn http(code: u16, headers: &[(&str, &str)]) -> Result<http::Response<()>, BoxError> {
        let mut builder = http::Response::builder().status(code);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        Ok(builder.body(()).expect("valid response"))
    }

    #[test]
    fn any_error_counts_foreign_errors_and_timeouts_as_transient() {
        let io: Result<(), BoxError> = Err(std::io::Error::other("reset").into());
        assert_eq!(
            AnyError.classify(&io),
            Outcome::Failure(Failure::transient())
        );
        let timeout: Result<(), BoxError> = Err(Error::timeout().into());
        assert!(AnyError.classify(&timeout).is_retryable());
        let ok: Result<(), BoxError> = Ok(());
        assert_eq!(AnyError.classify(&ok), Outcome::Success);
    }

    #[test]
    fn weir_rejections_are_ignored_never_retried() {
        for err in [
            Error::circuit_open(),
            Error::rate_limited(Duration::from_secs(1)),
            Error::bulkhead_full(),
            Error::overloaded(),
            Error::retry_budget_exhausted(),
        ] {
            let result: Result<(), BoxError> = Err(err.into());
            assert_eq!(AnyError.classify(&result), Outcome::Ignored);
            assert_eq!(
                HttpStatus::new().classify(&result.map(|()| http::Response::new(()))),
                Outcome::Ignored
            );
        }
        // Also when the weir error is the service's error type itself.
        let result: Result<(), Error> = Err(Error::circuit_open());
        assert_eq!(AnyError.classify(&result), Outcome::Ignored);
    }

    /// #16.1: a timeout of the caller's own deadline is not the upstream's failure: every
    /// default classifier ignores it (breakers and budgets count it neither way, retry does not
    /// retry it), while the layer's own timeout stays a transient failure.
    #[test]
    fn a_callers_spent_deadline_is_ignored_by_every_default_classifier() {
        let caller: Result<(), BoxError> = Err(Error::caller_deadline().with_layer("edge").into());
        assert_eq!(AnyError.classify(&caller), Outcome::Ignored);
        let caller_http =
            || -> Result<http::Response<()>, BoxError> { Err(Error::caller_deadline().into()) };
        assert_eq!(HttpStatus::new().classify(&caller_http()), Outcome::Ignored);
        assert_eq!(GrpcStatus::new().classify(&caller_http()), Outcome::Ignored);
        let own: Result<(), BoxError> = Err(Error::timeout().into());
        assert!(AnyError.classify(&own).is_retryable());
        assert_eq!(
            AnyError.classify(&own).for_upstream(),
            AnyError.classify(&own)
        );
    }

    /// #27.2: a 429 is one caller's quota: retried after its Retry-After, never counted against
    /// the upstream by default; a user can make it an upstream failure again.
    #[test]
    fn a_429_is_throttled_retryable_and_not_the_upstreams_failure() {
        let c = HttpStatus::new();
        let outcome = c.classify(&http(429, &[("retry-after", "3")]));
        assert!(outcome.is_retryable());
        assert_eq!(
            outcome.hint(),
            Some(ServerHint::RetryAfter(Duration::from_secs(3)))
        );
        assert_eq!(outcome.for_upstream(), Outcome::Ignored);
        // A 503 still counts.
        assert!(c.classify(&http(503, &[])).for_upstream().is_failure());
        // Opting back in.
        let strict = c.transient(StatusCode::TOO_MANY_REQUESTS);
        assert!(strict.classify(&http(429, &[])).for_upstream().is_failure());
        // And any status can be made a quota signal.
        let quota = c.throttled(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            quota.classify(&http(503, &[])).for_upstream(),
            Outcome::Ignored
        );
    }

    /// #27.2: `RESOURCE_EXHAUSTED` with a pushback (and a proxy's bare 429) is one caller's
    /// quota; without a pushback it stays a failure of the upstream (a server out of memory).
    #[test]
    fn grpc_resource_exhausted_with_pushback_is_throttled() {
        let c = GrpcStatus::new();
        let pushback = c.classify(&http(
            200,
            &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "500")],
        ));
        assert!(pushback.is_retryable());
        assert_eq!(pushback.for_upstream(), Outcome::Ignored);
        let bare = c.classify(&http(200, &[("grpc-status", "8")]));
        assert!(bare.for_upstream().is_failure());
        let proxy = c.classify(&http(429, &[]));
        assert!(proxy.is_retryable());
        assert_eq!(proxy.for_upstream(), Outcome::Ignored);
        // UNAVAILABLE with a pushback is still the upstream's failure.
        let down = c.classify(&http(
            200,
            &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "500")],
        ));
        assert!(down.for_upstream().is_failure());
        let strict = c.transient(GrpcCode::ResourceExhausted);
        let counted = strict.classify(&http(
            200,
            &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "500")],
        ));
        assert!(counted.for_upstream().is_failure());
    }

    #[test]
    fn http_defaults() {
        let c = HttpStatus::new();
        for code in [500, 502, 503, 504, 599, 408, 429] {
            assert!(c.classify(&http(code, &[])).is_retryable(), "{code}");
        }
        for code in [100, 200, 204, 301, 400, 401, 403, 404, 409, 422] {
            assert_eq!(c.classify(&http(code, &[])), Outcome::Success, "{code}");
        }
    }

    #[test]
    fn http_overrides() {
        let c = HttpStatus::new()
            .permanent(StatusCode::NOT_IMPLEMENTED)
            .transient(StatusCode::CONFLICT)
            .success(StatusCode::SERVICE_UNAVAILABLE)
            .ignore(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            c.classify(&http(501, &[])),
            Outcome::Failure(Failure::permanent())
        );
        assert!(c.classify(&http(409, &[])).is_retryable());
        assert_eq!(c.classify(&http(503, &[])), Outcome::Success);
        assert_eq!(c.classify(&http(429, &[])), Outcome::Ignored);
        // Setting a status again replaces the earlier choice.
        let c = c.transient(StatusCode::TOO_MANY_REQUESTS);
        assert!(c.classify(&http(429, &[])).is_retryable());
    }

    #[test]
    fn http_failures_carry_the_servers_hint() {
        let c = HttpStatus::new();
        let outcome = c.classify(&http(503, &[("retry-after", "7")]));
        assert_eq!(
            outcome.hint(),
            Some(ServerHint::RetryAfter(Duration::from_secs(7)))
        );
        let outcome = c.classify(&http(503, &[("grpc-retry-pushback-ms", "-1")]));
        assert_eq!(outcome.hint(), Some(ServerHint::DoNotRetry));
        assert!(outcome.is_failure());
        assert!(!outcome.is_retryable());
        // A success never reads hints.
        assert_eq!(c.classify(&http(200, &[("retry-after", "7")])).hint(), None);
    }

    #[test]
    fn grpc_defaults() {
        let c = GrpcStatus::new();
        for code in ["14", "8", "4", "10"] {
            assert!(
                c.classify(&http(200, &[("grpc-status", code)]))
                    .is_retryable(),
                "{code}"
            );
        }
        for code in ["2", "13", "15"] {
            let outcome = c.classify(&http(200, &[("grpc-status", code)]));
            assert!(outcome.is_failure() && !outcome.is_retryable(), "{code}");
        }
        for code in ["0", "1", "3", "5", "6", "7", "9", "11", "12", "16"] {
            assert!(
                c.classify(&http(200, &[("grpc-status", code)]))
                    .is_success(),
                "{code}"
            );
        }
        // No grpc-status in the headers: the status is in the trailers, unseen here.
        assert!(c.classify(&http(200, &[])).is_success());
        // A garbage status is UNKNOWN: a permanent failure.
        let garbage = c.classify(&http(200, &[("grpc-status", "fourteen")]));
        assert_eq!(garbage, Outcome::Failure(Failure::permanent()));
    }

    /// #16.5: the status in the trailers is the call's status.
    #[test]
    fn grpc_classifies_the_end_of_the_body_by_its_trailers() {
        use crate::body::BodyEnd;
        let c = GrpcStatus::new();
        let ok = http::HeaderMap::new();
        assert!(c.in_trailers(StatusCode::OK, &ok));
        let mut head = http::HeaderMap::new();
        head.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert!(!c.in_trailers(StatusCode::OK, &head), "trailers-only");
        assert!(!c.in_trailers(StatusCode::SERVICE_UNAVAILABLE, &ok));
        let trailers = |code: &'static str| {
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", http::HeaderValue::from_static(code));
            t
        };
        assert!(
            c.classify_end(BodyEnd::Trailers(&trailers("0")))
                .is_success()
        );
        assert!(
            c.classify_end(BodyEnd::Trailers(&trailers("14")))
                .is_retryable()
        );
        assert!(
            c.classify_end(BodyEnd::Trailers(&trailers("5")))
                .is_success()
        );
        assert!(
            c.classify_end(BodyEnd::Trailers(&ok)).is_failure(),
            "no status"
        );
        assert!(c.classify_end(BodyEnd::Eos).is_failure());
        assert!(c.classify_end(BodyEnd::Error).is_retryable());
        let mut pushback = trailers("8");
        pushback.insert(
            "grpc-retry-pushback-ms",
            http::HeaderValue::from_static("100"),
        );
        assert_eq!(
            c.classify_end(BodyEnd::Trailers(&pushback)).for_upstream(),
            Outcome::Ignored
        );
    }

    #[test]
    fn grpc_without_grpc_status_maps_the_http_status() {
        let c = GrpcStatus::new();
        assert!(c.classify(&http(503, &[])).is_retryable());
        assert!(c.classify(&http(429, &[])).is_retryable());
        assert!(c.classify(&http(404, &[])).is_success()); // UNIMPLEMENTED
        assert!(c.classify(&http(500, &[])).is_failure()); // UNKNOWN
    }

    #[test]
    fn grpc_pushback_hint_and_overrides() {
        let c = GrpcStatus::new().ignore(GrpcCode::Aborted);
        let outcome = c.classify(&http(
            200,
            &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "250")],
        ));
        assert_eq!(
            outcome.hint(),
            Some(ServerHint::RetryAfter(Duration::from_millis(250)))
        );
        assert_eq!(
            c.classify(&http(200, &[("grpc-status", "10")])),
            Outcome::Ignored
        );
        let c = c.success(GrpcCode::Unavailable);
        assert!(
            c.classify(&http(200, &[("grpc-status", "14")]))
                .is_success()
        );
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn grpc_classifies_tonic_statuses() {
        let c = GrpcStatus::new();
        let unavailable: Result<tonic::Response<()>, tonic::Status> =
            Err(tonic::Status::unavailable("down"));
        assert!(c.classify(&unavailable).is_retryable());
        let not_found: Result<tonic::Response<()>, tonic::Status> =
            Err(tonic::Status::not_found("x"));
        assert!(c.classify(&not_found).is_success());
        let http_level: Result<http::Response<()>, tonic::Status> =
            Err(tonic::Status::internal("x"));
        assert!(c.classify(&http_level).is_failure());
    }

    /// #20.4: a fallback's answer (a 200 marked `Degraded`) is classified by the outcome it
    /// records, so the layers outside still see the original failure.
    #[test]
    fn degraded_answers_carry_the_original_outcome() {
        let degraded = |outcome| -> Result<http::Response<()>, BoxError> {
            let mut response = http::Response::new(());
            response.extensions_mut().insert(Degraded::new(outcome));
            Ok(response)
        };
        let failure = Outcome::Failure(Failure::transient());
        assert_eq!(HttpStatus::new().classify(&degraded(failure)), failure);
        assert_eq!(GrpcStatus::new().classify(&degraded(failure)), failure);
        assert_eq!(
            HttpStatus::new().classify(&degraded(Outcome::Ignored)),
            Outcome::Ignored
        );
        // Unmarked, the same 200 is a success.
        assert!(HttpStatus::new().classify(&http(200, &[])).is_success());
    }

    #[test]
    fn closures_are_classifiers() {
        let c = |r: &Result<u8, ()>| {
            if r.is_ok() {
                Outcome::Success
            } else {
                Outcome::Ignored
            }
        };
        assert_eq!(c.classify(&Err(())), Outcome::Ignored);
        assert_eq!(c.classify(&Ok(1)), Outcome::Success);
    }

    #[test]
    fn debug_lists_the_codes() {
        let text = format!("{:?}", HttpStatus::new());
        assert!(text.contains("408") && text.contains("429") && text.contains("599"));
        assert!(!text.contains("404"));
        let text = format!("{:?}", GrpcStatus::new());
        assert!(text.contains("Unavailable") && !text.contains("NotFound"));
    }
}
