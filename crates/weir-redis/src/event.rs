//! [`Event`]: what the Redis store tells its observer.

use std::time::Duration;

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
    },
    /// Redis answered again after an outage (on a Cluster: one slot's node did, for that
    /// slot; a node coming back sends one per slot that had failed).
    Recovered {
        /// The store's name.
        store: &'a Name,
        /// How long the outage lasted, from the first failure to the first answer.
        outage: Duration,
    },
}

impl weir_core::Event for Event<'_> {
    fn pattern(&self) -> &'static str {
        "redis"
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Fallback { .. } => "fallback",
            Self::Recovered { .. } => "recovered",
        }
    }

    fn layer(&self) -> &Name {
        match self {
            Self::Fallback { store, .. } | Self::Recovered { store, .. } => store,
        }
    }

    fn level(&self) -> Level {
        match self {
            Self::Fallback { .. } => Level::Warn,
            Self::Recovered { .. } => Level::Info,
        }
    }
}
