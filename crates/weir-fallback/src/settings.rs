//! `LastGoodSettings`: the plain settings of the last good answer source, their defaults and
//! their rules. (The rest of a fallback layer is typed parts: the sources, the switch, the
//! classifier; no other plain setting exists but the name.)

use std::time::Duration;

use weir_core::ConfigError;

/// At most this many last good answers are kept, by default.
pub const DEFAULT_MAX_ENTRIES: usize = 1_024;
/// At most this many bytes of last good answers are kept, by default (16 MiB).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// A response whose body is larger than this is not kept, by default (256 KiB).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 256 * 1024;
/// A last good answer is served up to this long after it was stored, by default (5 minutes).
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(300);

/// The bounds of a [`LastGood`](crate::LastGood) store: what a configuration file can say
/// (deserializable with the `serde` feature; `max_stale` as `"5m"`). Hand one to
/// [`LastGood::settings`](crate::LastGood::settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct LastGoodSettings {
    /// At most this many entries (at least 1).
    pub max_entries: usize,
    /// At most this many bytes over every entry (at least 1).
    pub max_bytes: usize,
    /// A response whose body is larger than this is not kept (at most `max_bytes`).
    pub max_entry_bytes: usize,
    /// An entry is served up to this long after it was stored, never later (more than zero).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub max_stale: Duration,
}

impl Default for LastGoodSettings {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_stale: DEFAULT_MAX_STALE,
        }
    }
}

impl LastGoodSettings {
    /// Checks every rule; the error names the field as the [`LastGood`](crate::LastGood) method
    /// names it, under `last_good.`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries == 0 {
            return Err(ConfigError::zero(
                "fallback",
                "last_good.max_entries",
                "must be at least 1",
            ));
        }
        if self.max_bytes == 0 {
            return Err(ConfigError::zero(
                "fallback",
                "last_good.max_bytes",
                "must be at least 1",
            ));
        }
        if self.max_entry_bytes > self.max_bytes {
            return Err(ConfigError::conflict(
                "fallback",
                "last_good.max_entry_bytes",
                "must be at most `last_good.max_bytes`",
            ));
        }
        if self.max_stale.is_zero() {
            return Err(ConfigError::zero(
                "fallback",
                "last_good.max_stale",
                "must be more than zero",
            ));
        }
        Ok(())
    }
}

/// A duration written as weir's configuration files write them (`"5m"`).
#[cfg(feature = "serde")]
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_file_reads_the_bounds() {
        let settings: LastGoodSettings =
            toml::from_str("max_entries = 10\nmax_stale = \"30s\"").unwrap();
        assert_eq!(settings.max_entries, 10);
        assert_eq!(settings.max_stale, Duration::from_secs(30));
        assert_eq!(settings.max_bytes, DEFAULT_MAX_BYTES);
        assert!(settings.validate().is_ok());
        let settings: LastGoodSettings = toml::from_str("max_entries = 0").unwrap();
        let err = settings.validate().unwrap_err();
        assert!(
            err.is_zero() && err.field() == "last_good.max_entries",
            "{err}"
        );
    }
}
