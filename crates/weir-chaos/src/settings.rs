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

/// The plain settings of a chaos layer: the builder holds one and its methods set its fields;
/// [`ChaosBuilder::settings`](crate::ChaosBuilder::settings) takes a whole one, and
/// [`ChaosHandle`](crate::ChaosHandle)'s `Reconfigure::apply` a new one at run time. A
/// configuration file's table is [`ChaosConfig`](crate::ChaosConfig) (feature `serde`), whose
/// defaults are the safe ones (disabled, no fault header); these are the builder's (enabled).
///
/// Probabilities are per request, within `0.0..=1.0`. Latency is rolled on its own (it adds to
/// whatever else happens); the other faults (error, status, stall, body, behaviour) exclude one
/// another, so their probabilities must add up to at most 1.
#[derive(Clone, Debug, PartialEq)]
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
    pub window_start: Duration,
    /// Faults only until this long after the layer is built (`None`: no end).
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
    /// Checks every rule; the error names the field as this struct (and a configuration file's
    /// [`ChaosConfig`](crate::ChaosConfig)) names it. The sum of the exclusive probabilities is
    /// charged to the first of them that is set.
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
        let exclusive = [
            ("error", self.error),
            ("status", self.status),
            ("stall", self.stall),
            ("body", self.body),
            ("behaviour", self.behaviour),
        ];
        if exclusive.iter().map(|(_, p)| p).sum::<f64>() > 1.0 + 1e-9 {
            let first = exclusive
                .iter()
                .find(|(_, p)| *p > 0.0)
                .map_or("error", |f| f.0);
            return Err(ConfigError::out_of_range(
                "chaos",
                first,
                "error + status + stall + body + behaviour must be at most 1 (they exclude one another)",
            ));
        }
        if !(100..=599).contains(&self.status_code) {
            return Err(ConfigError::out_of_range(
                "chaos",
                "status_code",
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
        self.latency_distribution
            .validate("chaos", "latency_distribution")?;
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
                "window_end",
                "the window's end must come after its start",
            ));
        }
        Ok(())
    }

    /// Checks what these settings ask of the layer's kind: an error or a behaviour fault needs
    /// the error or the behaviour to inject (`has_error`, `has_behaviour`), and a status fault,
    /// a failing body, a route prefix and the fault header need HTTP mode (`http`). The
    /// builder's check, and the handle's when it takes new settings.
    pub(crate) fn check_parts(
        &self,
        http: bool,
        has_error: bool,
        has_behaviour: bool,
    ) -> Result<(), ConfigError> {
        if self.error > 0.0 && !has_error {
            return Err(ConfigError::missing(
                "chaos",
                "error",
                "an error probability needs the error to inject: `.error(p, || ...)`",
            ));
        }
        if self.behaviour > 0.0 && !has_behaviour {
            return Err(ConfigError::missing(
                "chaos",
                "behaviour",
                "a behaviour probability needs the behaviour: `.behaviour(p, |req| ...)`",
            ));
        }
        if !http {
            let http_only = [
                ("status", self.status > 0.0),
                ("body", self.body > 0.0),
                ("route_prefix", self.route_prefix.is_some()),
                ("header", self.header),
            ];
            if let Some((field, _)) = http_only.into_iter().find(|(_, set)| *set) {
                return Err(ConfigError::conflict(
                    "chaos",
                    field,
                    "HTTP mode only: build with `ChaosLayer::http()`",
                ));
            }
        }
        Ok(())
    }

    /// The first field that differs between `self` (the settings a layer was built with) and
    /// `new` and that a running layer cannot take: all but `enabled` and the probabilities.
    pub(crate) fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        let changed = [
            ("seed", self.seed != new.seed),
            ("status_code", self.status_code != new.status_code),
            ("grpc_code", self.grpc_code != new.grpc_code),
            (
                "latency_distribution",
                self.latency_distribution != new.latency_distribution,
            ),
            ("body_after", self.body_after != new.body_after),
            ("header", self.header != new.header),
            ("route_prefix", self.route_prefix != new.route_prefix),
            ("window_start", self.window_start != new.window_start),
            ("window_end", self.window_end != new.window_end),
        ];
        changed
            .into_iter()
            .find(|(_, c)| *c)
            .map(|(field, _)| field)
    }
}

/// A duration written as weir's configuration files write them (`"20ms"`).
#[cfg(feature = "serde")]
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
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
        let sum = bad(|s| {
            s.stall = 0.6;
            s.body = 0.6;
        });
        assert_eq!(sum.field(), "stall", "charged to the first one set");
        assert_eq!(bad(|s| s.status_code = 99).field(), "status_code");
        assert_eq!(bad(|s| s.grpc_code = 0).field(), "grpc_code");
        let exp = bad(|s| s.latency_distribution = Latency::exponential(Duration::ZERO));
        assert!(
            exp.is_zero() && exp.field() == "latency_distribution",
            "{exp}"
        );
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
            "window_end"
        );
    }
}
