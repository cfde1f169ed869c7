//! `CheckSettings`: the plain settings of one registered check, their defaults and their rules.

use std::time::Duration;

use weir_core::ConfigError;

/// The default timeout of a check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default caching period of a check.
pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(1);
/// Unhealthy results in a row before a check reads Unhealthy, by default.
pub const DEFAULT_UNHEALTHY_AFTER: u32 = 1;
/// Good results in a row before an unhealthy check reads good again, by default.
pub const DEFAULT_HEALTHY_AFTER: u32 = 1;

/// The plain settings of one check: what a configuration file can say (deserializable with the
/// `serde` feature; durations as `"5s"`). A [`Registration`](crate::Registration) holds one and
/// its methods set its fields; [`Registration::settings`](crate::Registration::settings) takes
/// a whole one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct CheckSettings {
    /// A run past this is abandoned and reads Unhealthy, "timed out" (more than zero).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub timeout: Duration,
    /// A result is reused for this long after its run ended (zero: no caching beyond sharing a
    /// run in flight).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub cache_for: Duration,
    /// Unhealthy results in a row before the check reads Unhealthy (at least 1).
    pub unhealthy_after: u32,
    /// Results in a row that are not unhealthy before an unhealthy check reads good again (at
    /// least 1).
    pub healthy_after: u32,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            cache_for: DEFAULT_CACHE_FOR,
            unhealthy_after: DEFAULT_UNHEALTHY_AFTER,
            healthy_after: DEFAULT_HEALTHY_AFTER,
        }
    }
}

impl CheckSettings {
    /// Checks every rule; the error names the field as the
    /// [`Registration`](crate::Registration) method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::zero(
                "health",
                "timeout",
                "must be more than zero",
            ));
        }
        if self.unhealthy_after == 0 {
            return Err(ConfigError::zero(
                "health",
                "unhealthy_after",
                "must be at least 1",
            ));
        }
        if self.healthy_after == 0 {
            return Err(ConfigError::zero(
                "health",
                "healthy_after",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A duration written as weir's configuration files write them (`"5s"`).
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
        let settings: CheckSettings =
            toml::from_str("timeout = \"250ms\"\nunhealthy_after = 3").unwrap();
        assert_eq!(settings.timeout, Duration::from_millis(250));
        assert_eq!(settings.unhealthy_after, 3);
        assert_eq!(settings.cache_for, DEFAULT_CACHE_FOR);
        assert!(settings.validate().is_ok());
        let settings: CheckSettings = toml::from_str("healthy_after = 0").unwrap();
        let err = settings.validate().unwrap_err();
        assert!(err.is_zero() && err.field() == "healthy_after", "{err}");
    }
}
