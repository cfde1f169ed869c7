//! [`FailurePolicy`]: what a decision is when Redis is unreachable or slow.

/// What the store decides when Redis does not answer within the timeout.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit every request (availability first; the limit is not enforced during the outage).
    FailOpen,
    /// Refuse every request with a rate-limit error whose retry-after is the probe interval.
    FailClosed,
    /// Decide locally, in this instance's memory (weir-rate-limit's `MemoryStore`, same
    /// algorithm), with `share` (in `(0, 1]`) of every quota's rate and burst (at least 1): with
    /// `n` instances, `1 / n` keeps the fleet near the global limit.
    Local(f64),
}

impl FailurePolicy {
    /// The policy in `snake_case`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::Local(_) => "local",
        }
    }
}
