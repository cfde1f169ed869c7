//! What a check says: a status, a reason and optional details.

use std::borrow::Cow;
use std::fmt;

/// How healthy something is. Ordered from best to worst, so the worst of several is their
/// `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Working as it should.
    Healthy,
    /// Working, but not fully (an optional dependency is down, a pool is near saturation).
    /// Probes still answer 200.
    Degraded,
    /// Not working: probes answer 503.
    Unhealthy,
}

impl Status {
    /// The status as the IETF health-check draft spells it: `pass`, `warn` or `fail`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "pass",
            Self::Degraded => "warn",
            Self::Unhealthy => "fail",
        }
    }

    /// `true` unless [`Unhealthy`](Self::Unhealthy): a degraded service still takes traffic.
    #[must_use]
    pub const fn is_up(self) -> bool {
        !matches!(self, Self::Unhealthy)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one run of a check: a [`Status`], a reason (why it is not healthy) and
/// optional details. Static strings cost no allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    status: Status,
    reason: Option<Cow<'static, str>>,
    details: Option<Cow<'static, str>>,
}

impl Health {
    /// Healthy, with no reason.
    #[must_use]
    pub const fn healthy() -> Self {
        Self {
            status: Status::Healthy,
            reason: None,
            details: None,
        }
    }

    /// Degraded, for `reason`.
    #[must_use]
    pub fn degraded(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Degraded, reason)
    }

    /// Unhealthy, for `reason`.
    #[must_use]
    pub fn unhealthy(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Unhealthy, reason)
    }

    /// Any status, for `reason`.
    #[must_use]
    pub fn new(status: Status, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: Some(reason.into()),
            details: None,
        }
    }

    /// Adds details (free text: counts, addresses); shown only in verbose answers.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<Cow<'static, str>>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// The status.
    #[must_use]
    pub const fn status(&self) -> Status {
        self.status
    }

    /// Why, when a reason was given.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The details, when given.
    #[must_use]
    pub fn details(&self) -> Option<&str> {
        self.details.as_deref()
    }
}
