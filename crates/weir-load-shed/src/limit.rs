//! The concurrency limit: fixed, or adaptive (AIMD, Vegas, Gradient2). Each algorithm is pure:
//! it is fed one [`Sample`] per finished call and answers the new limit; no clock, no runtime.

use std::time::Duration;

/// How one admitted call ended, as a limit algorithm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// How long the call took, from admission to its response (to the end of the response
    /// body in [`Http`](weir_core::protocol::Http) mode).
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

mod aimd;
mod gradient2;
#[cfg(test)]
mod tests;
mod vegas;

pub use self::aimd::Aimd;
pub use self::gradient2::Gradient2;
pub use self::vegas::Vegas;
