//! A circuit breaker's state as a check (feature `circuit-breaker`).

use std::future::{Future, ready};
use std::time::Duration;

use weir_circuit_breaker::{CircuitBreakerHandle, State};

use crate::check::HealthCheck;
use crate::status::Health;

/// A circuit breaker as a check, through its handle: register it under the readiness tag.
///
/// - closed (or forced closed, disabled, metrics only): healthy;
/// - open or forced open: unhealthy when the dependency is [`critical`](Self::critical) (the
///   service is not ready without it), degraded when it is [`optional`](Self::optional);
/// - half-open, or open with its open time over: degraded. A breaker moves to half-open on
///   the next call only; if that made readiness fail, no call would come (the instance gets
///   no traffic) and the breaker would never close again.
#[derive(Clone, Debug)]
pub struct BreakerCheck {
    handle: CircuitBreakerHandle,
    critical: bool,
}

impl BreakerCheck {
    /// A breaker in front of a dependency the service cannot work without.
    #[must_use]
    pub const fn critical(handle: CircuitBreakerHandle) -> Self {
        Self {
            handle,
            critical: true,
        }
    }

    /// A breaker in front of a dependency the service can work without (degraded).
    #[must_use]
    pub const fn optional(handle: CircuitBreakerHandle) -> Self {
        Self {
            handle,
            critical: false,
        }
    }

    fn health(&self) -> Health {
        let open = |reason: &'static str| {
            if self.critical {
                Health::unhealthy(reason)
            } else {
                Health::degraded(reason)
            }
        };
        match self.handle.state() {
            State::Open => {
                let snapshot = self.handle.snapshot();
                if snapshot
                    .open_remaining()
                    .is_none_or(|r| r == Duration::ZERO)
                {
                    Health::degraded("circuit open time over: the next call probes")
                } else {
                    open("circuit open")
                }
            }
            State::ForcedOpen => open("circuit forced open"),
            State::HalfOpen => Health::degraded("circuit half-open"),
            _ => Health::healthy(),
        }
    }
}

impl HealthCheck for BreakerCheck {
    fn check(&self) -> impl Future<Output = Health> + Send {
        ready(self.health())
    }
}
