//! A Redis store's connection as a check (feature `redis`).

use std::future::{Future, ready};

use weir_redis::RedisHandle;

use crate::check::HealthCheck;
use crate::status::Health;

/// A rate limiter's Redis store as a check, through its handle: while the store is in an
/// outage (Redis failed and has not answered since) its failure policy decides in Redis's
/// place, so the service still works: degraded by default, unhealthy when made
/// [`critical`](Self::critical). Healthy otherwise. It reads the store's own state (no round
/// trip to Redis): an outage is seen by the store's next request or probe.
#[derive(Clone, Debug)]
pub struct RedisCheck {
    handle: RedisHandle,
    critical: bool,
}

impl RedisCheck {
    /// Degraded while the store is in an outage.
    #[must_use]
    pub const fn new(handle: RedisHandle) -> Self {
        Self {
            handle,
            critical: false,
        }
    }

    /// Unhealthy, not degraded, while the store is in an outage (the shared limit matters
    /// more than serving).
    #[must_use]
    pub const fn critical(mut self) -> Self {
        self.critical = true;
        self
    }

    fn health(&self) -> Health {
        if !self.handle.is_degraded() {
            return Health::healthy();
        }
        let reason = "redis unreachable: the failure policy decides";
        let health = if self.critical {
            Health::unhealthy(reason)
        } else {
            Health::degraded(reason)
        };
        // Allocates once per run of the check, only during an outage.
        health.with_details(format!(
            "{} errors, {} fallbacks",
            self.handle.errors(),
            self.handle.fallbacks()
        ))
    }
}

impl HealthCheck for RedisCheck {
    fn check(&self) -> impl Future<Output = Health> + Send {
        ready(self.health())
    }
}
