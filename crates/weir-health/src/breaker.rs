//! A circuit breaker's state as a check (feature `circuit-breaker`).

use std::future::{Future, ready};
use std::time::Duration;

use weir_circuit_breaker::{CircuitBreakerHandle, KeyedCircuitBreakerHandle, Snapshot, State};

use crate::check::HealthCheck;
use crate::status::{Health, Status};

/// A circuit breaker as a check, through its handle: register it under the readiness tag.
///
/// - closed (or forced closed, disabled, metrics only): healthy;
/// - open or forced open: unhealthy when the dependency is [`critical`](Self::critical) (the
///   service is not ready without it), degraded when it is [`optional`](Self::optional);
/// - half-open, or open with its open time over: degraded. A breaker moves to half-open on
///   the next call only; if that made readiness fail, no call would come (the instance gets
///   no traffic) and the breaker would never close again.
///
/// A keyed breaker (one breaker per upstream: [`critical_keyed`](Self::critical_keyed),
/// [`optional_keyed`](Self::optional_keyed)) reads as its worst key, and the reason names that
/// key.
#[derive(Clone, Debug)]
pub struct BreakerCheck {
    handle: Handle,
    critical: bool,
}

#[derive(Clone, Debug)]
enum Handle {
    One(CircuitBreakerHandle),
    Keyed(KeyedCircuitBreakerHandle),
}

impl BreakerCheck {
    /// A breaker in front of a dependency the service cannot work without.
    #[must_use]
    pub const fn critical(handle: CircuitBreakerHandle) -> Self {
        Self {
            handle: Handle::One(handle),
            critical: true,
        }
    }

    /// A breaker in front of a dependency the service can work without (degraded).
    #[must_use]
    pub const fn optional(handle: CircuitBreakerHandle) -> Self {
        Self {
            handle: Handle::One(handle),
            critical: false,
        }
    }

    /// The breakers of a keyed layer (one per upstream), each in front of a dependency the
    /// service cannot work without: one open breaker makes the service not ready.
    #[must_use]
    pub const fn critical_keyed(handle: KeyedCircuitBreakerHandle) -> Self {
        Self {
            handle: Handle::Keyed(handle),
            critical: true,
        }
    }

    /// The breakers of a keyed layer, each in front of a dependency the service can work
    /// without: one open breaker makes the service degraded.
    #[must_use]
    pub const fn optional_keyed(handle: KeyedCircuitBreakerHandle) -> Self {
        Self {
            handle: Handle::Keyed(handle),
            critical: false,
        }
    }

    /// What one breaker's snapshot says.
    fn health_of(&self, snapshot: &Snapshot) -> Health {
        let open = |reason: &'static str| {
            if self.critical {
                Health::unhealthy(reason)
            } else {
                Health::degraded(reason)
            }
        };
        match snapshot.state() {
            State::Open => {
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

    fn health(&self) -> Health {
        match &self.handle {
            Handle::One(handle) => self.health_of(&handle.snapshot()),
            Handle::Keyed(handle) => {
                // The worst key; only a key that is not healthy costs a formatted reason.
                let mut worst: Option<Health> = None;
                handle.for_each(|key, snapshot| {
                    let health = self.health_of(&snapshot);
                    if health.status() > worst.as_ref().map_or(Status::Healthy, Health::status) {
                        let reason = health.reason().unwrap_or_default();
                        worst = Some(Health::new(health.status(), format!("{key:?}: {reason}")));
                    }
                });
                worst.unwrap_or_else(Health::healthy)
            }
        }
    }
}

impl HealthCheck for BreakerCheck {
    fn check(&self) -> impl Future<Output = Health> + Send {
        ready(self.health())
    }
}
