//! The presets' settings read from a configuration file: serde structs that feed the builders,
//! so a file goes through the same checks as code.

use std::fmt;

use http::StatusCode;
use serde::Deserialize;
use tower_layer::Identity;
use weir_chaos::{ChaosConfig, OptionalChaosLayer};
use weir_core::config::ConfigDuration;
use weir_core::inspect::Registry;
use weir_core::protocol::Http;
use weir_core::response::ErrorResponseLayer;
use weir_load_shed::Uniform;
use weir_rate_limit::{ConfigLayer, RateLimitConfig};
use weir_timeout::BelowFloor;

use crate::optional::OptionalLayer;
use weir_core::ConfigError;

use crate::presets::{
    BreakerInside, ClientBuilder, ClientStack, SERVER, ServerBuilder, ServerStack, Single,
};

/// The [`ServerStack`] a [`ServerConfig`] builds: its rate limit is there when the file has a
/// `rate_limit` table, its chaos layer (in HTTP mode) when it has a `chaos` table.
pub type ConfigServerStack =
    ServerStack<OptionalLayer<ConfigLayer>, Uniform, (), Identity, OptionalChaosLayer<Http>>;

/// The [`ClientStack`] a [`ClientConfig`] builds (of the mode `K`, the order `Ord` and the
/// observer `O` the code chose): its chaos layer (in plain mode) is there when the file has a
/// `chaos` table.
pub type ConfigClientStack<K = Single, Ord = BreakerInside, O = ()> =
    ClientStack<K, Ord, O, Identity, OptionalChaosLayer>;

/// The chaos slot of a stack built from a file: the `chaos` table's layer built by `build`
/// (in the table's name, `chaos.status`, for a broken rule) and shown in `registry`, or none.
fn chaos_slot<P>(
    table: Option<&ChaosConfig>,
    registry: Option<&Registry>,
    build: impl FnOnce(&ChaosConfig) -> Result<weir_chaos::ChaosBuilder<P>, ConfigError>,
) -> Result<OptionalChaosLayer<P>, ConfigError> {
    let Some(table) = table else {
        return Ok(OptionalChaosLayer::new(None));
    };
    let layer = build(table).and_then(|builder| match registry {
        Some(registry) => builder.registry(registry).build(),
        None => builder.build(),
    });
    layer
        .map(|layer| OptionalChaosLayer::new(Some(layer)))
        .map_err(|e| e.in_table("chaos"))
}

/// The settings of a [`ServerStack`], read from a file (any serde format); every field is
/// optional and an absent one keeps the preset's default (see [`ServerBuilder`]).
///
/// | field | type | example |
/// |---|---|---|
/// | `timeout` | duration | `"10s"` |
/// | `max_in_flight` | integer | `500` |
/// | `expose_deadline` | bool | `true` |
/// | `incoming_floor` | duration | `"50ms"` (a client's shorter deadline is refused at once, or raised: [`ServerBuilder::incoming_floor`]) |
/// | `below_floor` | `"reject"` (the default) or `"raise"` ([`BelowFloor`]) | `"raise"` (only with `incoming_floor`) |
/// | `rate_limit` | table ([`RateLimitConfig`](crate::rate_limit::RateLimitConfig)) | `{ key = "api_key", quota = { rate = 100, per = "1s" } }` |
/// | `refusal_body` | `"text"` or `"problem_json"` ([`RefusalBodyConfig`]) | `"problem_json"` |
/// | `timeout_status` | integer, 4xx or 5xx | `408` |
/// | `missing_key_status` | integer, 4xx or 5xx | `400` |
/// | `exempt_paths` | list of paths | `["/healthz/live", "/healthz/ready"]` (default: `/livez`, `/readyz`, `/startupz`) |
/// | `chaos` | table ([`ChaosConfig`](crate::chaos::ChaosConfig)) | `{ status = 0.01, latency = 0.1 }` |
///
/// **`chaos`**: absent, the stack has no chaos layer to reach (no handle, no switch to turn on,
/// nothing registered; the slot's stand-in costs the disabled path's check,
/// [`OptionalChaosLayer`](crate::chaos::OptionalChaosLayer)); present, a chaos layer in HTTP mode is built in the stack's chaos slot, innermost
/// (around the handler, inside the timeout; the health probes bypass it), **disabled unless the
/// table says `enabled = true`** and **deaf to the `x-weir-fault` header unless it says
/// `header = true`**: a file copied from staging to production injects nothing there, and lets
/// no client ask for faults. Its handle: `stack.chaos_layer().handle()` (and in a registry, under
/// the table's `name`, with `enable` and `disable` actions).
///
/// Durations are strings: a whole number and a unit, `us`, `ms`, `s`, `m`, `h` or `d`
/// (`"250ms"`, `"10s"`, `"2m"`; see [`ConfigDuration`]). An unknown field is an error.
///
/// ```
/// use std::time::Duration;
/// use weir::ServerConfig;
///
/// let config: ServerConfig = toml::from_str(r#"
///     timeout = "5s"
///     max_in_flight = 200
///
///     [rate_limit]
///     key = "api_key"
///     quota = { rate = 100, per = "1s", burst = 20 }
/// "#).unwrap();
/// let stack = config.build().unwrap();
/// assert_eq!(stack.timeout(), Duration::from_secs(5));
/// assert_eq!(stack.max_in_flight(), 200);
/// assert!(stack.rate_limit().get().is_some());
/// assert_eq!(stack.exempt_paths(), weir::DEFAULT_EXEMPT_PATHS);
///
/// let config: ServerConfig = toml::from_str(r#"exempt_paths = ["/healthz"]"#).unwrap();
/// assert_eq!(config.build().unwrap().exempt_paths(), ["/healthz"]);
///
/// let err = toml::from_str::<ServerConfig>("rate_limit = { quota = { rate = 0, per = \"1s\" } }")
///     .unwrap()
///     .build()
///     .unwrap_err();
/// // The field is named inside its table.
/// assert_eq!(err.pattern(), "rate limit");
/// assert_eq!(err.field(), "rate_limit.quota.rate");
/// assert!(err.to_string().contains("must be at least 1"));
/// ```
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The longest a request may run.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// The cap on calls in flight.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Whether every request's `Deadline` is stored in its extensions.
    #[serde(default)]
    pub expose_deadline: Option<bool>,
    /// A floor under a client's deadline: a shorter one is refused at once or raised
    /// ([`ServerBuilder::incoming_floor`]). Greater than zero, at most `timeout`.
    #[serde(default)]
    pub incoming_floor: Option<ConfigDuration>,
    /// What `incoming_floor` does with a shorter deadline (unset: refuse it). Only with
    /// `incoming_floor`.
    #[serde(default)]
    pub below_floor: Option<BelowFloor>,
    /// A rate limit, between the response mapping and the load shedder.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// The body of refusals: plain text (the default) or RFC 9457 problem details.
    #[serde(default)]
    pub refusal_body: Option<RefusalBodyConfig>,
    /// The HTTP status of a timeout (504 by default).
    #[serde(default)]
    pub timeout_status: Option<u16>,
    /// The HTTP status of a request refused for having no key (401 by default).
    #[serde(default)]
    pub missing_key_status: Option<u16>,
    /// The health probe paths that skip the rate limit and the load shedder
    /// ([`ServerBuilder::exempt_paths`]; `/livez`, `/readyz` and `/startupz` by default, `[]`
    /// for none).
    #[serde(default)]
    pub exempt_paths: Option<Vec<String>>,
    /// A chaos layer in the stack's chaos slot (HTTP mode), disabled unless the table says
    /// `enabled = true`, the fault header ignored unless `header = true`; absent, no chaos layer.
    #[serde(default)]
    pub chaos: Option<ChaosConfig>,
}

/// The body of a server's refusals, in a [`ServerConfig`].
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalBodyConfig {
    /// The reason in plain text (`rate limited`): [`plain_text_body`](crate::core::response::plain_text_body).
    Text,
    /// RFC 9457 problem details: [`problem_json_body`](crate::core::response::problem_json_body).
    ProblemJson,
}

/// `status` as a refusal's status for `field`: a 4xx or 5xx.
fn error_status(field: &'static str, status: u16) -> Result<StatusCode, ConfigError> {
    StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .ok_or_else(|| {
            ConfigError::out_of_range(
                SERVER,
                field,
                format!("must be a 4xx or 5xx status, not {status}"),
            )
        })
}

impl ServerConfig {
    /// A [`ServerBuilder`] with these settings, the preset's defaults for the others. The
    /// `chaos` table is not in it (the chaos slot is filled on the built stack): see
    /// [`chaos_layer`](Self::chaos_layer).
    ///
    /// # Errors
    ///
    /// The `rate_limit` table breaks one of its rules (the field is named inside the table,
    /// `rate_limit.quota.rate`), a `timeout_status` or `missing_key_status` is not a 4xx or
    /// 5xx, or `below_floor` is given without `incoming_floor`.
    pub fn builder(&self) -> Result<ServerBuilder<OptionalLayer<ConfigLayer>>, ConfigError> {
        self.builder_with(None)
    }

    /// As [`builder`](Self::builder), every stateful layer shown in `registry` (a status page,
    /// a metrics exporter): the file's rate limit (under its `name`, `"rate_limit"` by
    /// default) when built here, and the load shedder when the builder builds (see
    /// [`ServerBuilder::registry`]).
    ///
    /// # Errors
    ///
    /// As [`builder`](Self::builder), and a rate limit whose name `registry` holds already.
    pub fn builder_in(
        &self,
        registry: &Registry,
    ) -> Result<ServerBuilder<OptionalLayer<ConfigLayer>>, ConfigError> {
        self.builder_with(Some(registry))
    }

    /// As [`build`](Self::build), with [`builder_in`](Self::builder_in): the chaos layer too,
    /// under its table's `name`.
    ///
    /// # Errors
    ///
    /// As [`builder_in`](Self::builder_in) and [`ServerBuilder::build`], and a broken rule of
    /// the `chaos` table or its name already in `registry`.
    pub fn build_in(&self, registry: &Registry) -> Result<ConfigServerStack, ConfigError> {
        let stack = self.builder_in(registry)?.build()?;
        Ok(stack.chaos(self.chaos_with(Some(registry))?))
    }

    /// The stack's chaos slot from the `chaos` table: a chaos layer in HTTP mode, or none when
    /// the file has no table. [`build`](Self::build) fills the slot with it; with
    /// [`builder`](Self::builder), fill it yourself (`builder.build()?.chaos(config.chaos_layer()?)`).
    ///
    /// # Errors
    ///
    /// A broken rule of the table, named inside it (`chaos.status`).
    pub fn chaos_layer(&self) -> Result<OptionalChaosLayer<Http>, ConfigError> {
        self.chaos_with(None)
    }

    fn chaos_with(
        &self,
        registry: Option<&Registry>,
    ) -> Result<OptionalChaosLayer<Http>, ConfigError> {
        chaos_slot(self.chaos.as_ref(), registry, |table| {
            Ok(table.http_builder())
        })
    }

    fn builder_with(
        &self,
        registry: Option<&Registry>,
    ) -> Result<ServerBuilder<OptionalLayer<ConfigLayer>>, ConfigError> {
        let rate_limit = self
            .rate_limit
            .as_ref()
            .map(|config| {
                let builder = config.builder()?;
                match registry {
                    Some(registry) => builder.registry(registry).build(),
                    None => builder.build(),
                }
            })
            .transpose()
            .map_err(|e| e.in_table("rate_limit"))?;
        let mut builder = ServerStack::builder().with_rate_limit(OptionalLayer::new(rate_limit));
        if let Some(registry) = registry {
            builder = builder.registry(registry);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout.get());
        }
        if let Some(max) = self.max_in_flight {
            builder = builder.max_in_flight(max);
        }
        if let Some(expose) = self.expose_deadline {
            builder = builder.expose_deadline(expose);
        }
        match (self.incoming_floor, self.below_floor) {
            (Some(floor), below) => {
                builder = builder.incoming_floor(floor.get(), below.unwrap_or(BelowFloor::Reject));
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    SERVER,
                    "incoming_floor",
                    "must be given with `below_floor`",
                ));
            }
            (None, None) => {}
        }
        if let Some(paths) = &self.exempt_paths {
            builder = builder.exempt_paths(paths.iter().cloned());
        }
        let mut errors = ErrorResponseLayer::new();
        if let Some(RefusalBodyConfig::ProblemJson) = self.refusal_body {
            errors = errors.problem_json();
        }
        if let Some(status) = self.timeout_status {
            errors = errors.timeout_status(error_status("timeout_status", status)?);
        }
        if let Some(status) = self.missing_key_status {
            errors = errors.missing_key_status(error_status("missing_key_status", status)?);
        }
        Ok(builder.error_responses(errors))
    }

    /// Builds the [`ServerStack`]: [`builder`](Self::builder), then [`ServerBuilder::build`],
    /// and the `chaos` table's layer in its chaos slot ([`chaos_layer`](Self::chaos_layer)).
    ///
    /// # Errors
    ///
    /// A rule of the rate limit, of [`ServerBuilder::build`] or of the `chaos` table (each
    /// names its field).
    pub fn build(&self) -> Result<ConfigServerStack, ConfigError> {
        Ok(self.builder()?.build()?.chaos(self.chaos_layer()?))
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("expose_deadline", &self.expose_deadline)
            .field("incoming_floor", &self.incoming_floor)
            .field("below_floor", &self.below_floor)
            .field("rate_limit", &self.rate_limit)
            .field("refusal_body", &self.refusal_body)
            .field("timeout_status", &self.timeout_status)
            .field("missing_key_status", &self.missing_key_status)
            .field("exempt_paths", &self.exempt_paths)
            .field("chaos", &self.chaos)
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
/// | `chaos` | table ([`ChaosConfig`](crate::chaos::ChaosConfig)) | `{ latency = 0.1, stall = 0.001 }` |
///
/// **`chaos`**: absent, the stack has no chaos layer to reach (as for [`ServerConfig`]); present,
/// a chaos layer is built in
/// the stack's chaos slot, innermost (around the transport, inside the attempt timeout, so the
/// retry, its budget and the breaker see its faults), **disabled unless the table says
/// `enabled = true`**. It is in plain mode (the stack takes any transport): added latency and
/// stalls (cut by the attempt timeout); the HTTP fields (`status`, `body`, `header`,
/// `route_prefix`) are refused, and an error fault needs the transport's error type, which is
/// code: build that layer with `ChaosLayer::builder().error(..)` and
/// [`ClientStack::chaos`]. Its handle: `stack.chaos_layer().handle()`.
///
/// Durations are strings, as in [`ServerConfig`]. An unknown field is an error. The retry
/// budget, [`per_authority`](ClientBuilder::per_authority) and
/// [`breaker_outside_retry`](ClientBuilder::breaker_outside_retry) are chosen in code, on the
/// builder that [`builder`](Self::builder) returns (they change the stack's type). To go
/// further than the preset, build each layer from its own file table
/// ([`RetryConfig`](crate::retry::RetryConfig),
/// [`CircuitBreakerConfig`](crate::circuit_breaker::CircuitBreakerConfig),
/// [`BulkheadSettings`](crate::bulkhead::BulkheadSettings),
/// [`TimeoutConfig`](crate::timeout::TimeoutConfig)) and stack them with `ServiceBuilder`.
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
#[non_exhaustive]
pub struct ClientConfig {
    /// The total timeout, across retries.
    #[serde(default)]
    pub total_timeout: Option<ConfigDuration>,
    /// The timeout of each attempt.
    #[serde(default)]
    pub attempt_timeout: Option<ConfigDuration>,
    /// Retries after the first attempt.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// The breaker's failure rate, in percent.
    #[serde(default)]
    pub failure_rate: Option<f64>,
    /// The calls the breaker's window needs before it judges the rate.
    #[serde(default)]
    pub minimum_calls: Option<u32>,
    /// The breaker's sampling window.
    #[serde(default)]
    pub sampling_window: Option<ConfigDuration>,
    /// How long the breaker stays open.
    #[serde(default)]
    pub open_duration: Option<ConfigDuration>,
    /// The bulkhead's cap on concurrent calls.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// A chaos layer in the stack's chaos slot (plain mode: latency and stalls), disabled
    /// unless the table says `enabled = true`; absent, no chaos layer.
    #[serde(default)]
    pub chaos: Option<ChaosConfig>,
}

impl ClientConfig {
    /// A [`ClientBuilder`] with these settings, the preset's defaults for the others. The
    /// `chaos` table is not in it (the chaos slot is filled on the built stack): see
    /// [`chaos_layer`](Self::chaos_layer).
    ///
    /// # Errors
    ///
    /// None today (every rule is checked by [`ClientBuilder::build`]); a `Result` so that
    /// settings checked while reading can be added.
    pub fn builder(&self) -> Result<ClientBuilder, ConfigError> {
        let mut builder = ClientStack::builder();
        if let Some(d) = self.total_timeout {
            builder = builder.total_timeout(d.get());
        }
        if let Some(d) = self.attempt_timeout {
            builder = builder.attempt_timeout(d.get());
        }
        if let Some(d) = self.sampling_window {
            builder = builder.sampling_window(d.get());
        }
        if let Some(d) = self.open_duration {
            builder = builder.open_duration(d.get());
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
    /// then [`ClientBuilder::build`], and the `chaos` table's layer in its chaos slot
    /// ([`chaos_layer`](Self::chaos_layer)).
    ///
    /// # Errors
    ///
    /// A rule of [`ClientBuilder::build`] or of the `chaos` table (each names its field).
    pub fn build(&self) -> Result<ConfigClientStack, ConfigError> {
        Ok(self.builder()?.build()?.chaos(self.chaos_layer()?))
    }

    /// As [`build`](Self::build), the retry layer, the breaker, the bulkhead (see
    /// [`ClientBuilder::registry`]) and the chaos layer (under its table's `name`) shown in
    /// `registry`.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and a name `registry` holds already.
    pub fn build_in(&self, registry: &Registry) -> Result<ConfigClientStack, ConfigError> {
        let stack = self.builder()?.registry(registry).build()?;
        Ok(stack.chaos(self.chaos_with(Some(registry))?))
    }

    /// The stack's chaos slot from the `chaos` table: a chaos layer in plain mode (latency and
    /// stalls), or none when the file has no table. [`build`](Self::build) fills the slot with
    /// it; with [`builder`](Self::builder), fill it yourself
    /// (`builder.per_authority().build()?.chaos(config.chaos_layer()?)`).
    ///
    /// # Errors
    ///
    /// A broken rule of the table, named inside it (`chaos.latency`), an HTTP-only field
    /// among them (`chaos.status`).
    pub fn chaos_layer(&self) -> Result<OptionalChaosLayer, ConfigError> {
        self.chaos_with(None)
    }

    fn chaos_with(&self, registry: Option<&Registry>) -> Result<OptionalChaosLayer, ConfigError> {
        chaos_slot(self.chaos.as_ref(), registry, ChaosConfig::builder)
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
            .field("chaos", &self.chaos)
            .finish()
    }
}
