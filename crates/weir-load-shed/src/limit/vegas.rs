//! Vegas: driven by delay, against the lowest round-trip time seen.

use std::time::Duration;

use weir_core::ConfigError;

use super::{ConfigLimit, Limit, Sample, clamp_limit, other_algorithm, whole};

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

    fn to_config(&self) -> Option<ConfigLimit> {
        Some(ConfigLimit::Vegas(self.clone()))
    }

    /// New bounds, smoothing and probe period; the estimate (and the limit a probe under way
    /// goes back to) is kept, clamped into the new bounds, and so is the no-load RTT.
    fn retune(&mut self, to: &ConfigLimit) -> Result<(), ConfigError> {
        let ConfigLimit::Vegas(to) = to else {
            return Err(other_algorithm());
        };
        self.min = to.min;
        self.max = to.max;
        self.smoothing = to.smoothing;
        self.probe_every = to.probe_every;
        self.limit = clamp_limit(self.limit, self.min, self.max);
        if let Some(probe) = &mut self.probe {
            probe.restore = clamp_limit(probe.restore, self.min, self.max);
        }
        Ok(())
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
