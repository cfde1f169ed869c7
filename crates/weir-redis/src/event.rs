//! [`Event`]: what the Redis store tells its observer.

use std::time::Duration;

use weir_core::observer::Fields;
use weir_core::{Level, Name};

use crate::policy::FailurePolicy;

/// Why a decision did not come from Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The call took longer than the configured timeout.
    Timeout,
    /// Redis answered with an error, or could not be reached.
    Error,
    /// Redis failed recently: until the next probe the store does not ask it.
    Degraded,
}

impl Reason {
    /// The reason in `snake_case`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::Degraded => "degraded",
        }
    }
}

/// An event of the Redis store.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// One decision was made without Redis, by the failure policy.
    Fallback {
        /// The store's name.
        store: &'a Name,
        /// The policy that decided.
        policy: FailurePolicy,
        /// Why Redis was not used.
        reason: Reason,
        /// The digest of the limiter key, as written in the Redis key name (32 hex digits), or
        /// `"shared"` for key-less requests: the same on every instance, so logs of a fleet
        /// can be joined on it without the client's key being written anywhere.
        key: &'a str,
        /// The key's Cluster slot (`None` on one server).
        slot: Option<u16>,
    },
    /// Redis answered again after an outage. On a Cluster the outages are per slot, and the
    /// recoveries are coalesced: one event at most once a second (and one when the last slot
    /// in an outage is back) for every slot that came back since the last event.
    Recovered {
        /// The store's name.
        store: &'a Name,
        /// The longest of the outages that ended, from the first failure to the first answer.
        outage: Duration,
        /// How many slots came back since the last event (1 on one server).
        slots: u64,
    },
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "redis"
    }

    fn kind(&self) -> &'static str {
        match self {
            // One kind per policy: `weir_core::observer::Metrics` counts fallback decisions by policy.
            Self::Fallback { policy, .. } => match policy {
                FailurePolicy::FailOpen => "fallback_fail_open",
                FailurePolicy::FailClosed => "fallback_fail_closed",
                FailurePolicy::Local | FailurePolicy::LocalShare(_) => "fallback_local",
            },
            Self::Recovered { .. } => "recovered",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Fallback { store, .. } | Self::Recovered { store, .. } => store,
        }
    }

    /// A fallback is `warn` (Redis unreachable: a backend an operator must look at), the
    /// recovery `info`.
    fn level(&self) -> Level {
        match self {
            Self::Fallback { .. } => Level::Warn,
            Self::Recovered { .. } => Level::Info,
        }
    }

    /// A fallback: why Redis did not answer as `reason` (`timeout`, `error`, `degraded`).
    fn fields(&self) -> Fields {
        match self {
            Self::Fallback { reason, .. } => Fields::NONE.reason(reason.as_str()),
            Self::Recovered { .. } => Fields::NONE,
        }
    }
}
