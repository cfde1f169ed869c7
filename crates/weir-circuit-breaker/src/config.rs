//! `CircuitBreakerConfig`: the breaker's settings read from a configuration file (feature
//! `serde`), fed through the builder so a file passes the same checks as code.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use weir_core::config::{BackoffSpec, ConfigDuration, KeySpec};
use weir_core::key::MissingKey;

use weir_core::ConfigError;

use crate::builder::{CircuitBreakerBuilder, KeyedCircuitBreakerBuilder};
use crate::layer::{CircuitBreakerLayer, KeyedCircuitBreakerLayer};
use crate::settings::PATTERN;

/// A circuit breaker's settings, read from a configuration file (TOML, or any serde format).
///
/// Every field is optional: one left out keeps the [builder's default](CircuitBreakerBuilder),
/// so an empty table builds [`CircuitBreakerLayer::builder`]'s breaker. The names are the
/// builder's methods; durations are strings such as `"250ms"`, `"10s"` or `"2m"`
/// ([`ConfigDuration`]). An unknown field, a malformed value or a value out of its range is an
/// error that names the field.
///
/// | field | type | example |
/// |---|---|---|
/// | `name` | string | `"inventory"` |
/// | `count_window` | integer, calls | `100` |
/// | `time_window` | table ([`TimeWindowSpec`]) | `{ size = "30s", buckets = 10 }` |
/// | `failure_rate` | percent, or `false` ([`FailureRateSpec`]) | `25.0` |
/// | `consecutive_failures` | integer | `5` |
/// | `slow_calls` | table ([`SlowCallsSpec`]) | `{ threshold = "2s", rate = 50.0 }` |
/// | `minimum_calls` | integer | `20` |
/// | `open_duration` | duration | `"10s"` |
/// | `open_backoff` | table ([`BackoffSpec`]) | `{ kind = "exponential", base = "5s", max = "5m", jitter = { proportional = 20 } }` |
/// | `half_open_probes` | integer | `3` |
/// | `max_half_open_wait` | duration | `"30s"` |
/// | `backpressure` | boolean | `true` |
/// | `seed` | integer | `7` |
/// | `key` | key extractor ([`KeySpec`]), keyed only | `"authority"`, `{ header = "x-tenant" }` |
/// | `max_keys` | integer, keyed only | `10000` |
/// | `idle_timeout` | duration, keyed only | `"10m"` |
/// | `missing_key` | `"shared"`, `"bypass"` or `"reject"` ([`MissingKey`]), keyed only | `"reject"` |
///
/// - `count_window` and `time_window` exclude each other, as do `open_duration` and
///   `open_backoff`.
/// - `failure_rate = false` turns the failure-rate trip off (the default is 50 %), for a breaker
///   that opens on `consecutive_failures` only, as [`CircuitBreakerLayer::consecutive_failures`].
/// - **One breaker or one per key.** [`build`](Self::build) makes one breaker and refuses the
///   keyed fields; [`build_keyed`](Self::build_keyed) makes one breaker per key, extracted by
///   `key` (the request's authority when `key` is left out), and refuses `backpressure` (keyed
///   breakers always reject at once).
/// - **What stays in code**: the classifier and the observer (code, not data), and the manual
///   states (`force_open`, `disable`, `metrics_only`, ...), which live on the handle. Set them on
///   the builder [`builder`](Self::builder) returns; for keyed breakers pass that builder to
///   [`keyed`](Self::keyed).
///
/// ```
/// use weir_circuit_breaker::CircuitBreakerConfig;
/// use weir_core::classify::HttpStatus;
///
/// let config: CircuitBreakerConfig = toml::from_str(r#"
///     name = "inventory"
///     time_window = { size = "30s", buckets = 10 }
///     failure_rate = 25
///     minimum_calls = 20
///     open_backoff = { kind = "exponential", base = "5s", max = "5m", jitter = "full" }
/// "#)?;
/// // One breaker, classifying HTTP responses (code).
/// let breaker = config.builder()?.classifier(HttpStatus::new()).build()?;
/// // One breaker per upstream host, with the same settings.
/// let per_host = config.keyed(config.builder()?.classifier(HttpStatus::new()))?.build()?;
/// # let _ = (breaker, per_host);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// The layer's name, in errors and events ([`CircuitBreakerBuilder::name`]).
    #[serde(default)]
    pub name: Option<String>,
    /// Judges the rates over the last this many calls
    /// ([`CircuitBreakerBuilder::count_window`]).
    #[serde(default)]
    pub count_window: Option<u32>,
    /// Judges the rates over the calls of a span of time
    /// ([`CircuitBreakerBuilder::time_window`]).
    #[serde(default)]
    pub time_window: Option<TimeWindowSpec>,
    /// Opens when at least this percentage of the window's calls failed, or never on the
    /// failure rate with `false` ([`CircuitBreakerBuilder::failure_rate`]).
    #[serde(default)]
    pub failure_rate: Option<FailureRateSpec>,
    /// Also opens after this many failures in a row
    /// ([`CircuitBreakerBuilder::consecutive_failures`]).
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// Counts slow calls and opens on their rate ([`CircuitBreakerBuilder::slow_calls`]).
    #[serde(default)]
    pub slow_calls: Option<SlowCallsSpec>,
    /// The rates are not judged before the window holds this many calls
    /// ([`CircuitBreakerBuilder::minimum_calls`]).
    #[serde(default)]
    pub minimum_calls: Option<u32>,
    /// A fixed open time ([`CircuitBreakerBuilder::open_duration`]).
    #[serde(default)]
    pub open_duration: Option<ConfigDuration>,
    /// An open time that grows with each opening in a row
    /// ([`CircuitBreakerBuilder::open_backoff`]).
    #[serde(default)]
    pub open_backoff: Option<BackoffSpec>,
    /// How many probes a half-open circuit lets through
    /// ([`CircuitBreakerBuilder::half_open_probes`]).
    #[serde(default)]
    pub half_open_probes: Option<u32>,
    /// How long a half-open circuit waits for its probes before it opens again
    /// ([`CircuitBreakerBuilder::max_half_open_wait`]).
    #[serde(default)]
    pub max_half_open_wait: Option<ConfigDuration>,
    /// `true`: an open circuit makes `poll_ready` wait instead of rejecting
    /// ([`CircuitBreakerBuilder::backpressure`]). Single breakers only.
    #[serde(default)]
    pub backpressure: Option<bool>,
    /// Seeds the open time's jitter ([`CircuitBreakerBuilder::seed`]).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Keyed breakers: what a request's key is (the authority when left out).
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// Keyed breakers: the most keys kept ([`KeyedCircuitBreakerBuilder::max_keys`]).
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// Keyed breakers: how long a key with a closed breaker is kept without calls
    /// ([`KeyedCircuitBreakerBuilder::idle_timeout`]).
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    /// Keyed breakers: what a request without a key does
    /// ([`KeyedCircuitBreakerBuilder::missing_key`]).
    #[serde(default)]
    pub missing_key: Option<MissingKey>,
}

impl CircuitBreakerConfig {
    /// A [`CircuitBreakerBuilder`] with these settings over its defaults (the keyed fields are
    /// not read: they are [`keyed`](Self::keyed)'s). Set the classifier and the observer on it.
    ///
    /// # Errors
    ///
    /// A conflict ([`ConfigError::is_conflict`]) when `count_window` and `time_window`, or `open_duration` and
    /// `open_backoff`, are both set. The ranges are checked by the builder's `build()`.
    pub fn builder(&self) -> Result<CircuitBreakerBuilder, ConfigError> {
        if self.count_window.is_some() && self.time_window.is_some() {
            return Err(ConfigError::conflict(
                PATTERN,
                "time_window",
                "and `count_window` are both set: choose one",
            ));
        }
        if self.open_duration.is_some() && self.open_backoff.is_some() {
            return Err(ConfigError::conflict(
                PATTERN,
                "open_backoff",
                "and `open_duration` are both set: choose one",
            ));
        }
        let mut builder = CircuitBreakerLayer::builder();
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        if let Some(calls) = self.count_window {
            builder = builder.count_window(calls);
        }
        if let Some(window) = self.time_window {
            builder = builder.time_window(window.size.get(), window.buckets);
        }
        match self.failure_rate {
            Some(FailureRateSpec::Percent(percent)) => builder = builder.failure_rate(percent),
            Some(FailureRateSpec::Off) => builder.clear_failure_rate(),
            None => {}
        }
        if let Some(n) = self.consecutive_failures {
            builder = builder.consecutive_failures(n);
        }
        if let Some(slow) = self.slow_calls {
            builder = builder.slow_calls(slow.threshold.get(), slow.rate);
        }
        if let Some(calls) = self.minimum_calls {
            builder = builder.minimum_calls(calls);
        }
        if let Some(duration) = self.open_duration {
            builder = builder.open_duration(duration.get());
        }
        if let Some(backoff) = self.open_backoff {
            builder = builder.open_backoff(backoff.to_backoff());
        }
        if let Some(probes) = self.half_open_probes {
            builder = builder.half_open_probes(probes);
        }
        if let Some(wait) = self.max_half_open_wait {
            builder = builder.max_half_open_wait(wait.get());
        }
        if self.backpressure == Some(true) {
            builder = builder.backpressure();
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        Ok(builder)
    }

    /// One breaker: [`builder`](Self::builder), then [`CircuitBreakerBuilder::build`].
    ///
    /// # Errors
    ///
    /// An invalid field ([`ConfigError::is_invalid`]) when a keyed field (`key`, `max_keys`, `idle_timeout`,
    /// `missing_key`) is set, else as [`builder`](Self::builder) and
    /// [`CircuitBreakerBuilder::build`].
    pub fn build(&self) -> Result<CircuitBreakerLayer, ConfigError> {
        if let Some(field) = self.keyed_field() {
            return Err(ConfigError::invalid(
                PATTERN,
                field,
                "configures keyed breakers: build them with build_keyed, or leave it out",
            ));
        }
        self.builder()?.build()
    }

    /// One breaker per key, each with `builder`'s settings: the key is extracted by `key` (the
    /// request's authority, [`KeySpec::Authority`], when left out) and bounded by `max_keys`,
    /// `idle_timeout` and `missing_key`. Pass [`builder`](Self::builder)'s builder, with the
    /// classifier and observer set in code.
    ///
    /// # Errors
    ///
    /// An invalid `backpressure` ([`ConfigError::is_invalid`]) when `backpressure = true`. The ranges are checked by
    /// [`KeyedCircuitBreakerBuilder::build`].
    pub fn keyed<C, O>(
        &self,
        builder: CircuitBreakerBuilder<C, O>,
    ) -> Result<KeyedCircuitBreakerBuilder<KeySpec, C, O>, ConfigError> {
        if self.backpressure == Some(true) {
            return Err(ConfigError::invalid(
                PATTERN,
                "backpressure",
                "does not apply to keyed breakers (the key is known only in call): leave it out",
            ));
        }
        let mut keyed = builder.keyed(self.key.clone().unwrap_or(KeySpec::Authority));
        if let Some(n) = self.max_keys {
            keyed = keyed.max_keys(n);
        }
        if let Some(timeout) = self.idle_timeout {
            keyed = keyed.idle_timeout(timeout.get());
        }
        if let Some(missing) = self.missing_key {
            keyed = keyed.missing_key(missing);
        }
        Ok(keyed)
    }

    /// One breaker per key: [`keyed`](Self::keyed)`(`[`builder`](Self::builder)`()?)`, then
    /// [`KeyedCircuitBreakerBuilder::build`].
    ///
    /// # Errors
    ///
    /// As [`builder`](Self::builder), [`keyed`](Self::keyed) and
    /// [`KeyedCircuitBreakerBuilder::build`].
    pub fn build_keyed(&self) -> Result<KeyedCircuitBreakerLayer<KeySpec>, ConfigError> {
        self.keyed(self.builder()?)?.build()
    }

    /// The first keyed field that is set.
    fn keyed_field(&self) -> Option<&'static str> {
        [
            ("key", self.key.is_some()),
            ("max_keys", self.max_keys.is_some()),
            ("idle_timeout", self.idle_timeout.is_some()),
            ("missing_key", self.missing_key.is_some()),
        ]
        .into_iter()
        .find_map(|(field, set)| set.then_some(field))
    }
}

/// A time window in a configuration file: `{ size = "30s", buckets = 10 }`
/// ([`CircuitBreakerBuilder::time_window`]: 1 to 1 000 buckets of at least 1 ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeWindowSpec {
    /// The span of time the window covers.
    pub size: ConfigDuration,
    /// How many buckets it is counted in.
    pub buckets: u32,
}

/// Slow calls in a configuration file: `{ threshold = "2s", rate = 50.0 }`
/// ([`CircuitBreakerBuilder::slow_calls`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlowCallsSpec {
    /// A call this long or longer is slow (above zero).
    pub threshold: ConfigDuration,
    /// Opens when at least this percentage of the window's calls were slow (above 0, at most
    /// 100).
    pub rate: f64,
}

/// `failure_rate` in a configuration file: a percentage (`25`, `12.5`), or `false` for no
/// failure-rate trip.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FailureRateSpec {
    /// Opens when at least this percentage of the window's calls failed (above 0, at most 100).
    Percent(f64),
    /// Never opens on the failure rate (only on consecutive failures or slow calls).
    Off,
}

impl<'de> Deserialize<'de> for FailureRateSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = FailureRateSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as 25 or 12.5, or false for no failure-rate trip")
            }

            fn visit_f64<E: de::Error>(self, percent: f64) -> Result<FailureRateSpec, E> {
                Ok(FailureRateSpec::Percent(percent))
            }

            fn visit_i64<E: de::Error>(self, percent: i64) -> Result<FailureRateSpec, E> {
                Ok(FailureRateSpec::Percent(percent as f64))
            }

            fn visit_u64<E: de::Error>(self, percent: u64) -> Result<FailureRateSpec, E> {
                Ok(FailureRateSpec::Percent(percent as f64))
            }

            fn visit_bool<E: de::Error>(self, on: bool) -> Result<FailureRateSpec, E> {
                if on {
                    Err(E::invalid_value(de::Unexpected::Bool(true), &self))
                } else {
                    Ok(FailureRateSpec::Off)
                }
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests;
