//! `RetryConfig`: the configuration-file form of a retry layer (feature `serde`): the plain
//! [`RetrySettings`] plus the specs of the typed parts (the HTTP replay's settings, the budget's
//! scope), deserialized, then handed to the builder so a file passes the same checks as code.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use weir_core::protocol::{Http, Plain};
use weir_core::{ConfigError, classify::GrpcStatus, classify::HttpStatus, key::Authority};

use crate::builder::RetryBuilder;
use crate::layer::RetryLayer;
use crate::replay::HttpReplay;
use crate::scope::PerKey;
use crate::settings::{DEFAULT_MAX_SERVERS, RetrySettings};

/// The budget scope of a layer built from a file for HTTP or gRPC: one budget per server when
/// the file sets `budget_per_server = true`, the layer's one budget otherwise.
pub type ServerScope = Option<PerKey<Authority>>;

/// Retry settings, read from a configuration file (TOML, or any serde format): the fields of
/// [`RetrySettings`] plus the settings of the typed parts.
///
/// Every field is optional: one left out keeps the [builder's default](RetryBuilder), so an
/// empty table builds [`RetryLayer::builder`]'s layer (or [`RetryLayer::http`]'s,
/// [`RetryLayer::grpc`]'s). The names are the builder's methods; durations are strings such as
/// `"250ms"`, `"10s"` or `"2m"` ([`ConfigDuration`](weir_core::config::ConfigDuration)). An
/// unknown field, a malformed value or a value out of its range is an error that names the
/// field.
///
/// | field | type | example |
/// |---|---|---|
/// | `name` | string | `"inventory"` |
/// | `max_attempts` | integer, the first call included | `4` |
/// | `max_retries` | integer, after the first call | `3` |
/// | `backoff` | table ([`BackoffSpec`](weir_core::config::BackoffSpec)) | `{ kind = "exponential", base = "100ms", max = "5s", jitter = "full" }` |
/// | `max_duration` | duration | `"10s"` |
/// | `max_server_delay` | duration | `"30s"` |
/// | `budget` | table ([`BudgetSpec`](crate::BudgetSpec)) | `{ kind = "ratio", ratio = 0.1, min_per_second = 5, window = "30s" }` |
/// | `seed` | integer | `7` |
/// | `body_limit` | integer, bytes; HTTP only | `1048576` |
/// | `wait_for_body` | boolean; HTTP only | `false` |
/// | `retry_non_idempotent` | boolean; HTTP only | `true` |
/// | `budget_per_server` | boolean; HTTP only: one budget per server name ([`RetryBuilder::budget_per_server`]) | `true` |
/// | `max_servers` | integer; with `budget_per_server` ([`RetryBuilder::max_servers`]) | `100` |
///
/// - `max_attempts` and `max_retries` exclude each other (`max_retries = 2` is
///   `max_attempts = 3`).
/// - **Which requests**: [`build`](Self::build) is [`RetryLayer::builder`]'s (any request that is
///   `Clone`, every error but weir's own rejections retried) and refuses the HTTP fields;
///   [`build_http`](Self::build_http) is [`RetryLayer::http`]'s and
///   [`build_grpc`](Self::build_grpc) [`RetryLayer::grpc`]'s (HTTP bodies replayed up to
///   `body_limit`; `retry_non_idempotent = false` retries POST and PATCH only with an
///   `Idempotency-Key`, also on gRPC, whose calls are all POSTs). The kind of request is the
///   code's choice (it is the layer's type), not the file's.
/// - **Server hints** (`Retry-After`, `grpc-retry-pushback-ms`) are always honoured, never
///   shortened: one longer than `max_server_delay` ends the retries.
/// - **What stays in code**: the classifier (which results are retried), the observer, a
///   request predicate (`retry_request_if`) and a custom replay. Set them on the builder that
///   [`builder`](Self::builder), [`http_builder`](Self::http_builder) or
///   [`grpc_builder`](Self::grpc_builder) returns; they keep the file's settings.
///
/// ```
/// use weir_retry::RetryConfig;
///
/// let config: RetryConfig = toml::from_str(r#"
///     name = "inventory"
///     max_retries = 3
///     backoff = { kind = "exponential", base = "50ms", max = "2s", jitter = "full" }
///     budget = { kind = "ratio", ratio = 0.1, min_per_second = 5 }
///     body_limit = 1048576
/// "#)?;
/// let http = config.build_http()?;
/// // The same settings with a request predicate, which is code.
/// let gets_only = config
///     .http_builder()?
///     .retry_request_if(|req: &http::Request<String>| req.method() == http::Method::GET)
///     .build()?;
/// // body_limit means nothing to a layer for other requests.
/// assert!(config.build().unwrap_err().to_string().contains("`body_limit`"));
/// # let _ = (http, gets_only);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(try_from = "RawConfig")]
#[non_exhaustive]
pub struct RetryConfig {
    /// The plain settings ([`RetryBuilder::settings`]); `max_retries` already folded into
    /// `max_attempts`.
    pub settings: RetrySettings,
    /// HTTP only: request bodies up to this many bytes are kept for replay
    /// ([`RetryBuilder::body_limit`]).
    pub body_limit: Option<usize>,
    /// HTTP only: whether to wait for a body still being streamed
    /// ([`RetryBuilder::wait_for_body`]).
    pub wait_for_body: Option<bool>,
    /// HTTP only: `true` retries POST and PATCH without an `Idempotency-Key`, `false` only with
    /// one ([`RetryBuilder::retry_non_idempotent`]).
    pub retry_non_idempotent: Option<bool>,
    /// HTTP only: one budget per server name ([`RetryBuilder::budget_per_server`]).
    pub budget_per_server: Option<bool>,
    /// With `budget_per_server`: the most servers with a budget of their own
    /// ([`RetryBuilder::max_servers`]).
    pub max_servers: Option<usize>,
}

/// The file as written: the settings (one struct, deserialized where the file has them), the
/// typed parts' fields, and whatever else the file says (refused by name).
#[derive(serde::Deserialize)]
struct RawConfig {
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    body_limit: Option<usize>,
    #[serde(default)]
    wait_for_body: Option<bool>,
    #[serde(default)]
    retry_non_idempotent: Option<bool>,
    #[serde(default)]
    budget_per_server: Option<bool>,
    #[serde(default)]
    max_servers: Option<usize>,
    /// Taken before the settings, to tell an explicit `max_attempts` from the default.
    #[serde(flatten)]
    attempts: Attempts,
    #[serde(flatten)]
    settings: RetrySettings,
    #[serde(flatten)]
    unknown: BTreeMap<String, IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct Attempts {
    #[serde(default)]
    max_attempts: Option<u32>,
}

impl TryFrom<RawConfig> for RetryConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        if let Some(field) = raw.unknown.keys().next() {
            return Err(format!("unknown field `{field}`"));
        }
        let mut settings = raw.settings;
        match (raw.attempts.max_attempts, raw.max_retries) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::conflict(
                    "retry",
                    "max_attempts",
                    "and `max_retries` are both set: choose one",
                )
                .to_string());
            }
            (Some(attempts), None) => settings.max_attempts = attempts,
            (None, Some(retries)) => settings.max_attempts = retries.saturating_add(1),
            (None, None) => {}
        }
        Ok(Self {
            settings,
            body_limit: raw.body_limit,
            wait_for_body: raw.wait_for_body,
            retry_non_idempotent: raw.retry_non_idempotent,
            budget_per_server: raw.budget_per_server,
            max_servers: raw.max_servers,
        })
    }
}

impl RetryConfig {
    /// [`RetryLayer::builder`] with these settings. Set the classifier, the observer or the
    /// replay on it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when an HTTP field is set. The ranges are checked by
    /// [`RetryBuilder::build`].
    pub fn builder(&self) -> Result<RetryBuilder, ConfigError> {
        let http = [
            ("body_limit", self.body_limit.is_some()),
            ("wait_for_body", self.wait_for_body.is_some()),
            ("retry_non_idempotent", self.retry_non_idempotent.is_some()),
            ("budget_per_server", self.budget_per_server.is_some()),
            ("max_servers", self.max_servers.is_some()),
        ];
        if let Some((field, _)) = http.into_iter().find(|(_, set)| *set) {
            return Err(ConfigError::invalid(
                "retry",
                field,
                "applies to HTTP requests only: build with `build_http` or `build_grpc`, or \
                 leave it out",
            ));
        }
        Ok(RetryLayer::builder().settings(self.settings.clone()))
    }

    /// Builds [`builder`](Self::builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`builder`](Self::builder) and [`RetryBuilder::build`].
    pub fn build(&self) -> Result<RetryLayer, ConfigError> {
        self.builder()?.build()
    }

    /// [`RetryLayer::http`] with these settings (HTTP fields included).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_servers` is set without `budget_per_server = true`. The
    /// ranges are checked by [`RetryBuilder::build`].
    pub fn http_builder(
        &self,
    ) -> Result<RetryBuilder<HttpReplay, HttpStatus, (), Plain, ServerScope>, ConfigError> {
        self.apply_http(RetryLayer::http())
    }

    /// Builds [`http_builder`](Self::http_builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`RetryBuilder::build`].
    pub fn build_http(
        &self,
    ) -> Result<RetryLayer<HttpReplay, HttpStatus, (), Plain, ServerScope>, ConfigError> {
        self.http_builder()?.build()
    }

    /// [`RetryLayer::grpc`] with these settings (HTTP fields included).
    ///
    /// # Errors
    ///
    /// As [`http_builder`](Self::http_builder).
    pub fn grpc_builder(
        &self,
    ) -> Result<RetryBuilder<HttpReplay, GrpcStatus, (), Http, ServerScope>, ConfigError> {
        self.apply_http(RetryLayer::grpc())
    }

    /// Builds [`grpc_builder`](Self::grpc_builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`RetryBuilder::build`].
    pub fn build_grpc(
        &self,
    ) -> Result<RetryLayer<HttpReplay, GrpcStatus, (), Http, ServerScope>, ConfigError> {
        self.grpc_builder()?.build()
    }

    /// The settings, the HTTP replay's settings and the budget's scope.
    fn apply_http<C, O, P>(
        &self,
        builder: RetryBuilder<HttpReplay, C, O, P>,
    ) -> Result<RetryBuilder<HttpReplay, C, O, P, ServerScope>, ConfigError> {
        if self.max_servers.is_some() && self.budget_per_server != Some(true) {
            return Err(ConfigError::conflict(
                "retry",
                "max_servers",
                "bounds the budgets per server: set `budget_per_server = true` too, or leave it \
                 out",
            ));
        }
        let mut builder = builder.settings(self.settings.clone());
        if let Some(bytes) = self.body_limit {
            builder = builder.body_limit(bytes);
        }
        if let Some(wait) = self.wait_for_body {
            builder = builder.wait_for_body(wait);
        }
        if let Some(yes) = self.retry_non_idempotent {
            let replay = builder.replay_mut();
            *replay = replay.non_idempotent(yes);
        }
        let scope = (self.budget_per_server == Some(true))
            .then(|| PerKey::new(Authority, self.max_servers.unwrap_or(DEFAULT_MAX_SERVERS)));
        Ok(builder.map_parts(|r, c, o, ()| (r, c, o, scope)))
    }
}

#[cfg(test)]
mod tests;
