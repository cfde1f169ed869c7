//! `BulkheadSettings`: the plain settings a [`BulkheadBuilder`](crate::BulkheadBuilder) holds,
//! their defaults and their rules.

use std::time::Duration;

use weir_core::{ConfigError, Name};

/// The default maximum of concurrent calls.
pub const DEFAULT_MAX_CONCURRENT: usize = 100;

/// The default `Retry-After` a rejection carries.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The most permits a bulkhead may have.
pub const MAX_PERMITS: usize = usize::MAX >> 4;

/// The pattern name every bulkhead [`ConfigError`] carries.
pub(crate) const PATTERN: &str = "bulkhead";

/// The plain settings of a bulkhead: what a configuration file can say (deserializable with the
/// `serde` feature, every field optional, durations as `"250ms"`, an unknown field an error).
/// The builder holds one and its methods set its fields;
/// [`BulkheadBuilder::settings`](crate::BulkheadBuilder::settings) takes a whole one.
///
/// | field | type | default | builder method |
/// |---|---|---|---|
/// | `max_concurrent` | integer, 1 to [`MAX_PERMITS`] | 100 | `max_concurrent` |
/// | `max_queue` | integer | 0 (refuse at once) | `max_queue` |
/// | `max_wait` | duration, needs `max_queue` | none (until the deadline) | `max_wait` |
/// | `retry_after` | duration | `"1s"` | `retry_after` |
/// | `backpressure` | boolean | `false` | `backpressure` (wait in `poll_ready`; no queue) |
/// | `release_at_head` | boolean, HTTP mode only | `false` | `release_at_head` |
/// | `name` | string | `"default"` | `name` |
///
/// **HTTP mode is chosen in code**, because it changes the layer's response type (the permit
/// rides in the body): `BulkheadLayer::builder().settings(s).http()`. `release_at_head = true`
/// outside HTTP mode is refused by `build()`, not ignored.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use weir_bulkhead::{BulkheadLayer, BulkheadSettings};
///
/// let settings: BulkheadSettings = toml::from_str(r#"
///     max_concurrent = 64
///     max_queue = 128
///     max_wait = "250ms"
///     name = "api"
/// "#).unwrap();
/// let (layer, handle) = BulkheadLayer::builder().settings(settings).build_with_handle().unwrap();
/// assert_eq!(handle.stats().max_concurrent, 64);
/// # let _ = layer;
///
/// let settings: BulkheadSettings = toml::from_str(r#"max_wait = "1s""#).unwrap();
/// let err = settings.validate().unwrap_err();
/// assert_eq!(err.to_string(), "bulkhead: `max_wait` needs a queue: set `max_queue` above zero");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BulkheadSettings {
    /// The most calls in flight at once: 1 to [`MAX_PERMITS`].
    pub max_concurrent: usize,
    /// How many requests may wait for a permit, in arrival order (0: refuse at once).
    pub max_queue: usize,
    /// The longest a queued request waits (needs `max_queue`; more than zero). `None`: until a
    /// permit comes or, in HTTP mode, the request's deadline.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "optional_duration"))]
    pub max_wait: Option<Duration>,
    /// The `Retry-After` every rejection carries (more than zero).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub retry_after: Duration,
    /// `true`: wait for a permit in `poll_ready` instead of queueing or refusing in `call`.
    pub backpressure: bool,
    /// HTTP mode only: `true` releases the permit with the response head instead of when the
    /// body ends.
    pub release_at_head: bool,
    /// The bulkhead's name in errors and events.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "name"))]
    pub name: Name,
}

impl Default for BulkheadSettings {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT)
    }
}

impl BulkheadSettings {
    /// The defaults with `max_concurrent` permits.
    #[must_use]
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            max_concurrent,
            max_queue: 0,
            max_wait: None,
            retry_after: DEFAULT_RETRY_AFTER,
            backpressure: false,
            release_at_head: false,
            name: Name::default(),
        }
    }

    /// Checks every rule; the error names the field as the builder method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_size("max_concurrent", self.max_concurrent)?;
        if self.retry_after.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "retry_after",
                "must be more than zero",
            ));
        }
        if self.backpressure && (self.max_queue > 0 || self.max_wait.is_some()) {
            return Err(ConfigError::conflict(
                PATTERN,
                "backpressure",
                "waits in `poll_ready`: `max_queue` and `max_wait` do not apply",
            ));
        }
        validate_wait(self.max_queue, self.max_wait)
    }
}

/// A number of permits (`max_concurrent`, a partition's size): 1 to [`MAX_PERMITS`].
pub(crate) fn validate_size(field: &'static str, size: usize) -> Result<(), ConfigError> {
    if size == 0 {
        return Err(ConfigError::zero(PATTERN, field, "must be at least 1"));
    }
    if size > MAX_PERMITS {
        return Err(ConfigError::out_of_range(
            PATTERN,
            field,
            "must be at most `MAX_PERMITS` (usize::MAX / 16)",
        ));
    }
    Ok(())
}

/// `max_wait` is more than zero and has a queue to wait in.
pub(crate) fn validate_wait(
    max_queue: usize,
    max_wait: Option<Duration>,
) -> Result<(), ConfigError> {
    if let Some(max_wait) = max_wait {
        if max_wait.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "max_wait",
                "must be more than zero (leave it unset to wait until the deadline)",
            ));
        }
        if max_queue == 0 {
            return Err(ConfigError::conflict(
                PATTERN,
                "max_wait",
                "needs a queue: set `max_queue` above zero",
            ));
        }
    }
    Ok(())
}

/// A duration written as weir's configuration files write them (`"250ms"`).
#[cfg(feature = "serde")]
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

/// An optional duration (`"250ms"`).
#[cfg(feature = "serde")]
fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// A name, from a string.
#[cfg(feature = "serde")]
fn name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
    <String as serde::Deserialize>::deserialize(deserializer).map(Name::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_rule_names_its_field() {
        let s = BulkheadSettings::new;
        let err = s(0).validate().unwrap_err();
        assert!(err.is_zero() && err.field() == "max_concurrent", "{err}");
        let err = s(usize::MAX).validate().unwrap_err();
        assert!(err.is_out_of_range() && err.field() == "max_concurrent");
        let err = BulkheadSettings {
            max_queue: 1,
            max_wait: Some(ms(0)),
            ..s(1)
        }
        .validate()
        .unwrap_err();
        assert!(err.is_zero() && err.field() == "max_wait");
        let err = BulkheadSettings {
            max_wait: Some(ms(5)),
            ..s(1)
        }
        .validate()
        .unwrap_err();
        assert!(err.is_conflict() && err.field() == "max_wait");
        assert_eq!(
            err.to_string(),
            "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
        );
        let err = BulkheadSettings {
            retry_after: ms(0),
            ..s(1)
        }
        .validate()
        .unwrap_err();
        assert!(err.is_zero() && err.field() == "retry_after");
        let err = BulkheadSettings {
            backpressure: true,
            max_queue: 3,
            ..s(1)
        }
        .validate()
        .unwrap_err();
        assert!(err.is_conflict() && err.field() == "backpressure");
        assert!(
            BulkheadSettings {
                max_queue: 3,
                max_wait: Some(ms(5)),
                ..s(1)
            }
            .validate()
            .is_ok()
        );
    }
}
