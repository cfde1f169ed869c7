//! `HedgeSettings`: the plain settings a [`HedgeBuilder`](crate::HedgeBuilder) holds, their
//! defaults and their rules.

use std::time::Duration;

use weir_core::ConfigError;

/// Attempts per request by default: the primary and one hedge.
pub const DEFAULT_MAX_ATTEMPTS: usize = 2;
/// The most attempts a request may make, the primary included (gRFC A6 caps `maxAttempts` at 5).
pub const MAX_ATTEMPTS: usize = 5;
/// The fixed hedging delay by default.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(50);
/// The percentile trigger's window by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Latencies the percentile trigger needs before it hedges at all, by default.
pub const DEFAULT_MIN_SAMPLES: u32 = 100;
/// The percentile trigger's floor by default.
pub const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(1);
/// The default hedge budget's ratio of hedges to requests (`HedgeBudget::default()`).
pub const DEFAULT_BUDGET_RATIO: f64 = 0.1;
/// The default hedge budget's floor, in hedges per second.
pub const DEFAULT_BUDGET_MIN_PER_SECOND: u32 = 1;
/// The default hedge budget's burst.
pub const DEFAULT_BUDGET_BURST: u32 = 10;

/// The plain settings of a hedge layer: what a configuration file can say (deserializable with
/// the `serde` feature; durations as `"20ms"`). The builder holds one and its methods set its
/// fields; [`HedgeBuilder::settings`](crate::HedgeBuilder::settings) takes a whole one.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct HedgeSettings {
    /// Attempts per request, the primary included: 1 to [`MAX_ATTEMPTS`].
    pub max_attempts: usize,
    /// The fixed delay before each hedge (zero: parallel mode); unused with a `percentile`.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub delay: Duration,
    /// The percentile trigger, which replaces the fixed delay.
    pub percentile: Option<PercentileSettings>,
}

/// The latency-percentile trigger's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct PercentileSettings {
    /// The percentile of recent primary latencies after which a hedge goes (p95: `95.0`),
    /// within `(0, 100)`.
    #[cfg_attr(feature = "serde", serde(alias = "latency_percentile"))]
    pub percentile: f64,
    /// The rotating window (100 ms to 1 h): the percentile reads this window and the one before.
    #[cfg_attr(feature = "serde", serde(default = "default_window"))]
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub window: Duration,
    /// Latencies needed before the trigger hedges at all (at least 1).
    #[cfg_attr(feature = "serde", serde(default = "default_min_samples"))]
    pub min_samples: u32,
    /// The trigger never waits less than this.
    #[cfg_attr(feature = "serde", serde(default = "default_min_delay"))]
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub min_delay: Duration,
}

impl Default for HedgeSettings {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            delay: DEFAULT_DELAY,
            percentile: None,
        }
    }
}

impl PercentileSettings {
    /// The trigger at `percentile` with the default window, minimum samples and floor.
    #[must_use]
    pub const fn new(percentile: f64) -> Self {
        Self {
            percentile,
            window: DEFAULT_WINDOW,
            min_samples: DEFAULT_MIN_SAMPLES,
            min_delay: DEFAULT_MIN_DELAY,
        }
    }
}

impl HedgeSettings {
    /// The default settings with a fixed `delay`.
    #[must_use]
    pub const fn with_delay(delay: Duration) -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            delay,
            percentile: None,
        }
    }

    /// Checks every rule; the error names the field as the builder method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const ATTEMPTS: &str = "must be within 1..=5 (it counts the primary; gRFC A6 caps it at 5)";
        if self.max_attempts == 0 {
            return Err(ConfigError::zero("hedge", "max_attempts", ATTEMPTS));
        }
        if self.max_attempts > MAX_ATTEMPTS {
            return Err(ConfigError::out_of_range("hedge", "max_attempts", ATTEMPTS));
        }
        if let Some(spec) = &self.percentile {
            if !(spec.percentile.is_finite() && spec.percentile > 0.0 && spec.percentile < 100.0) {
                return Err(ConfigError::out_of_range(
                    "hedge",
                    "latency_percentile",
                    "must be within (0, 100)",
                ));
            }
            if spec.window < Duration::from_millis(100) || spec.window > Duration::from_secs(3600) {
                return Err(ConfigError::out_of_range(
                    "hedge",
                    "window",
                    "must be within 100 ms..=1 h",
                ));
            }
            if spec.min_samples == 0 {
                return Err(ConfigError::zero(
                    "hedge",
                    "min_samples",
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
const fn default_window() -> Duration {
    DEFAULT_WINDOW
}

#[cfg(feature = "serde")]
const fn default_min_samples() -> u32 {
    DEFAULT_MIN_SAMPLES
}

#[cfg(feature = "serde")]
const fn default_min_delay() -> Duration {
    DEFAULT_MIN_DELAY
}

/// A duration written as weir's configuration files write them (`"20ms"`).
#[cfg(feature = "serde")]
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_file_reads_the_settings() {
        let settings: HedgeSettings = toml::from_str(
            r#"
            max_attempts = 3
            delay = "20ms"
            [percentile]
            percentile = 95.0
            window = "5s"
            "#,
        )
        .unwrap();
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(settings.delay, Duration::from_millis(20));
        let spec = settings.percentile.unwrap();
        assert_eq!(spec.window, Duration::from_secs(5));
        assert_eq!(spec.min_samples, DEFAULT_MIN_SAMPLES);
        assert!(settings.validate().is_ok());

        let settings: HedgeSettings = toml::from_str("max_attempts = 9").unwrap();
        let err = settings.validate().unwrap_err();
        assert!(
            err.is_out_of_range() && err.field() == "max_attempts",
            "{err}"
        );
    }
}
