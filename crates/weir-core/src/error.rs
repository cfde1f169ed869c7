//! The one error weir originates.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::name::Name;
use crate::wire::RateLimitInfo;

/// A type-erased error, as tower uses it: the error type of every weir layer that can originate an
/// error of its own.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The one error weir originates.
///
/// Every weir layer that refuses or abandons a request returns this type (boxed into a
/// [`BoxError`]). It is opaque on purpose: ask it what happened with the predicates
/// ([`is_rate_limited`](Self::is_rate_limited), [`is_circuit_open`](Self::is_circuit_open), ...)
/// rather than matching on a kind, so new kinds can be added without breaking anyone.
///
/// Errors of the inner service are never wrapped in this type: they pass through unchanged and stay
/// downcastable. Use [`Error::find`] to look for a weir error anywhere in a [`BoxError`]'s source
/// chain, whatever wraps it.
///
/// ```
/// use std::time::Duration;
/// use weir_core::{BoxError, Error};
///
/// let err: BoxError = Error::rate_limited(Duration::from_millis(1500))
///     .with_layer("edge")
///     .into();
/// let weir = Error::find(&*err).expect("a weir error");
/// assert!(weir.is_rate_limited());
/// assert_eq!(weir.retry_after(), Some(Duration::from_millis(1500)));
/// assert_eq!(weir.layer(), Some("edge"));
/// assert_eq!(err.to_string(), "rate limited by `edge`, retry after 1.5s");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    layer: Option<Name>,
    retry_after: Option<Duration>,
    rate_limit: Option<RateLimitInfo>,
    source: Option<BoxError>,
}

/// What happened. Private and non-exhaustive: callers use the predicates on [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
enum Kind {
    RateLimited,
    CircuitOpen,
    Timeout,
    BulkheadFull,
    Overloaded,
    RetryBudgetExhausted,
    NeverAdmissible,
    CallerDeadline,
    MissingKey,
    BadRequest,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate limited",
            Self::CircuitOpen => "circuit open",
            Self::Timeout => "timed out",
            Self::BulkheadFull => "bulkhead full",
            Self::Overloaded => "overloaded",
            Self::RetryBudgetExhausted => "retry budget exhausted",
            Self::NeverAdmissible => "request exceeds the quota",
            Self::CallerDeadline => "deadline exceeded",
            Self::MissingKey => "missing key",
            Self::BadRequest => "bad request",
        }
    }
}

impl Error {
    fn new(kind: Kind) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                layer: None,
                retry_after: None,
                rate_limit: None,
                source: None,
            }),
        }
    }

    /// A rate limiter refused the request; it may be admitted after `retry_after`.
    #[must_use]
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(Kind::RateLimited).with_retry_after(retry_after)
    }

    /// A circuit breaker is open and refused the request without calling the service.
    #[must_use]
    pub fn circuit_open() -> Self {
        Self::new(Kind::CircuitOpen)
    }

    /// A timeout or deadline expired before the service answered.
    #[must_use]
    pub fn timeout() -> Self {
        Self::new(Kind::Timeout)
    }

    /// A bulkhead had no permit free and no room (or no time) left to wait for one.
    #[must_use]
    pub fn bulkhead_full() -> Self {
        Self::new(Kind::BulkheadFull)
    }

    /// A load shedder or adaptive concurrency limit refused the request.
    #[must_use]
    pub fn overloaded() -> Self {
        Self::new(Kind::Overloaded)
    }

    /// A retry was due but the retry budget had no token for it.
    #[must_use]
    pub fn retry_budget_exhausted() -> Self {
        Self::new(Kind::RetryBudgetExhausted)
    }

    /// A request asked for more than the quota can ever admit (its cost exceeds the burst of a
    /// rate limit), so waiting would never help: it is refused with no `Retry-After`.
    ///
    /// Distinct from [`rate_limited`](Self::rate_limited) on purpose: a client told "429, retry
    /// after N" would retry forever. [`is_rate_limited`](Self::is_rate_limited) is `false` for it;
    /// HTTP maps it to 413 and gRPC to `RESOURCE_EXHAUSTED` without a pushback.
    #[must_use]
    pub fn never_admissible() -> Self {
        Self::new(Kind::NeverAdmissible)
    }

    /// The caller's own deadline ran out: before the request was sent, or while an attempt was
    /// cut short by the caller's remaining budget rather than by the layer's own timeout.
    ///
    /// It is a timeout ([`is_timeout`](Self::is_timeout) is `true`, so it still answers 504 or
    /// `DEADLINE_EXCEEDED`), but it says nothing about the upstream: breakers, retry budgets,
    /// adaptive limits and health checks never count it as the upstream's failure. Ask
    /// [`is_caller_deadline`](Self::is_caller_deadline).
    #[must_use]
    pub fn caller_deadline() -> Self {
        Self::new(Kind::CallerDeadline)
    }

    /// A keyed layer set to [`MissingKey::Reject`](crate::key::MissingKey::Reject) refused a request
    /// that carries no key (no API key, no tenant header). Nothing about load or quotas: HTTP maps
    /// it to 401 (see [`ErrorResponseLayer::missing_key_status`](crate::response::ErrorResponseLayer::missing_key_status))
    /// and gRPC to `UNAUTHENTICATED`, with no `Retry-After`; it is a
    /// [rejection](Self::is_rejection), never retried.
    #[must_use]
    pub fn missing_key() -> Self {
        Self::new(Kind::MissingKey)
    }

    /// A layer refused a request it cannot read: a malformed `x-timeout-ms` / `grpc-timeout`
    /// sent to a server-mode timeout set to reject it (weir-timeout's
    /// `reject_malformed_incoming`). The client's fault, nothing about load: HTTP maps it to
    /// 400 Bad Request and gRPC to `INVALID_ARGUMENT`, with no `Retry-After`; it is a
    /// [rejection](Self::is_rejection), never retried.
    #[must_use]
    pub fn bad_request() -> Self {
        Self::new(Kind::BadRequest)
    }

    /// Names the layer instance that raised the error (its configured name). An unnamed
    /// layer's name ([`Name::default`]) names nothing: the error reads "circuit open", not
    /// "circuit open by `default`", and [`layer`](Self::layer) is `None`.
    #[must_use]
    pub fn with_layer(mut self, layer: impl Into<Name>) -> Self {
        let layer = layer.into();
        self.inner.layer = (!layer.is_unnamed()).then_some(layer);
        self
    }

    /// Sets when the caller may try again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = Some(retry_after);
        self
    }

    /// Attaches the state of the rate-limit policy that refused the request, written out as the
    /// `RateLimit` / `RateLimit-Policy` header fields by the response mapping.
    #[must_use]
    pub fn with_rate_limit(mut self, info: RateLimitInfo) -> Self {
        self.inner.rate_limit = Some(info);
        self
    }

    /// Attaches the underlying cause, returned by [`source`](StdError::source).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// A rate limiter refused the request.
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        self.inner.kind == Kind::RateLimited
    }

    /// A circuit breaker was open.
    #[must_use]
    pub fn is_circuit_open(&self) -> bool {
        self.inner.kind == Kind::CircuitOpen
    }

    /// A timeout or deadline expired: the layer's own timeout, or the caller's deadline (see
    /// [`is_caller_deadline`](Self::is_caller_deadline)).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, Kind::Timeout | Kind::CallerDeadline)
    }

    /// The caller's own deadline ran out ([`caller_deadline`](Self::caller_deadline)): not a
    /// failure of the upstream, and never counted against it.
    #[must_use]
    pub fn is_caller_deadline(&self) -> bool {
        self.inner.kind == Kind::CallerDeadline
    }

    /// The request can never be admitted by the quota that refused it
    /// ([`never_admissible`](Self::never_admissible)); retrying it is pointless.
    #[must_use]
    pub fn is_never_admissible(&self) -> bool {
        self.inner.kind == Kind::NeverAdmissible
    }

    /// A bulkhead was full.
    #[must_use]
    pub fn is_bulkhead_full(&self) -> bool {
        self.inner.kind == Kind::BulkheadFull
    }

    /// A load shedder or adaptive limit refused the request.
    #[must_use]
    pub fn is_overloaded(&self) -> bool {
        self.inner.kind == Kind::Overloaded
    }

    /// The retry budget was exhausted.
    #[must_use]
    pub fn is_retry_budget_exhausted(&self) -> bool {
        self.inner.kind == Kind::RetryBudgetExhausted
    }

    /// The request was refused before it reached the protected service (rate limited, circuit
    /// open, bulkhead full, overloaded), as opposed to a timeout, which abandons a call under way.
    ///
    /// A rejection says nothing about the health of the service behind the layer, so weir's
    /// classifiers never count one as a transient failure worth retrying.
    #[must_use]
    pub fn is_rejection(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::RateLimited
                | Kind::CircuitOpen
                | Kind::BulkheadFull
                | Kind::Overloaded
                | Kind::NeverAdmissible
                | Kind::MissingKey
                | Kind::BadRequest
        )
    }

    /// Whether a keyed layer refused the request for carrying no key; see
    /// [`missing_key`](Self::missing_key).
    #[must_use]
    pub fn is_missing_key(&self) -> bool {
        self.inner.kind == Kind::MissingKey
    }

    /// Whether a layer refused the request as malformed; see [`bad_request`](Self::bad_request).
    #[must_use]
    pub fn is_bad_request(&self) -> bool {
        self.inner.kind == Kind::BadRequest
    }

    /// When the caller may try again, if the layer knows.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The configured name of the layer instance that raised the error; `None` for an unnamed
    /// layer.
    #[must_use]
    pub fn layer(&self) -> Option<&str> {
        self.inner.layer.as_ref().map(Name::as_str)
    }

    /// The state of the rate-limit policy that refused the request, if any.
    #[must_use]
    pub fn rate_limit(&self) -> Option<&RateLimitInfo> {
        self.inner.rate_limit.as_ref()
    }

    /// A short, stable, lowercase description of what happened, e.g. `"rate limited"`; suitable as
    /// a metric label or a response body.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.inner.kind.as_str()
    }

    /// Finds a weir [`Error`] in `err` or anywhere down its [`source`](StdError::source) chain.
    ///
    /// Works through any wrapping that reports its cause: a weir error boxed into a [`BoxError`],
    /// wrapped by another error that returns it from `source()`, and so on.
    #[must_use]
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Self> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<Self>() {
                return Some(found);
            }
            next = err.source();
        }
        None
    }

    /// Finds a weir [`Error`] in a value of any error type: a weir `Error` itself, a [`BoxError`]
    /// (searched down its source chain), or nothing for any other type.
    ///
    /// This is what classifiers use on a service's generic error type `E`, which need not
    /// implement [`std::error::Error`] (`BoxError` does not).
    #[must_use]
    pub fn find_in<E: 'static>(err: &E) -> Option<&Self> {
        let any: &dyn Any = err;
        if let Some(found) = any.downcast_ref::<Self>() {
            return Some(found);
        }
        if let Some(boxed) = any.downcast_ref::<BoxError>() {
            return Self::find(&**boxed);
        }
        if let Some(boxed) = any.downcast_ref::<Box<dyn StdError + Send + 'static>>() {
            return Self::find(&**boxed);
        }
        if let Some(boxed) = any.downcast_ref::<Box<dyn StdError + 'static>>() {
            return Self::find(&**boxed);
        }
        None
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("weir::Error");
        d.field("kind", &self.inner.kind);
        if let Some(layer) = &self.inner.layer {
            d.field("layer", &layer.as_str());
        }
        if let Some(retry_after) = &self.inner.retry_after {
            d.field("retry_after", retry_after);
        }
        if let Some(rate_limit) = &self.inner.rate_limit {
            d.field("rate_limit", rate_limit);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.as_str())?;
        if let Some(layer) = &self.inner.layer {
            write!(f, " by `{}`", layer.as_str())?;
        }
        if let Some(retry_after) = self.inner.retry_after {
            // Rounded up to the millisecond: "retry after 1.235s", not "1.234567891s" (and
            // never earlier than the layer said).
            let millis = retry_after.as_nanos().div_ceil(1_000_000);
            let rounded = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
            write!(f, ", retry after {rounded:?}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn each_constructor_answers_exactly_its_own_predicate() {
        let cases: [(Error, [bool; 6]); 6] = [
            (
                Error::rate_limited(Duration::from_secs(1)),
                [true, false, false, false, false, false],
            ),
            (
                Error::circuit_open(),
                [false, true, false, false, false, false],
            ),
            (Error::timeout(), [false, false, true, false, false, false]),
            (
                Error::bulkhead_full(),
                [false, false, false, true, false, false],
            ),
            (
                Error::overloaded(),
                [false, false, false, false, true, false],
            ),
            (
                Error::retry_budget_exhausted(),
                [false, false, false, false, false, true],
            ),
        ];
        for (err, expected) in cases {
            let got = [
                err.is_rate_limited(),
                err.is_circuit_open(),
                err.is_timeout(),
                err.is_bulkhead_full(),
                err.is_overloaded(),
                err.is_retry_budget_exhausted(),
            ];
            assert_eq!(got, expected, "{err:?}");
        }
    }

    #[test]
    fn a_caller_deadline_is_a_timeout_but_not_the_layers_own() {
        let err = Error::caller_deadline();
        assert!(err.is_timeout());
        assert!(err.is_caller_deadline());
        assert!(!err.is_rejection());
        assert!(!Error::timeout().is_caller_deadline());
        assert_eq!(err.to_string(), "deadline exceeded");
    }

    #[test]
    fn never_admissible_is_a_rejection_but_not_rate_limited() {
        let err = Error::never_admissible();
        assert!(err.is_never_admissible());
        assert!(err.is_rejection());
        assert!(!err.is_rate_limited());
        assert_eq!(err.retry_after(), None);
        assert!(!Error::rate_limited(Duration::ZERO).is_never_admissible());
    }

    #[test]
    fn rejections_are_the_refusals_not_timeouts() {
        assert!(Error::rate_limited(Duration::ZERO).is_rejection());
        assert!(Error::circuit_open().is_rejection());
        assert!(Error::bulkhead_full().is_rejection());
        assert!(Error::overloaded().is_rejection());
        assert!(!Error::timeout().is_rejection());
        assert!(!Error::retry_budget_exhausted().is_rejection());
    }

    #[test]
    fn finds_a_weir_error_two_levels_down_a_source_chain() {
        let weir: BoxError = Error::circuit_open().with_layer("payments").into();
        let outer: BoxError = Box::new(Wrapper(Box::new(Wrapper(weir))));
        let found = Error::find(&*outer).expect("found through two wrappers");
        assert!(found.is_circuit_open());
        assert_eq!(found.layer(), Some("payments"));
        assert!(Error::find_in(&outer).is_some_and(Error::is_circuit_open));
    }

    #[test]
    fn find_returns_none_for_foreign_errors() {
        let foreign: BoxError = "connection refused".into();
        assert!(Error::find(&*foreign).is_none());
        assert!(Error::find_in(&foreign).is_none());
        assert!(Error::find_in(&std::io::Error::other("x")).is_none());
    }

    #[test]
    fn find_in_sees_a_bare_weir_error() {
        let err = Error::timeout();
        assert!(Error::find_in(&err).is_some_and(Error::is_timeout));
    }

    #[test]
    fn source_is_the_attached_cause() {
        let err = Error::timeout().with_source(std::io::Error::other("slow upstream"));
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("slow upstream")
        );
        assert!(Error::overloaded().source().is_none());
    }

    /// #27.7: an unnamed layer is not called "default" in errors, and the wait reads in
    /// milliseconds.
    #[test]
    fn display_names_no_unnamed_layer_and_rounds_the_wait_to_the_millisecond() {
        let unnamed = Error::circuit_open().with_layer(Name::default());
        assert_eq!(unnamed.layer(), None);
        assert_eq!(unnamed.to_string(), "circuit open");
        let named = Error::circuit_open().with_layer("default");
        assert_eq!(named.layer(), Some("default"));
        assert_eq!(
            Error::rate_limited(Duration::from_nanos(1_234_567_891)).to_string(),
            "rate limited, retry after 1.235s"
        );
        assert_eq!(
            Error::bulkhead_full()
                .with_retry_after(Duration::from_nanos(1))
                .to_string(),
            "bulkhead full, retry after 1ms"
        );
    }

    #[test]
    fn display_names_the_layer_and_the_wait() {
        assert_eq!(Error::timeout().to_string(), "timed out");
        assert_eq!(
            Error::circuit_open()
                .with_layer("inventory")
                .with_retry_after(Duration::from_secs(30))
                .to_string(),
            "circuit open by `inventory`, retry after 30s"
        );
    }

    #[test]
    fn error_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
