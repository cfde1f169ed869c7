//! A bulkhead near saturation as a check (feature `bulkhead`).

use std::future::{Future, ready};

use weir_bulkhead::BulkheadHandle;

use crate::check::HealthCheck;
use crate::status::Health;

/// A bulkhead as a check, through its handle: degraded when its permits in use reach a share of
/// its maximum (90 % by default) or requests are queued; never unhealthy (a full bulkhead is
/// doing its job: failing readiness for it would move the load onto the other instances and
/// saturate them in turn).
#[derive(Clone, Debug)]
pub struct BulkheadCheck {
    handle: BulkheadHandle,
    percent: u8,
}

impl BulkheadCheck {
    /// Degraded from 90 % of the permits in use.
    #[must_use]
    pub const fn new(handle: BulkheadHandle) -> Self {
        Self {
            handle,
            percent: 90,
        }
    }

    /// Degraded from `percent` of the permits in use (clamped to 1..=100).
    #[must_use]
    pub fn degraded_at(mut self, percent: u8) -> Self {
        self.percent = percent.clamp(1, 100);
        self
    }

    fn health(&self) -> Health {
        let stats = self.handle.stats();
        let used = stats.in_flight.saturating_mul(100);
        let saturated = used
            >= stats
                .max_concurrent
                .saturating_mul(usize::from(self.percent));
        if saturated || stats.queued > 0 {
            // Allocates the details once per run of the check, only when degraded.
            Health::degraded("bulkhead near saturation").with_details(format!(
                "{} of {} in use, {} queued",
                stats.in_flight, stats.max_concurrent, stats.queued
            ))
        } else {
            Health::healthy()
        }
    }
}

impl HealthCheck for BulkheadCheck {
    fn check(&self) -> impl Future<Output = Health> + Send {
        ready(self.health())
    }
}
