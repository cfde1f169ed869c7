//! `ChaosConfig`: the configuration-file form of a chaos layer (feature `serde`), with the safe
//! defaults a file needs: disabled, and no fault header.

use std::time::Duration;

use weir_core::ConfigError;
use weir_core::protocol::Http;

use crate::builder::ChaosBuilder;
use crate::layer::ChaosLayer;
use crate::settings::{
    ChaosSettings, DEFAULT_BODY_AFTER, DEFAULT_GRPC_CODE, DEFAULT_LATENCY, DEFAULT_STATUS, Latency,
    duration,
};

/// A chaos layer's settings, read from a configuration file (TOML, or any serde format).
///
/// **Safe by default**: a table that says nothing injects nothing. The layer is built
/// **disabled** unless the table says `enabled = true` (a handle, a status page's `enable`
/// action or a reload turns it on), and a request's `x-weir-fault` header is **ignored** unless
/// it says `header = true`: a file copied from a staging deployment to production must not let
/// clients inject faults there. Every probability is 0 unless given.
///
/// | field | type | default |
/// |---|---|---|
/// | `name` | string | unnamed (`"default"`) |
/// | `enabled` | boolean | **`false`** |
/// | `seed` | integer | from the process |
/// | `latency` | probability | `0` |
/// | `latency_distribution` | [`Latency`]: `{ fixed = "100ms" }`, `{ uniform = { min = "10ms", max = "50ms" } }`, `{ exponential = { mean = "20ms", max = "1s" } }` | `{ fixed = "100ms" }` |
/// | `stall` | probability | `0` |
/// | `status` | probability; HTTP only | `0` |
/// | `status_code` | integer, 100..=599; HTTP only | `503` |
/// | `grpc_code` | integer, 1..=16; HTTP only | `14` (`UNAVAILABLE`) |
/// | `body` | probability of a failing body; HTTP only | `0` |
/// | `body_after` | integer, bytes; HTTP only | `0` |
/// | `header` | boolean: the `x-weir-fault` header may ask for faults; HTTP only | **`false`** |
/// | `route_prefix` | string starting with `/`; HTTP only | every path |
/// | `window_start`, `window_end` | durations after the layer is built | always |
///
/// Durations are strings (`"250ms"`, `"10s"`, `"2m"`). An unknown field is an error, and so is
/// `error` or `behaviour`: the error to inject and the custom behaviour are code (set them on
/// the builder [`builder`](Self::builder) returns, with their probabilities). A rule broken
/// ([`ChaosSettings::validate`]) is a [`ConfigError`] naming the field as the file does.
///
/// ```
/// use weir_chaos::ChaosConfig;
///
/// let config: ChaosConfig = toml::from_str(r#"
///     status = 0.01
///     latency = 0.1
///     latency_distribution = { uniform = { min = "10ms", max = "50ms" } }
///     route_prefix = "/api"
/// "#)?;
/// let layer = config.build_http()?;
/// let faults = layer.handle();
/// assert!(!faults.is_enabled(), "built disabled: the table did not say `enabled = true`");
/// faults.enable();
///
/// // A status fault is HTTP only.
/// assert_eq!(config.build().unwrap_err().field(), "status");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ChaosConfig {
    /// The layer's name ([`ChaosBuilder::name`]).
    pub name: Option<String>,
    /// Whether faults are injected when the layer is built. **`false`** unless the file says so.
    pub enabled: bool,
    /// The random source's seed ([`ChaosBuilder::seed`]).
    pub seed: Option<u64>,
    /// The probability of added latency.
    pub latency: f64,
    /// How much latency is added.
    pub latency_distribution: Latency,
    /// The probability of a stalled call.
    pub stall: f64,
    /// HTTP only: the probability of an injected status response.
    pub status: f64,
    /// HTTP only: the status of an injected response.
    pub status_code: u16,
    /// HTTP only: the gRPC code of an injected response to a gRPC request.
    pub grpc_code: u8,
    /// HTTP only: the probability of a response body that fails midway.
    pub body: f64,
    /// HTTP only: bytes of a failing body let through before it fails.
    pub body_after: u64,
    /// HTTP only: whether a request's `x-weir-fault` header may ask for faults. **`false`**
    /// unless the file says so.
    pub header: bool,
    /// HTTP only: only requests whose path is this prefix or under it.
    pub route_prefix: Option<String>,
    /// Faults only from this long after the layer is built.
    #[serde(deserialize_with = "duration")]
    pub window_start: Duration,
    /// Faults only until this long after the layer is built.
    #[serde(deserialize_with = "option_duration")]
    pub window_end: Option<Duration>,
}

impl Default for ChaosConfig {
    /// Nothing injected: disabled, every probability 0, no fault header.
    fn default() -> Self {
        Self {
            name: None,
            enabled: false,
            seed: None,
            latency: 0.0,
            latency_distribution: DEFAULT_LATENCY,
            stall: 0.0,
            status: 0.0,
            status_code: DEFAULT_STATUS,
            grpc_code: DEFAULT_GRPC_CODE,
            body: 0.0,
            body_after: DEFAULT_BODY_AFTER,
            header: false,
            route_prefix: None,
            window_start: Duration::ZERO,
            window_end: None,
        }
    }
}

impl ChaosConfig {
    /// The table as [`ChaosSettings`] (no error or behaviour probability: those are code).
    #[must_use]
    pub fn settings(&self) -> ChaosSettings {
        ChaosSettings {
            enabled: self.enabled,
            seed: self.seed,
            error: 0.0,
            status: self.status,
            status_code: self.status_code,
            grpc_code: self.grpc_code,
            latency: self.latency,
            latency_distribution: self.latency_distribution,
            stall: self.stall,
            body: self.body,
            body_after: self.body_after,
            behaviour: 0.0,
            header: self.header,
            route_prefix: self.route_prefix.clone(),
            window_start: self.window_start,
            window_end: self.window_end,
        }
    }

    /// [`ChaosLayer::builder`] (plain mode: any request) with these settings. Add the error
    /// to inject, the behaviour, the client keys or the observer on it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming an HTTP-only field that is set (`status`, `body`, `header`,
    /// `route_prefix`). The other rules are checked by [`ChaosBuilder::build`].
    pub fn builder(&self) -> Result<ChaosBuilder, ConfigError> {
        let http = [
            ("status", self.status > 0.0),
            ("body", self.body > 0.0),
            ("header", self.header),
            ("route_prefix", self.route_prefix.is_some()),
        ];
        if let Some((field, _)) = http.into_iter().find(|(_, set)| *set) {
            return Err(ConfigError::invalid(
                "chaos",
                field,
                "applies to HTTP requests only: build with `build_http`, or leave it out",
            ));
        }
        Ok(self.named(ChaosLayer::builder()))
    }

    /// [`ChaosLayer::http`] with these settings (the HTTP fields included).
    #[must_use]
    pub fn http_builder(&self) -> ChaosBuilder<Http> {
        self.named(ChaosLayer::http())
    }

    /// Builds [`builder`](Self::builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`builder`](Self::builder) and [`ChaosBuilder::build`].
    pub fn build(&self) -> Result<ChaosLayer, ConfigError> {
        self.builder()?.build()
    }

    /// Builds [`http_builder`](Self::http_builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`ChaosBuilder::build`].
    pub fn build_http(&self) -> Result<ChaosLayer<Http>, ConfigError> {
        self.http_builder().build()
    }

    /// `builder` with the name and the settings.
    fn named<P>(&self, builder: ChaosBuilder<P>) -> ChaosBuilder<P> {
        let builder = builder.settings(self.settings());
        match &self.name {
            Some(name) => builder.name(name.clone()),
            None => builder,
        }
    }
}

/// An optional duration (`"20ms"`).
fn option_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ChaosConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn an_empty_table_is_safe_disabled_without_header_and_injects_nothing() {
        let config = parse("");
        assert_eq!(config, ChaosConfig::default());
        let settings = config.settings();
        assert!(!settings.enabled, "a file's layer starts disabled");
        assert!(!settings.header, "a file's layer ignores the fault header");
        assert_eq!(settings.latency + settings.stall + settings.status, 0.0);
        let layer = config.build_http().expect("valid");
        assert!(!layer.handle().is_enabled());
    }

    #[test]
    fn a_table_reads_every_field_with_the_files_durations() {
        let config = parse(
            r#"
            name = "canary"
            enabled = true
            seed = 7
            latency = 0.5
            latency_distribution = { uniform = { min = "10ms", max = "30ms" } }
            stall = 0.01
            status = 0.02
            status_code = 502
            grpc_code = 8
            body = 0.03
            body_after = 1024
            header = true
            route_prefix = "/api"
            window_start = "1m"
            window_end = "10m"
            "#,
        );
        let s = config.settings();
        assert_eq!(config.name.as_deref(), Some("canary"));
        assert!(s.enabled && s.header);
        assert_eq!(
            (s.seed, s.status_code, s.grpc_code, s.body_after),
            (Some(7), 502, 8, 1024)
        );
        assert_eq!(
            (s.latency, s.stall, s.status, s.body),
            (0.5, 0.01, 0.02, 0.03)
        );
        assert_eq!(
            s.latency_distribution,
            Latency::uniform(Duration::from_millis(10), Duration::from_millis(30))
        );
        assert_eq!(
            (s.window_start, s.window_end),
            (Duration::from_secs(60), Some(Duration::from_secs(600)))
        );
        let layer = config.build_http().expect("valid");
        assert_eq!(layer.handle().name().as_str(), "canary");
        assert!(layer.handle().is_enabled());
    }

    #[test]
    fn code_only_and_unknown_fields_are_refused_by_name() {
        for field in ["error = 0.1", "behaviour = 0.1", "enable = true"] {
            let err = toml::from_str::<ChaosConfig>(field)
                .unwrap_err()
                .to_string();
            let name = field.split(' ').next().unwrap();
            assert!(err.contains(&format!("unknown field `{name}`")), "{err}");
        }
    }

    #[test]
    fn broken_rules_name_the_files_field() {
        let err = |text: &str| parse(text).build_http().unwrap_err();
        assert_eq!(err("status = 1.5").field(), "status");
        assert_eq!(err("status_code = 99").field(), "status_code");
        assert_eq!(err("stall = 0.6\nbody = 0.6").field(), "stall");
        assert_eq!(err(r#"route_prefix = "api""#).field(), "route_prefix");
        assert_eq!(
            err(r#"latency_distribution = { exponential = { mean = "0s", max = "1s" } }"#).field(),
            "latency_distribution"
        );
        assert_eq!(
            err("window_start = \"5s\"\nwindow_end = \"5s\"").field(),
            "window_end"
        );
        // Plain mode refuses what needs HTTP.
        for (text, field) in [
            ("status = 0.1", "status"),
            ("body = 0.1", "body"),
            ("header = true", "header"),
            (r#"route_prefix = "/api""#, "route_prefix"),
        ] {
            assert_eq!(parse(text).build().unwrap_err().field(), field);
        }
        assert!(parse("latency = 1.0\nstall = 0.5").build().is_ok());
    }
}
