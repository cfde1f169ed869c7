//! The classification vocabulary: `Classify`, `Outcome`, `Failure` (at the crate root).

use crate::wire::ServerHint;

/// Decides what a service's result means for resilience: a success, a failure (and whether it is
/// worth retrying), or neither.
///
/// The circuit breaker, retry, hedging, fallback, health and metrics layers all take the same
/// classifier, so one decision ("a 503 is a transient failure, a 404 is not a failure of the
/// server") holds across a whole stack. Every layer defaults to [`AnyError`](crate::classify::AnyError), so no turbofish is
/// needed; [`HttpStatus`](crate::classify::HttpStatus) and [`GrpcStatus`](crate::classify::GrpcStatus) read responses; any
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
