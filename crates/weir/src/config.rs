//! The presets' settings read from a configuration file: serde structs that feed the builders,
//! so a file goes through the same checks as code.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::presets::{ClientBuilder, ClientStack, ConfigError, ServerBuilder, ServerStack};

/// The settings of a [`ServerStack`], read from a file (any serde format); every field is
/// optional and an absent one keeps the preset's default (see [`ServerBuilder`]).
///
/// | field | type | example |
/// |---|---|---|
/// | `timeout` | duration | `"10s"` |
/// | `max_in_flight` | integer | `500` |
///
/// Durations are strings: a whole number and a unit, `ms`, `s`, `m` or `h` (`"250ms"`, `"10s"`,
/// `"2m"`). An unknown field is an error. A rate limit is set in code, with
/// [`ServerBuilder::rate_limit`] on the builder that [`builder`](Self::builder) returns.
///
/// ```
/// use std::time::Duration;
/// use weir::ServerConfig;
///
/// let config: ServerConfig = toml::from_str(r#"
///     timeout = "5s"
///     max_in_flight = 200
/// "#).unwrap();
/// let stack = config.build().unwrap();
/// assert_eq!(stack.timeout(), Duration::from_secs(5));
/// assert_eq!(stack.max_in_flight(), 200);
/// ```
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    max_in_flight: Option<usize>,
}

impl ServerConfig {
    /// A [`ServerBuilder`] with these settings, the preset's defaults for the others.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] for a malformed duration (the field is `server.timeout`).
    pub fn builder(&self) -> Result<ServerBuilder, ConfigError> {
        let mut builder = ServerStack::builder();
        if let Some(timeout) = duration("server.timeout", self.timeout.as_deref())? {
            builder = builder.timeout(timeout);
        }
        if let Some(max) = self.max_in_flight {
            builder = builder.max_in_flight(max);
        }
        Ok(builder)
    }

    /// Builds the [`ServerStack`]: [`builder`](Self::builder), then [`ServerBuilder::build`].
    ///
    /// # Errors
    ///
    /// A malformed duration, or a rule of [`ServerBuilder::build`] (each names its field).
    pub fn build(&self) -> Result<ServerStack, ConfigError> {
        self.builder()?.build()
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// The settings of a [`ClientStack`], read from a file (any serde format); every field is
/// optional and an absent one keeps the preset's default (see [`ClientBuilder`]).
///
/// | field | type | example |
/// |---|---|---|
/// | `total_timeout` | duration | `"30s"` |
/// | `attempt_timeout` | duration | `"2s"` |
/// | `max_retries` | integer | `3` |
/// | `failure_rate` | number, percent | `25.0` |
/// | `minimum_calls` | integer | `20` |
/// | `sampling_window` | duration | `"1m"` |
/// | `open_duration` | duration | `"10s"` |
/// | `max_concurrent` | integer | `100` |
///
/// Durations are strings, as in [`ServerConfig`]. An unknown field is an error. The retry
/// budget, [`per_authority`](ClientBuilder::per_authority) and
/// [`breaker_outside_retry`](ClientBuilder::breaker_outside_retry) are chosen in code, on the
/// builder that [`builder`](Self::builder) returns (they change the stack's type).
///
/// ```
/// use weir::ClientConfig;
///
/// let config: ClientConfig = toml::from_str(r#"
///     total_timeout = "5s"
///     attempt_timeout = "10s"
/// "#).unwrap();
/// let err = config.build().unwrap_err();
/// assert!(err.to_string().contains("attempt_timeout"));
/// ```
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    #[serde(default)]
    total_timeout: Option<String>,
    #[serde(default)]
    attempt_timeout: Option<String>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    failure_rate: Option<f64>,
    #[serde(default)]
    minimum_calls: Option<u32>,
    #[serde(default)]
    sampling_window: Option<String>,
    #[serde(default)]
    open_duration: Option<String>,
    #[serde(default)]
    max_concurrent: Option<usize>,
}

impl ClientConfig {
    /// A [`ClientBuilder`] with these settings, the preset's defaults for the others.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] for a malformed duration (the field is named with its
    /// table, as `client.attempt_timeout`).
    pub fn builder(&self) -> Result<ClientBuilder, ConfigError> {
        let mut builder = ClientStack::builder();
        if let Some(d) = duration("client.total_timeout", self.total_timeout.as_deref())? {
            builder = builder.total_timeout(d);
        }
        if let Some(d) = duration("client.attempt_timeout", self.attempt_timeout.as_deref())? {
            builder = builder.attempt_timeout(d);
        }
        if let Some(d) = duration("client.sampling_window", self.sampling_window.as_deref())? {
            builder = builder.sampling_window(d);
        }
        if let Some(d) = duration("client.open_duration", self.open_duration.as_deref())? {
            builder = builder.open_duration(d);
        }
        if let Some(n) = self.max_retries {
            builder = builder.max_retries(n);
        }
        if let Some(rate) = self.failure_rate {
            builder = builder.failure_rate(rate);
        }
        if let Some(n) = self.minimum_calls {
            builder = builder.minimum_calls(n);
        }
        if let Some(n) = self.max_concurrent {
            builder = builder.max_concurrent(n);
        }
        Ok(builder)
    }

    /// Builds the [`ClientStack`] (one breaker, breaker inside retry): [`builder`](Self::builder),
    /// then [`ClientBuilder::build`].
    ///
    /// # Errors
    ///
    /// A malformed duration, or a rule of [`ClientBuilder::build`] (each names its field).
    pub fn build(&self) -> Result<ClientStack, ConfigError> {
        self.builder()?.build()
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("total_timeout", &self.total_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_retries", &self.max_retries)
            .field("failure_rate", &self.failure_rate)
            .field("minimum_calls", &self.minimum_calls)
            .field("sampling_window", &self.sampling_window)
            .field("open_duration", &self.open_duration)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

/// Parses an optional duration field, naming the field on error.
fn duration(field: &'static str, value: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    value
        .map(|text| {
            parse_duration(text).map_err(|rule| ConfigError::InvalidValue {
                field,
                reason: format!("invalid duration {text:?}: {rule}"),
            })
        })
        .transpose()
}

/// Parses a whole number followed by a unit (`ms`, `s`, `m` or `h`): `"250ms"`, `"10s"`,
/// `"2m"`. Surrounding whitespace is allowed; anything else is refused with the rule it broke.
fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const RULE: &str =
        r#"expected a whole number followed by a unit, ms, s, m or h (e.g. "250ms", "10s", "2m")"#;
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(RULE);
    }
    let n: u64 = digits.parse().map_err(|_| "the number is too large")?;
    let per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(RULE),
    };
    n.checked_mul(per_unit)
        .map(Duration::from_millis)
        .ok_or("the duration is too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_malformed_durations() {
        for bad in [
            "", "s", "10", "10 s", "10x", "1.5s", "-1s", "10sec", "ms10", "1m30s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err("the number is too large")
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err("the duration is too large")
        );
    }

    #[test]
    fn the_error_names_the_field_and_the_value() {
        let err = duration("client.open_duration", Some("5x")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`client.open_duration`: invalid duration \"5x\""),
            "{text}"
        );
        assert!(text.contains("ms, s, m or h"), "{text}");
        assert_eq!(duration("client.open_duration", None), Ok(None));
    }
}
