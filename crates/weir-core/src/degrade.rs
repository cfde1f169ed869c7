//! Graceful degradation: how loaded a service is ([`LoadLevel`]), and the mark a degraded answer
//! carries ([`Degraded`]) so no layer outside mistakes it for a success.

use crate::Outcome;

/// How loaded the service is, for graceful degradation.
///
/// The load shedder (`weir-load-shed`'s `LoadLevelLayer`) puts it into each HTTP request's
/// extensions, so a handler can serve a cheaper answer and a fallback layer can send traffic to its
/// fallback before the primary is even called. Defined here, in the shared vocabulary, so the
/// layer that writes it and the layers that read it do not depend on each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoadLevel {
    /// Below the elevated threshold (70% of the limit in use by default).
    #[default]
    Normal,
    /// Busy: consider skipping optional work.
    Elevated,
    /// At or near the limit (90% by default): serve the cheapest answer you can.
    Critical,
}

impl LoadLevel {
    /// `"normal"`, `"elevated"` or `"critical"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Elevated => "elevated",
            Self::Critical => "critical",
        }
    }
}

/// The mark of a degraded answer: a response a fallback made (a default value, an alternative
/// service's answer, a stale copy) in place of the one the primary service failed to give.
///
/// A fallback layer inserts it into the `http::Response` extensions of every answer it makes.
/// [`HttpStatus`](crate::classify::HttpStatus) and [`GrpcStatus`](crate::classify::GrpcStatus) classify a response
/// carrying it by the [`outcome`](Self::outcome) it records, not by its status, so a circuit
/// breaker, a retry budget or a health check outside the fallback still sees the original failure
/// (or, for a request the fallback answered without calling the primary, nothing at all).
///
/// ```
/// use weir_core::{BoxError, Classify, Failure, Outcome};
/// use weir_core::classify::HttpStatus;
/// use weir_core::degrade::Degraded;
///
/// let mut answer = http::Response::new(());
/// answer.extensions_mut().insert(Degraded::new(Outcome::Failure(Failure::transient())));
/// let result: Result<_, BoxError> = Ok(answer);
/// assert!(HttpStatus::new().classify(&result).is_failure()); // a 200, but degraded
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Degraded {
    outcome: Outcome,
}

impl Degraded {
    /// Marks an answer made in place of a call whose outcome was `outcome`
    /// ([`Outcome::Ignored`] when the primary was not called).
    #[must_use]
    pub const fn new(outcome: Outcome) -> Self {
        Self { outcome }
    }

    /// The outcome of the call this answer stands in for.
    #[must_use]
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The outcome recorded on `response`, if a fallback made it.
    #[inline]
    #[must_use]
    pub fn of<B>(response: &http::Response<B>) -> Option<Outcome> {
        response
            .extensions()
            .get::<Self>()
            .map(|degraded| degraded.outcome)
    }
}
