//! The concurrency limit: fixed, or adaptive (AIMD, Vegas, Gradient2). Each algorithm is pure:
//! it is fed one [`Sample`] per finished call and answers the new limit; no clock, no runtime.

use std::time::Duration;

use weir_core::ConfigError;

use crate::settings::PATTERN;

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

    /// This algorithm and its parameters as a [`ConfigLimit`], for a running layer's
    /// [`settings`](weir_core::reconfigure::Reconfigure::settings); `None` (the default) for
    /// an algorithm that is none of the crate's.
    fn to_config(&self) -> Option<ConfigLimit> {
        None
    }

    /// Takes new parameters while the layer runs (issue #25), keeping what it has learnt: the
    /// current estimate is clamped into the new bounds, not reset to `initial` (which only says
    /// where a new layer starts). The crate's algorithms take their own kind; the default
    /// refuses every change.
    ///
    /// # Errors
    ///
    /// A conflict naming `limit` when `to` is another algorithm (a layer's algorithm is chosen
    /// when it is built, except a [`ConfigLimit`]'s) or this algorithm takes no new parameters.
    fn retune(&mut self, to: &ConfigLimit) -> Result<(), ConfigError> {
        let _ = to;
        Err(other_algorithm())
    }
}

/// The refusal of a new limit of another algorithm than the running one.
pub(crate) fn other_algorithm() -> ConfigError {
    ConfigError::conflict(
        PATTERN,
        "limit",
        "is the algorithm the layer was built with: another one needs a new layer \
         (or a layer built with a `ConfigLimit`)",
    )
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

    fn to_config(&self) -> Option<ConfigLimit> {
        Some(ConfigLimit::Fixed(*self))
    }

    /// A new fixed limit: the calls in flight above it finish, no new one is admitted above it.
    fn retune(&mut self, to: &ConfigLimit) -> Result<(), ConfigError> {
        let ConfigLimit::Fixed(fixed) = to else {
            return Err(other_algorithm());
        };
        *self = *fixed;
        Ok(())
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
mod choice;
mod gradient2;
#[cfg(test)]
mod tests;
mod vegas;

pub use self::aimd::Aimd;
pub use self::choice::ConfigLimit;
pub use self::gradient2::Gradient2;
pub use self::vegas::Vegas;
