//! `CircuitBreakerSettings`: the plain settings a
//! [`CircuitBreakerBuilder`](crate::CircuitBreakerBuilder) holds, their defaults and their
//! rules.

use std::time::Duration;

use weir_core::{ConfigError, Name, backoff::Backoff};

use crate::state::{Settings, WindowKind, ppm};

/// The largest count window: its counters keep ample headroom for concurrent recorders.
pub(crate) const MAX_COUNT_WINDOW: u32 = 1_000_000;
/// The most buckets a time window may have.
pub(crate) const MAX_BUCKETS: u32 = 1_000;

/// The pattern name every circuit breaker [`ConfigError`] carries (kept in `state`, which refuses
/// a ninth window shape with it, below this module).
pub(crate) use crate::state::PATTERN;

/// `field` must be a percentage above 0 and at most 100 (`what` says which part of it).
fn percentage(field: &'static str, what: &str, percent: f64) -> ConfigError {
    ConfigError::out_of_range(
        PATTERN,
        field,
        format!("{what}must be a percentage above 0 and at most 100, got {percent}"),
    )
}

/// A count of at least 1 was zero.
pub(crate) fn at_least_one(field: &'static str) -> ConfigError {
    ConfigError::zero(PATTERN, field, "must be at least 1")
}

/// Every plain setting of one breaker (what is not a type: the classifier and the observer are
/// the builder's typed parts). The builder holds one, so a method that changes a type parameter
/// moves it in one line; `CircuitBreakerLayer::new` builds from [`DEFAULT`](Self::DEFAULT).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CircuitBreakerSettings {
    pub(crate) name: Name,
    pub(crate) window: WindowKind,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_calls: Option<(Duration, f64)>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) minimum_calls: u32,
    pub(crate) open: Backoff,
    pub(crate) probes: u32,
    pub(crate) max_half_open: Duration,
    pub(crate) seed: Option<u64>,
    pub(crate) backpressure: bool,
}

impl CircuitBreakerSettings {
    /// The defaults (Resilience4j's, with a shorter open time): a failure rate of 50 % over the
    /// last 100 calls, at least 100 calls, open for 5 s, 3 probes, a 30 s half-open wait,
    /// rejecting at once.
    pub(crate) const DEFAULT: Self = Self {
        name: Name::new("circuit_breaker"),
        window: WindowKind::Count(100),
        failure_rate: Some(50.0),
        slow_calls: None,
        consecutive_failures: None,
        minimum_calls: 100,
        open: Backoff::constant(Duration::from_secs(5)),
        probes: 3,
        max_half_open: Duration::from_secs(30),
        seed: None,
        backpressure: false,
    };

    /// Checks every rule and gives the algorithm's settings.
    ///
    /// # Errors
    ///
    /// The first rule broken, naming its field as the builder method names it.
    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        match self.window {
            WindowKind::Count(n) if n == 0 || n > MAX_COUNT_WINDOW => {
                return Err(if n == 0 {
                    ConfigError::zero(
                        PATTERN,
                        "count_window",
                        "must hold 1 to 1000000 calls, got 0",
                    )
                } else {
                    ConfigError::out_of_range(
                        PATTERN,
                        "count_window",
                        format!("must hold 1 to {MAX_COUNT_WINDOW} calls, got {n}"),
                    )
                });
            }
            WindowKind::Time { buckets, .. } if buckets == 0 || buckets > MAX_BUCKETS => {
                return Err(ConfigError::out_of_range(
                    PATTERN,
                    "time_window",
                    format!("must have 1 to {MAX_BUCKETS} buckets, got {buckets}"),
                ));
            }
            WindowKind::Time { size, buckets } if size / buckets < Duration::from_millis(1) => {
                return Err(ConfigError::out_of_range(
                    PATTERN,
                    "time_window",
                    format!("buckets must be at least 1 ms long, got a window of {size:?}"),
                ));
            }
            _ => {}
        }
        let rate = |percent: f64| percent > 0.0 && percent <= 100.0;
        if let Some(percent) = self.failure_rate
            && !rate(percent)
        {
            return Err(percentage("failure_rate", "", percent));
        }
        if let Some((threshold, percent)) = self.slow_calls {
            if threshold.is_zero() {
                return Err(ConfigError::zero(
                    PATTERN,
                    "slow_calls",
                    "threshold must be above zero",
                ));
            }
            if !rate(percent) {
                return Err(percentage("slow_calls", "rate ", percent));
            }
        }
        if self.consecutive_failures == Some(0) {
            return Err(at_least_one("consecutive_failures"));
        }
        if self.minimum_calls == 0 {
            return Err(at_least_one("minimum_calls"));
        }
        if self.open.base().is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "open_duration",
                "(the open time, or open_backoff's base) must be above zero",
            ));
        }
        if self.probes == 0 {
            return Err(at_least_one("half_open_probes"));
        }
        if self.max_half_open.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "max_half_open_wait",
                "must be above zero",
            ));
        }
        Ok(Settings {
            window: self.window,
            failure_rate: self.failure_rate.map(ppm),
            slow_rate: self.slow_calls.map(|(_, percent)| ppm(percent)),
            consecutive_failures: self.consecutive_failures,
            minimum_calls: self.minimum_calls,
            open: self.open,
            probes: self.probes,
            max_half_open: self.max_half_open,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CircuitBreakerLayer::new` relies on it: the defaults keep every rule, and they are the
    /// documented ones.
    #[test]
    fn the_defaults_keep_every_rule() {
        let settings = CircuitBreakerSettings::DEFAULT.validate().expect("valid");
        assert_eq!(settings.window, WindowKind::Count(100));
        assert_eq!(settings.failure_rate, Some(ppm(50.0)));
        assert_eq!(settings.minimum_calls, 100);
        assert_eq!(settings.probes, 3);
        assert_eq!(settings.max_half_open, Duration::from_secs(30));

        let mut zero = CircuitBreakerSettings::DEFAULT;
        zero.probes = 0;
        let err = zero.validate().unwrap_err();
        assert!(err.is_zero() && err.field() == "half_open_probes", "{err}");
    }
}
