//! The concurrency limit: fixed, or adaptive (AIMD, Vegas, Gradient2). Each algorithm is pure:
//! it is fed one [`Sample`] per finished call and answers the new limit; no clock, no runtime.

use std::time::Duration;

/// How one admitted call ended, as a limit algorithm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// How long the call took, from admission to its response (to the end of the response
    /// body in [`Http`](crate::Http) mode).
    pub rtt: Duration,
    /// Calls in flight when it finished (itself included).
    pub in_flight: usize,
    /// It ended in a drop: a timeout or an overload refusal from further down, the loss signal.
    pub dropped: bool,
}

impl Sample {
    /// A call that succeeded after `rtt`, with `in_flight` calls in flight.
    #[must_use]
    pub const fn success(rtt: Duration, in_flight: usize) -> Self {
        Self {
            rtt,
            in_flight,
            dropped: false,
        }
    }

    /// A call that was dropped (timed out, refused downstream) after `rtt`.
    #[must_use]
    pub const fn dropped(rtt: Duration, in_flight: usize) -> Self {
        Self {
            rtt,
            in_flight,
            dropped: true,
        }
    }
}

/// A concurrency-limit algorithm: pure, fed by the load shedder under a short lock (adaptive
/// algorithms only; [`Fixed`] is never locked).
///
/// Calls that end neither in a success nor in a drop (cancelled, or failed with an error that
/// says nothing about load) are *ignored*: they never reach the algorithm.
pub trait Limit: Send + 'static {
    /// Whether samples change the limit; `false` skips sampling (and its lock) entirely.
    const ADAPTIVE: bool = true;

    /// The limit now.
    fn limit(&self) -> usize;

    /// Takes one finished call into account and returns the new limit.
    fn update(&mut self, sample: Sample) -> usize;
}

/// A fixed limit: samples are not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed(usize);

impl Fixed {
    /// A limit of `limit` calls in flight (at least 1).
    #[must_use]
    pub const fn new(limit: usize) -> Self {
        Self(if limit == 0 { 1 } else { limit })
    }
}

impl Limit for Fixed {
    const ADAPTIVE: bool = false;

    fn limit(&self) -> usize {
        self.0
    }

    fn update(&mut self, _sample: Sample) -> usize {
        self.0
    }
}

/// Keeps `value` within `[min, max]` and at least 1.
pub(crate) fn clamp_limit(value: f64, min: usize, max: usize) -> f64 {
    value.clamp(min.max(1) as f64, max.max(min).max(1) as f64)
}

/// Rounds a fractional limit down to whole calls, never below 1.
pub(crate) fn whole(value: f64) -> usize {
    if value.is_finite() && value >= 1.0 {
        // `as` saturates: a huge value becomes usize::MAX, never a panic.
        value as usize
    } else {
        1
    }
}

// ---------------------------------------------------------------------------------------------
// AIMD
// ---------------------------------------------------------------------------------------------

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
}

// ---------------------------------------------------------------------------------------------
// Vegas
// ---------------------------------------------------------------------------------------------

/// TCP Vegas applied to concurrency, driven by delay: it estimates the queue behind the service
/// as `limit * (1 - rtt_noload / rtt)` and grows while that queue is short (`< 3 log10 limit`),
/// shrinks when it is long (`> 6 log10 limit`) and on every drop.
///
/// Defaults (Netflix concurrency-limits): initial 20, min 1, max 1000, smoothing 1.0;
/// `rtt_noload` (the lowest RTT seen) is re-measured every `probe_every` samples (default
/// 30 x limit, no jitter: weir's algorithms are deterministic): when the whole window stayed
/// above it, the limit is halved for about two round trips and the lowest RTT of calls that ran
/// at that concurrency becomes the estimate (as TCP BBR's ProbeRTT), so a lasting latency
/// increase is learnt rather than read as a queue forever.
///
/// Known failure modes handled: `log10` of a small limit is taken as at least 1 (a limit of 1 can
/// still grow); it increases at most once per round trip (about `limit` samples), so the samples
/// of calls admitted before an increase do not each count as room to grow; a probe never takes a
/// loaded RTT as the new no-load RTT (the estimate rises only while the limit sits at its floor),
/// so a saturated service does not look idle; no growth while the limit is mostly unused (but a long queue still
/// shrinks it then, so an overshoot comes down); drops shrink it whatever
/// their RTT (a near-zero-latency drop is not taken as a fast success); it stays within
/// `[min, max]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vegas {
    limit: f64,
    min: usize,
    max: usize,
    smoothing: f64,
    rtt_noload: Option<Duration>,
    window_min: Option<Duration>,
    probe_every: Option<u64>,
    samples: u64,
    since_increase: u64,
    /// A re-measurement of the no-load RTT under way (see [`Vegas::update`]).
    probe: Option<Probe>,
}

/// Vegas's re-measurement of its no-load RTT (as TCP BBR's ProbeRTT): the limit is halved for
/// about two round trips and the lowest RTT seen at that concurrency becomes the estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Probe {
    /// The limit to go back to.
    restore: f64,
    /// Samples left to skip (calls admitted before the limit was halved) and then to measure.
    skip: u64,
    measure: u64,
    /// The lowest RTT measured at the halved limit.
    lowest: Option<Duration>,
}

impl Default for Vegas {
    fn default() -> Self {
        Self::new()
    }
}

/// `log10(limit)`, at least 1.
fn lg(limit: f64) -> f64 {
    limit.log10().max(1.0)
}

impl Vegas {
    /// The defaults: initial 20, min 1, max 1000, smoothing 1.0.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            limit: 20.0,
            min: 1,
            max: 1000,
            smoothing: 1.0,
            rtt_noload: None,
            window_min: None,
            probe_every: None,
            samples: 0,
            since_increase: 0,
            probe: None,
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

    /// How much of each new estimate is taken, in `(0, 1]` (others are clamped into it).
    #[must_use]
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = if smoothing.is_nan() {
            1.0
        } else {
            smoothing.clamp(0.01, 1.0)
        };
        self
    }

    /// Re-measure the no-load RTT every `samples` samples (default 30 x the limit).
    #[must_use]
    pub const fn probe_every(mut self, samples: u64) -> Self {
        self.probe_every = Some(if samples == 0 { 1 } else { samples });
        self
    }

    /// The no-load RTT estimate: the lowest RTT seen; at each probe, while the limit sits at its
    /// floor, the lowest RTT of the last window.
    #[must_use]
    pub const fn rtt_noload(&self) -> Option<Duration> {
        self.rtt_noload
    }
}

impl Limit for Vegas {
    fn limit(&self) -> usize {
        whole(self.limit)
    }

    fn update(&mut self, sample: Sample) -> usize {
        if self.probe.is_some() {
            return self.probing(sample);
        }
        let limit = self.limit;
        if sample.dropped {
            let next = limit - lg(limit);
            self.limit = clamp_limit(
                limit * (1.0 - self.smoothing) + next * self.smoothing,
                self.min,
                self.max,
            );
            return self.limit();
        }
        let rtt = sample.rtt.max(Duration::from_nanos(1));
        self.samples += 1;
        self.window_min = Some(self.window_min.map_or(rtt, |min| min.min(rtt)));
        let probe_every = self
            .probe_every
            .unwrap_or_else(|| 30 * whole(limit).max(1) as u64);
        let noload = match self.rtt_noload {
            None => {
                self.rtt_noload = Some(rtt);
                return self.limit();
            }
            Some(noload) if rtt < noload => {
                self.rtt_noload = Some(rtt);
                rtt
            }
            Some(noload) => noload,
        };
        if self.samples >= probe_every {
            // The probe: the no-load RTT may rise to the lowest RTT of the window only while the
            // limit sits at its floor, where the RTT is as unloaded as this limiter can make it.
            // Netflix resets it to the next sample whatever the load: under load that is a
            // loaded RTT, the queue then looks empty and the limit climbs to the ceiling.
            let window_min = self.window_min.take().unwrap_or(noload);
            self.samples = 0;
            if whole(limit) <= self.min {
                self.rtt_noload = Some(window_min);
            } else if window_min > noload {
                // The whole window stayed above the no-load RTT: the service may have become
                // slower for good (a lasting latency step would otherwise pin the limit low:
                // every RTT looks like a queue). Re-measure at half the concurrency, where a
                // real queue drains and a slower service stays slow (#16.7).
                self.start_probe();
                return self.limit();
            }
        }
        // Application-limited: with the limit mostly unused, a short queue says nothing about
        // room to grow; a long one still means shrink (an overshoot must be able to come down).
        let app_limited = (sample.in_flight as f64) * 2.0 < limit;
        let queue = (limit * (1.0 - noload.as_secs_f64() / rtt.as_secs_f64())).ceil();
        let (log, alpha, beta) = (lg(limit), 3.0 * lg(limit), 6.0 * lg(limit));
        let next = if queue <= log && !app_limited {
            limit + beta
        } else if queue < alpha && !app_limited {
            limit + log
        } else if queue > beta {
            limit - log
        } else {
            return self.limit();
        };
        // At most one increase per round trip (about `limit` samples): the samples completing
        // right after an increase were admitted before it and cannot show its effect yet;
        // counting each of them as room to grow overshoots by the whole pipeline.
        self.since_increase += 1;
        if next > limit {
            if self.since_increase < whole(limit) as u64 {
                return self.limit();
            }
            self.since_increase = 0;
        }
        self.limit = clamp_limit(
            limit * (1.0 - self.smoothing) + next * self.smoothing,
            self.min,
            self.max,
        );
        self.limit()
    }
}

impl Vegas {
    /// Halves the limit to re-measure the no-load RTT.
    fn start_probe(&mut self) {
        let restore = self.limit;
        self.limit = clamp_limit((restore / 2.0).floor(), self.min, self.max);
        let round_trip = whole(restore).max(1) as u64;
        self.probe = Some(Probe {
            restore,
            skip: round_trip,
            measure: round_trip,
            lowest: None,
        });
    }

    /// A sample during a probe: the calls admitted before the limit was halved are skipped, then
    /// the lowest RTT of calls that ran at the halved concurrency is taken. A drop ends the probe
    /// and shrinks the restored limit, as it would have.
    fn probing(&mut self, sample: Sample) -> usize {
        let Some(mut probe) = self.probe.take() else {
            return self.limit();
        };
        if sample.dropped {
            let restore = probe.restore;
            self.limit = clamp_limit(restore - self.smoothing * lg(restore), self.min, self.max);
            return self.limit();
        }
        if probe.skip > 0 {
            probe.skip -= 1;
        } else {
            if sample.in_flight <= whole(self.limit) {
                let rtt = sample.rtt.max(Duration::from_nanos(1));
                probe.lowest = Some(probe.lowest.map_or(rtt, |lowest| lowest.min(rtt)));
            }
            probe.measure = probe.measure.saturating_sub(1);
            if probe.measure == 0 {
                if let Some(lowest) = probe.lowest {
                    self.rtt_noload = Some(lowest);
                }
                self.limit = probe.restore;
                self.since_increase = 0;
                return self.limit();
            }
        }
        self.probe = Some(probe);
        self.limit()
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient2
// ---------------------------------------------------------------------------------------------

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fixed_never_moves() {
        let mut fixed = Fixed::new(7);
        assert_eq!(fixed.update(Sample::dropped(ms(1), 7)), 7);
        assert_eq!(Fixed::new(0).limit(), 1);
    }

    #[test]
    fn aimd_adds_one_when_busy_and_backs_off_on_a_drop() {
        let mut aimd = Aimd::new().bounds(5, 50).initial(10);
        assert_eq!(
            aimd.update(Sample::success(ms(10), 2)),
            10,
            "app-limited: no growth"
        );
        assert_eq!(aimd.update(Sample::success(ms(10), 5)), 11);
        assert_eq!(aimd.update(Sample::success(ms(10), 11)), 12);
        assert_eq!(aimd.update(Sample::dropped(ms(10), 12)), 10); // 12 * 0.9 = 10.8
        assert_eq!(aimd.update(Sample::success(Duration::from_secs(6), 10)), 9);
    }

    #[test]
    fn aimd_stays_within_its_bounds() {
        let mut aimd = Aimd::new().bounds(5, 8).initial(8);
        for _ in 0..100 {
            aimd.update(Sample::dropped(ms(1), 8));
        }
        assert_eq!(aimd.limit(), 5);
        for _ in 0..100 {
            aimd.update(Sample::success(ms(1), 8));
        }
        assert_eq!(aimd.limit(), 8);
    }

    #[test]
    fn vegas_grows_without_queueing_and_shrinks_with_it() {
        let mut vegas = Vegas::new().initial(10).probe_every(1_000_000);
        vegas.update(Sample::success(ms(10), 10)); // the no-load RTT
        assert_eq!(vegas.rtt_noload(), Some(ms(10)));
        // No queueing: +6 log10 (at least 6), once per round trip (10 samples at a limit of 10).
        for _ in 0..9 {
            assert_eq!(vegas.update(Sample::success(ms(10), 10)), 10);
        }
        assert_eq!(vegas.update(Sample::success(ms(10), 10)), 16);
        // RTT doubled: queue = 16 * 0.5 = 8 > beta (6 log10 16 = 7.2): -log10 16 = 14.8.
        assert_eq!(vegas.update(Sample::success(ms(20), 16)), 14);
        // A drop: -log10 14.8 = 13.6.
        assert_eq!(vegas.update(Sample::dropped(ms(0), 14)), 13);
        // App-limited: no growth...
        assert_eq!(vegas.update(Sample::success(ms(10), 2)), 13);
        // ...but a long queue still shrinks it.
        assert_eq!(vegas.update(Sample::success(ms(40), 2)), 12);
    }

    #[test]
    fn vegas_probes_a_new_noload_rtt_only_at_its_floor() {
        let feed = |vegas: &mut Vegas| {
            for _ in 0..3 {
                vegas.update(Sample::success(ms(10), 10));
            }
            // A window of loaded RTTs.
            for _ in 0..3 {
                vegas.update(Sample::success(ms(40), 100));
            }
        };
        // Well above its floor: a loaded window is not taken as the no-load RTT.
        let mut busy = Vegas::new().bounds(10, 1000).initial(50).probe_every(3);
        feed(&mut busy);
        assert_eq!(busy.rtt_noload(), Some(ms(10)));
        // At its floor and still slow: the service itself got slower; learn it.
        let mut floored = Vegas::new().bounds(10, 1000).initial(10).probe_every(3);
        feed(&mut floored);
        assert_eq!(floored.limit(), 10);
        assert_eq!(floored.rtt_noload(), Some(ms(40)));
        // A lower RTT is taken at once.
        floored.update(Sample::success(ms(8), 10));
        assert_eq!(floored.rtt_noload(), Some(ms(8)));
    }

    #[test]
    fn gradient2_shrinks_under_modest_overload_instead_of_growing() {
        // Netflix #134: with gradient about 0.8 the original grows by the queue term for small
        // limits. Here the short RTT is 1.9x the long one: gradient = 1.5 / 1.9 = 0.79.
        let mut g = Gradient2::new().bounds(1, 200).initial(10).short_window(1);
        for _ in 0..20 {
            g.update(Sample::success(ms(10), 10));
        }
        let before = g.limit();
        for _ in 0..50 {
            g.update(Sample::success(ms(19), 100));
        }
        assert!(g.limit() < before, "{} !< {before}", g.limit());
    }

    #[test]
    fn gradient2_under_constant_timeouts_falls_to_its_floor() {
        let mut g = Gradient2::new().bounds(5, 200).initial(100);
        for _ in 0..200 {
            g.update(Sample::dropped(Duration::from_secs(1), 100));
        }
        assert_eq!(g.limit(), 5);
    }

    #[test]
    fn gradient2_grows_by_the_queue_when_latency_is_flat() {
        let mut g = Gradient2::new().bounds(1, 200).initial(20).short_window(1);
        for _ in 0..300 {
            g.update(Sample::success(ms(10), 1000));
        }
        assert_eq!(
            g.limit(),
            200,
            "flat latency under load: grows to the ceiling"
        );
        let mut idle = Gradient2::new().bounds(1, 200).initial(20).short_window(1);
        for _ in 0..100 {
            idle.update(Sample::success(ms(10), 3));
        }
        assert_eq!(idle.limit(), 20, "app-limited: no growth");
    }

    proptest! {
        #[test]
        fn every_algorithm_stays_within_its_bounds(
            min in 1_usize..50,
            extra in 0_usize..200,
            samples in proptest::collection::vec((0_u64..5_000, 0_usize..1_000, any::<bool>()), 1..300),
        ) {
            let max = min + extra;
            let mut aimd = Aimd::new().bounds(min, max);
            let mut vegas = Vegas::new().bounds(min, max);
            let mut gradient = Gradient2::new().bounds(min, max).short_window(3);
            for (rtt, in_flight, dropped) in samples {
                let sample = Sample { rtt: ms(rtt), in_flight, dropped };
                for limit in [aimd.update(sample), vegas.update(sample), gradient.update(sample)] {
                    prop_assert!((min..=max).contains(&limit), "{} not in {}..={}", limit, min, max);
                }
            }
        }
    }
}
