//! Gradient2: driven by delay, a long average round-trip time against a short one.

use weir_core::ConfigError;

use super::{ConfigLimit, Limit, Sample, clamp_limit, other_algorithm, whole};

/// How much of each short average the long one takes while the limit sits at its floor.
const AT_FLOOR_CATCH_UP: f64 = 0.2;

/// Gradient2, driven by delay: it compares a long-term average RTT with the short-term one,
/// `gradient = clamp(tolerance * long / short, 0.5, 1)`, and moves the limit towards
/// `limit * gradient (+ queue when nothing is queueing)`, smoothed.
///
/// Defaults (Netflix concurrency-limits): initial 20, min 20, max 200, smoothing 0.2, queue 4,
/// long window 600 samples, tolerance 1.5; the short RTT is an average over 10 samples.
///
/// Known failure modes fixed (netflix/concurrency-limits #134, #137, #176):
/// - the queue allowance is added only when the gradient is 1 (no sign of queueing), so a steady
///   modest overload (gradient about 0.8) shrinks the limit instead of growing it without bound;
/// - a drop (timeout) multiplies the limit by 0.9 and its RTT is never averaged, so constant
///   timeouts shrink the limit to its floor instead of growing it to the ceiling, and near-zero
///   latency drops do not pass for fast successes;
/// - no growth while the application leaves the limit mostly unused, but shrinking still
///   happens then, so an overshoot can come down (Netflix ignores such samples altogether);
/// - the long average (the baseline) rises only while the limit sits at its floor, so a steady
///   overload cannot raise the baseline, and the tolerated latency with it, until the limit has
///   grown without bound (#134); at the floor it catches up within a few short windows (a fifth
///   of the gap per window), so a lasting latency increase is learnt in seconds, not minutes; it
///   falls freely, and decays towards the short average when it is more than twice it, so a
///   lasting latency change is learnt both ways;
/// - the limit never leaves `[min, max]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient2 {
    limit: f64,
    min: usize,
    max: usize,
    smoothing: f64,
    queue: f64,
    tolerance: f64,
    long_window: u32,
    long_rtt: Option<f64>,
    long_samples: u32,
    short_window: u32,
    short_sum: f64,
    short_samples: u32,
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Gradient2 {
    /// The defaults: initial 20, min 20, max 200, smoothing 0.2, queue 4, long window 600,
    /// tolerance 1.5, short window 10.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            limit: 20.0,
            min: 20,
            max: 200,
            smoothing: 0.2,
            queue: 4.0,
            tolerance: 1.5,
            long_window: 600,
            long_rtt: None,
            long_samples: 0,
            short_window: 10,
            short_sum: 0.0,
            short_samples: 0,
        }
    }

    /// The limit to start from (kept within `[min, max]`).
    #[must_use]
    pub fn initial(mut self, limit: usize) -> Self {
        self.limit = clamp_limit(limit as f64, self.min, self.max);
        self
    }

    /// The floor and the ceiling of the limit.
    #[must_use]
    pub fn bounds(mut self, min: usize, max: usize) -> Self {
        self.min = min.max(1);
        self.max = max.max(self.min);
        self.limit = clamp_limit(self.limit, self.min, self.max);
        self
    }

    /// How much of each new estimate is taken, in `(0, 1]`.
    #[must_use]
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = if smoothing.is_nan() {
            0.2
        } else {
            smoothing.clamp(0.01, 1.0)
        };
        self
    }

    /// How much slower than the long-term RTT the short-term one may be before the limit
    /// shrinks (at least 1).
    #[must_use]
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = if tolerance.is_nan() {
            1.5
        } else {
            tolerance.max(1.0)
        };
        self
    }

    /// The calls allowed to queue on top of the limit while nothing queues.
    #[must_use]
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue as f64;
        self
    }

    /// Samples in the short-term average (at least 1).
    #[must_use]
    pub fn short_window(mut self, samples: u32) -> Self {
        self.short_window = samples.max(1);
        self
    }

    /// Samples the long-term average spans (at least 1).
    #[must_use]
    pub fn long_window(mut self, samples: u32) -> Self {
        self.long_window = samples.max(1);
        self
    }
}

impl Limit for Gradient2 {
    fn limit(&self) -> usize {
        whole(self.limit)
    }

    fn update(&mut self, sample: Sample) -> usize {
        if sample.dropped {
            self.limit = clamp_limit(self.limit * 0.9, self.min, self.max);
            return self.limit();
        }
        self.short_sum += sample.rtt.as_secs_f64();
        self.short_samples += 1;
        if self.short_samples < self.short_window {
            return self.limit();
        }
        let short = (self.short_sum / f64::from(self.short_samples)).max(1e-9);
        self.short_sum = 0.0;
        self.short_samples = 0;

        // The long average: a plain mean while warming up, then exponential over the window;
        // upwards only while the limit sits at its floor. Netflix's lets it follow the short
        // average up at any time, so under steady overload the baseline creeps up, the tolerated
        // latency with it, and the limit grows without bound (#134).
        let at_floor = whole(self.limit) <= self.min;
        let long = match self.long_rtt {
            None => short,
            Some(long) if self.long_samples < 10 => {
                (long * f64::from(self.long_samples) + short) / f64::from(self.long_samples + 1)
            }
            Some(long) if short < long => {
                let factor = 2.0 / (f64::from(self.long_window) + 1.0);
                long * (1.0 - factor) + short * factor
            }
            // At the floor the RTT is as unloaded as this limiter can make it: a slower service
            // is learnt within a few short windows, not hundreds (#16.7: with a floor of 1 and
            // the long window's own pace, a lasting 5x latency step kept the limit at 1 for
            // over two minutes).
            Some(long) if at_floor => {
                let factor = (2.0 / (f64::from(self.long_window) + 1.0)).max(AT_FLOOR_CATCH_UP);
                long * (1.0 - factor) + short * factor
            }
            Some(long) => long,
        };
        self.long_samples = self.long_samples.saturating_add(1);
        // A lasting change: let the long average catch up rather than pin the limit down.
        let long = if long / short > 2.0 {
            long * 0.95
        } else {
            long
        };
        self.long_rtt = Some(long);

        // Application-limited: no growth while the limit is mostly unused (shrinking still
        // happens, so an overshoot comes down).
        let app_limited = (sample.in_flight as f64) < self.limit / 2.0;
        let gradient = (self.tolerance * long / short).clamp(0.5, 1.0);
        if app_limited && gradient >= 1.0 {
            return self.limit();
        }
        let queue = if gradient >= 1.0 { self.queue } else { 0.0 };
        let next = self.limit * gradient + queue;
        self.limit = clamp_limit(
            self.limit * (1.0 - self.smoothing) + next * self.smoothing,
            self.min,
            self.max,
        );
        self.limit()
    }

    fn to_config(&self) -> Option<ConfigLimit> {
        Some(ConfigLimit::Gradient2(self.clone()))
    }

    /// New bounds, smoothing, queue, tolerance and windows; the estimate is kept, clamped into
    /// the new bounds, and so are the RTT averages learnt so far.
    fn retune(&mut self, to: &ConfigLimit) -> Result<(), ConfigError> {
        let ConfigLimit::Gradient2(to) = to else {
            return Err(other_algorithm());
        };
        self.min = to.min;
        self.max = to.max;
        self.smoothing = to.smoothing;
        self.queue = to.queue;
        self.tolerance = to.tolerance;
        self.long_window = to.long_window;
        self.short_window = to.short_window;
        self.limit = clamp_limit(self.limit, self.min, self.max);
        Ok(())
    }
}
