//! `ChaosSettings`: the plain settings a [`ChaosBuilder`](crate::ChaosBuilder) holds, their
//! defaults and their rules.

use std::time::Duration;

use weir_core::ConfigError;

/// The status an injected HTTP response carries by default: `503 Service Unavailable`.
pub const DEFAULT_STATUS: u16 = 503;
/// The gRPC code an injected gRPC response carries by default: `UNAVAILABLE` (14).
pub const DEFAULT_GRPC_CODE: u8 = 14;
/// Bytes of a failing body let through before it fails, by default: none (it fails at once).
pub const DEFAULT_BODY_AFTER: u64 = 0;
/// The added latency by default: a fixed 100 ms.
pub const DEFAULT_LATENCY: Latency = Latency::Fixed(Duration::from_millis(100));

/// How much latency a latency fault adds: a fixed delay or one drawn from a distribution (with
/// the layer's seeded random source, so a seed gives the same delays every run).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Latency {
    /// Always this delay.
    Fixed(#[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))] Duration),
    /// Uniform between `min` and `max` (inclusive).
    Uniform {
        /// The shortest delay.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
        min: Duration,
        /// The longest delay.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
        max: Duration,
    },
    /// Exponential with this `mean` (a memoryless tail, as queueing delays have), cut at `max`.
    Exponential {
        /// The mean delay.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
        mean: Duration,
        /// No delay is longer than this.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
        max: Duration,
    },
}

impl Latency {
    /// Always `delay`.
    #[must_use]
    pub const fn fixed(delay: Duration) -> Self {
        Self::Fixed(delay)
    }

    /// Uniform between `min` and `max` (inclusive).
    #[must_use]
    pub const fn uniform(min: Duration, max: Duration) -> Self {
        Self::Uniform { min, max }
    }

    /// Exponential with this `mean`, cut at 20 times the mean.
    #[must_use]
    pub const fn exponential(mean: Duration) -> Self {
        Self::Exponential {
            mean,
            max: mean.saturating_mul(20),
        }
    }

    /// Exponential with this `mean`, cut at `max`.
    #[must_use]
    pub const fn exponential_max(mean: Duration, max: Duration) -> Self {
        Self::Exponential { mean, max }
    }

    /// Checks the distribution's own rules; `field` names it in the error.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `min > max` or an exponential mean is zero.
    pub fn validate(&self, pattern: &'static str, field: &'static str) -> Result<(), ConfigError> {
        match *self {
            Self::Fixed(_) => Ok(()),
            Self::Uniform { min, max } if min > max => Err(ConfigError::out_of_range(
                pattern,
                field,
                "a uniform latency's min must not exceed its max",
            )),
            Self::Uniform { .. } => Ok(()),
            Self::Exponential { mean, .. } if mean.is_zero() => Err(ConfigError::zero(
                pattern,
                field,
                "an exponential latency's mean must be above zero",
            )),
            Self::Exponential { .. } => Ok(()),
        }
    }
}

/// The plain settings of a chaos layer: what a configuration file can say (deserializable with
/// the `serde` feature; durations as `"20ms"`). The builder holds one and its methods set its
/// fields; [`ChaosBuilder::settings`](crate::ChaosBuilder::settings) takes a whole one.
///
/// Probabilities are per request, within `0.0..=1.0`. Latency is rolled on its own (it adds to
/// whatever else happens); the other faults (error, status, stall, body, behaviour) exclude one
/// another, so their probabilities must add up to at most 1.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct ChaosSettings {
    /// Whether faults are injected when the layer is built (the handle changes it at run time).
    pub enabled: bool,
    /// The random source's seed: the same seed and the same requests, in the same order, give
    /// the same faults. `None`: seeded from the process.
    pub seed: Option<u64>,
    /// The probability of an injected error.
    pub error: f64,
    /// The probability of an injected status response (HTTP mode).
    pub status: f64,
    /// The HTTP status of an injected status response (100..=599).
    pub status_code: u16,
    /// The gRPC code of an injected response to a gRPC request (1..=16).
    pub grpc_code: u8,
    /// The probability of added latency.
    pub latency: f64,
    /// How much latency is added.
    pub latency_distribution: Latency,
    /// The probability of a stalled call (no answer until the request's deadline).
    pub stall: f64,
    /// The probability of a response body that fails midway (HTTP mode).
    pub body: f64,
    /// Bytes of a failing body let through before it fails.
    pub body_after: u64,
    /// The probability of the custom behaviour.
    pub behaviour: f64,
    /// Whether a request's `x-weir-fault` header may ask for faults. Off by default: a client
    /// must not be able to inject faults into production.
    pub header: bool,
    /// Only requests whose path is this prefix or under it (`/api` selects `/api` and `/api/x`,
    /// not `/apix`); HTTP mode.
    pub route_prefix: Option<String>,
    /// Faults only from this long after the layer is built.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub window_start: Duration,
    /// Faults only until this long after the layer is built (`None`: no end).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "option_duration"))]
    pub window_end: Option<Duration>,
}

impl Default for ChaosSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            seed: None,
            error: 0.0,
            status: 0.0,
            status_code: DEFAULT_STATUS,
            grpc_code: DEFAULT_GRPC_CODE,
            latency: 0.0,
            latency_distribution: DEFAULT_LATENCY,
            stall: 0.0,
            body: 0.0,
            body_after: DEFAULT_BODY_AFTER,
            behaviour: 0.0,
            header: false,
            route_prefix: None,
            window_start: Duration::ZERO,
            window_end: None,
        }
    }
}

impl ChaosSettings {
    /// Checks every rule; the error names the field as the builder method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, p) in [
            ("error", self.error),
            ("status", self.status),
            ("latency", self.latency),
            ("stall", self.stall),
            ("body", self.body),
            ("behaviour", self.behaviour),
        ] {
            if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                return Err(ConfigError::out_of_range(
                    "chaos",
                    field,
                    "a probability must be within 0..=1",
                ));
            }
        }
        if self.error + self.status + self.stall + self.body + self.behaviour > 1.0 + 1e-9 {
            return Err(ConfigError::out_of_range(
                "chaos",
                "error",
                "error + status + stall + body + behaviour must be at most 1 (they exclude one another)",
            ));
        }
        if !(100..=599).contains(&self.status_code) {
            return Err(ConfigError::out_of_range(
                "chaos",
                "status",
                "an HTTP status must be within 100..=599",
            ));
        }
        if !(1..=16).contains(&self.grpc_code) {
            return Err(ConfigError::out_of_range(
                "chaos",
                "grpc_code",
                "a gRPC error code must be within 1..=16",
            ));
        }
        self.latency_distribution.validate("chaos", "latency")?;
        if let Some(prefix) = &self.route_prefix
            && !prefix.starts_with('/')
        {
            return Err(ConfigError::invalid(
                "chaos",
                "route_prefix",
                "a route prefix must start with '/'",
            ));
        }
        if let Some(end) = self.window_end
            && end <= self.window_start
        {
            return Err(ConfigError::out_of_range(
                "chaos",
                "window",
                "the window's end must come after its start",
            ));
        }
        Ok(())
    }
}

/// A duration written as weir's configuration files write them (`"20ms"`).
#[cfg(feature = "serde")]
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

/// An optional duration (`"20ms"`).
#[cfg(feature = "serde")]
fn option_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_inject_nothing() {
        let settings = ChaosSettings::default();
        assert!(settings.validate().is_ok());
        assert!(!settings.header, "the fault header is off by default");
        assert_eq!(settings.error + settings.latency + settings.stall, 0.0);
    }

    #[test]
    fn each_rule_names_its_field() {
        let bad = |f: fn(&mut ChaosSettings)| {
            let mut s = ChaosSettings::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(bad(|s| s.error = 1.5).field(), "error");
        assert_eq!(bad(|s| s.latency = f64::NAN).field(), "latency");
        let sum = bad(|s| {
            s.error = 0.6;
            s.stall = 0.6;
        });
        assert!(
            sum.is_out_of_range() && sum.rule().contains("at most 1"),
            "{sum}"
        );
        assert_eq!(bad(|s| s.status_code = 99).field(), "status");
        assert_eq!(bad(|s| s.grpc_code = 0).field(), "grpc_code");
        assert!(bad(|s| s.latency_distribution = Latency::exponential(Duration::ZERO)).is_zero());
        assert_eq!(
            bad(|s| s.route_prefix = Some("api".into())).field(),
            "route_prefix"
        );
        assert_eq!(
            bad(|s| {
                s.window_start = Duration::from_secs(5);
                s.window_end = Some(Duration::from_secs(5));
            })
            .field(),
            "window"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_configuration_file_reads_the_settings() {
        let settings: ChaosSettings = toml::from_str(
            r#"
            seed = 7
            error = 0.01
            latency = 0.5
            latency_distribution = { uniform = { min = "10ms", max = "30ms" } }
            route_prefix = "/api"
            window_end = "10m"
            "#,
        )
        .unwrap();
        assert_eq!(settings.seed, Some(7));
        assert_eq!(
            settings.latency_distribution,
            Latency::uniform(Duration::from_millis(10), Duration::from_millis(30))
        );
        assert_eq!(settings.window_end, Some(Duration::from_secs(600)));
        assert!(settings.validate().is_ok());
    }
}
