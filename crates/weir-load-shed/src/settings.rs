//! `LoadShedSettings`: the plain settings a [`LoadShedBuilder`](crate::LoadShedBuilder) holds,
//! their defaults and their rules.

use std::time::Duration;

use weir_core::{ConfigError, Name};

use crate::state::Priority;

/// The default fixed limit of calls in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100;

/// The default `Retry-After` a refusal carries.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The pattern name every load-shed [`ConfigError`] carries.
pub(crate) const PATTERN: &str = "load shed";

/// The plain settings of a load shedder: what a configuration file can say besides its limit
/// algorithm (deserializable with the `serde` feature, every field optional, durations as
/// `"50ms"`, an unknown field an error). The builder holds one and its methods set its fields;
/// [`LoadShedBuilder::settings`](crate::LoadShedBuilder::settings) takes a whole one. The limit
/// (fixed or adaptive), the priority classifier, the observer and the mode are the builder's
/// typed parts; a file gives the limit in a [`LoadShedConfig`](crate::LoadShedConfig) (feature
/// `serde`).
///
/// | field | type | default | builder method |
/// |---|---|---|---|
/// | `share` | table, `sheddable` / `normal` / `critical`, each in `(0, 1]`, rising | `0.5` / `1` / `1` | `share` |
/// | `levels` | table, `elevated_at` and `critical_at`, `0 < elevated_at <= critical_at <= 1` | `0.7` / `0.9` | `levels` |
/// | `max_ready_wait` | duration | none (wait for readiness) | `max_ready_wait` |
/// | `retry_after` | duration | `"1s"` | `retry_after` |
/// | `name` | string | `"default"` | `name` |
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct LoadShedSettings {
    /// The share of the limit each priority may use.
    pub share: Shares,
    /// The utilisations from which the load level is elevated and critical.
    pub levels: Levels,
    /// Shed by queue time: how long `poll_ready` waits for the inner service before it turns
    /// ready to refuse the next call. `None`: as long as it takes.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "optional_duration"))]
    pub max_ready_wait: Option<Duration>,
    /// The `Retry-After` every refusal carries (more than zero).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub retry_after: Duration,
    /// The layer's name in errors and events.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "name"))]
    pub name: Name,
}

/// The share of the limit requests of each [`Priority`] may use, each in `(0, 1]`, not falling
/// from sheddable to critical.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Shares {
    /// [`Priority::Sheddable`] (default 0.5).
    pub sheddable: f64,
    /// [`Priority::Normal`] (default 1).
    pub normal: f64,
    /// [`Priority::Critical`] (default 1).
    pub critical: f64,
}

/// The utilisations (calls in flight / limit) from which the load level is elevated, and from
/// which it is critical: `0 < elevated_at <= critical_at <= 1`. A file gives both.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct Levels {
    /// Elevated from this utilisation (default 0.7).
    pub elevated_at: f64,
    /// Critical from this utilisation (default 0.9).
    pub critical_at: f64,
}

impl Default for Shares {
    fn default() -> Self {
        Self {
            sheddable: 0.5,
            normal: 1.0,
            critical: 1.0,
        }
    }
}

impl Shares {
    /// The shares indexed by [`Priority::index`]: sheddable, normal, critical.
    pub(crate) const fn to_array(self) -> [f64; 3] {
        [self.sheddable, self.normal, self.critical]
    }

    /// Sets the share of `priority`.
    pub(crate) const fn set(&mut self, priority: Priority, share: f64) {
        match priority {
            Priority::Sheddable => self.sheddable = share,
            Priority::Normal => self.normal = share,
            Priority::Critical => self.critical = share,
        }
    }
}

impl Default for Levels {
    fn default() -> Self {
        Self {
            elevated_at: 0.7,
            critical_at: 0.9,
        }
    }
}

impl Default for LoadShedSettings {
    fn default() -> Self {
        Self {
            share: Shares::default(),
            levels: Levels::default(),
            max_ready_wait: None,
            retry_after: DEFAULT_RETRY_AFTER,
            name: Name::default(),
        }
    }
}

impl LoadShedSettings {
    /// Checks every rule; the error names the field as the builder method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let share = &self.share;
        for (value, field) in [
            (share.sheddable, "share.sheddable"),
            (share.normal, "share.normal"),
            (share.critical, "share.critical"),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(ConfigError::out_of_range(
                    PATTERN,
                    field,
                    "must be above 0 and at most 1",
                ));
            }
        }
        if !(share.sheddable <= share.normal && share.normal <= share.critical) {
            return Err(ConfigError::out_of_range(
                PATTERN,
                "share",
                "each must be at least the one below it (sheddable <= normal <= critical)",
            ));
        }
        let levels = &self.levels;
        if !(levels.elevated_at > 0.0
            && levels.elevated_at <= levels.critical_at
            && levels.critical_at <= 1.0)
        {
            return Err(ConfigError::out_of_range(
                PATTERN,
                "levels",
                "must satisfy 0 < elevated_at <= critical_at <= 1",
            ));
        }
        if self.retry_after.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "retry_after",
                "must be more than zero",
            ));
        }
        if self.max_ready_wait.is_some_and(|max| max.is_zero()) {
            return Err(ConfigError::zero(
                PATTERN,
                "max_ready_wait",
                "must be more than zero (leave it unset to wait for readiness)",
            ));
        }
        Ok(())
    }
}

/// A duration written as weir's configuration files write them (`"50ms"`).
#[cfg(feature = "serde")]
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

/// An optional duration (`"50ms"`).
#[cfg(feature = "serde")]
pub(crate) fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// A name, from a string.
#[cfg(feature = "serde")]
pub(crate) fn name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
    <String as serde::Deserialize>::deserialize(deserializer).map(Name::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_its_field() {
        let with = |f: fn(&mut LoadShedSettings)| {
            let mut s = LoadShedSettings::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        let err = with(|s| s.share.normal = 0.0);
        assert!(
            err.is_out_of_range() && err.field() == "share.normal",
            "{err}"
        );
        let err = with(|s| s.share.critical = 1.5);
        assert_eq!(err.field(), "share.critical");
        let err = with(|s| {
            s.share.sheddable = 0.9;
            s.share.normal = 0.8;
        });
        assert_eq!(err.field(), "share");
        let err = with(|s| s.levels.elevated_at = 0.95);
        assert_eq!(err.field(), "levels");
        let err = with(|s| s.retry_after = Duration::ZERO);
        assert!(err.is_zero() && err.field() == "retry_after");
        let err = with(|s| s.max_ready_wait = Some(Duration::ZERO));
        assert!(err.is_zero() && err.field() == "max_ready_wait");
        assert_eq!(
            with(|s| s.share.sheddable = 0.0).to_string(),
            "load shed: `share.sheddable` must be above 0 and at most 1"
        );
        assert!(LoadShedSettings::default().validate().is_ok());
    }
}
