//! AIMD: additive increase, multiplicative decrease, driven by loss.

use std::time::Duration;

use weir_core::ConfigError;

use super::{ConfigLimit, Limit, Sample, clamp_limit, other_algorithm, whole};

/// Additive increase, multiplicative decrease, driven by loss: a drop (or a call slower than
/// `timeout`) multiplies the limit by `backoff` (0.9); a success while the limit is in use
/// (`in_flight * 2 >= limit`) adds 1. The loss-based limit Netflix recommends for clients.
///
/// Defaults (Netflix concurrency-limits): initial 20, min 20, max 200, backoff 0.9, timeout 5 s.
///
/// Known failure modes handled: it never grows while the application leaves it mostly unused (no
/// unbounded growth when traffic is light), a constant timeout counts as a drop every time (so
/// it shrinks, never grows), and it never goes below `min` or above `max`.
#[derive(Clone, Debug, PartialEq)]
pub struct Aimd {
    limit: f64,
    min: usize,
    max: usize,
    backoff: f64,
    timeout: Duration,
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new()
    }
}

impl Aimd {
    /// The defaults: initial 20, min 20, max 200, backoff 0.9, timeout 5 s.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            limit: 20.0,
            min: 20,
            max: 200,
            backoff: 0.9,
            timeout: Duration::from_secs(5),
        }
    }

    /// The limit to start from (kept within `[min, max]`).
    #[must_use]
    pub fn initial(mut self, limit: usize) -> Self {
        self.limit = clamp_limit(limit as f64, self.min, self.max);
        self
    }

    /// The floor and the ceiling of the limit (`min` at least 1, `max` at least `min`).
    #[must_use]
    pub fn bounds(mut self, min: usize, max: usize) -> Self {
        self.min = min.max(1);
        self.max = max.max(self.min);
        self.limit = clamp_limit(self.limit, self.min, self.max);
        self
    }

    /// The factor a drop multiplies the limit by, in `[0.5, 1)` (others are clamped into it).
    #[must_use]
    pub fn backoff(mut self, ratio: f64) -> Self {
        self.backoff = if ratio.is_nan() {
            0.9
        } else {
            ratio.clamp(0.5, 0.99)
        };
        self
    }

    /// A call slower than this counts as a drop.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Limit for Aimd {
    fn limit(&self) -> usize {
        whole(self.limit)
    }

    fn update(&mut self, sample: Sample) -> usize {
        if sample.dropped || sample.rtt > self.timeout {
            self.limit = clamp_limit(self.limit * self.backoff, self.min, self.max);
        } else if sample.in_flight.saturating_mul(2) >= whole(self.limit) {
            self.limit = clamp_limit(self.limit + 1.0, self.min, self.max);
        }
        self.limit()
    }

    fn to_config(&self) -> Option<ConfigLimit> {
        Some(ConfigLimit::Aimd(self.clone()))
    }

    /// New bounds, backoff and timeout; the estimate is kept, clamped into the new bounds.
    fn retune(&mut self, to: &ConfigLimit) -> Result<(), ConfigError> {
        let ConfigLimit::Aimd(to) = to else {
            return Err(other_algorithm());
        };
        self.min = to.min;
        self.max = to.max;
        self.backoff = to.backoff;
        self.timeout = to.timeout;
        self.limit = clamp_limit(self.limit, self.min, self.max);
        Ok(())
    }
}
