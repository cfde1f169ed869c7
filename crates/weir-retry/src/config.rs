//! `RetryConfig`: the retry settings read from a configuration file (feature `serde`), fed
//! through the builder so a file passes the same checks as code.

use weir_core::config::{BackoffSpec, ConfigDuration};
use weir_core::protocol::{Http, Plain};
use weir_core::{Authority, GrpcStatus, HttpStatus};

use crate::budget::RetryBudget;
use crate::builder::{ConfigError, RetryBuilder};
use crate::layer::RetryLayer;
use crate::replay::HttpReplay;
use crate::scope::{DEFAULT_MAX_SERVERS, PerKey};

/// The budget scope of a layer built from a file for HTTP or gRPC: one budget per server when
/// the file sets `budget_per_server = true`, the layer's one budget otherwise.
pub type ServerScope = Option<PerKey<Authority>>;

/// Retry settings, read from a configuration file (TOML, or any serde format).
///
/// Every field is optional: one left out keeps the [builder's default](RetryBuilder), so an
/// empty table builds [`RetryLayer::builder`]'s layer (or [`RetryLayer::http`]'s,
/// [`RetryLayer::grpc`]'s). The names are the builder's methods; durations are strings such as
/// `"250ms"`, `"10s"` or `"2m"` ([`ConfigDuration`]). An unknown field, a malformed value or a
/// value out of its range is an error that names the field.
///
/// | field | type | example |
/// |---|---|---|
/// | `name` | string | `"inventory"` |
/// | `max_attempts` | integer, the first call included | `4` |
/// | `max_retries` | integer, after the first call | `3` |
/// | `backoff` | table ([`BackoffSpec`]) | `{ kind = "exponential", base = "100ms", max = "5s", jitter = "full" }` |
/// | `max_duration` | duration | `"10s"` |
/// | `max_server_delay` | duration | `"30s"` |
/// | `budget` | table ([`BudgetSpec`]) | `{ kind = "ratio", ratio = 0.1, min_per_second = 5, window = "30s" }` |
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
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// The layer's name, in events ([`RetryBuilder::name`]).
    #[serde(default)]
    pub name: Option<String>,
    /// The most calls for one request, the first included ([`RetryBuilder::max_attempts`]).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The most retries after the first call ([`RetryBuilder::max_retries`]).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// The wait before each retry ([`RetryBuilder::backoff`]).
    #[serde(default)]
    pub backoff: Option<BackoffSpec>,
    /// No retry starts later than this after the first call started
    /// ([`RetryBuilder::max_duration`]).
    #[serde(default)]
    pub max_duration: Option<ConfigDuration>,
    /// The longest server-asked delay still retried ([`RetryBuilder::max_server_delay`]).
    #[serde(default)]
    pub max_server_delay: Option<ConfigDuration>,
    /// The retry budget ([`RetryBuilder::budget`]).
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
    /// Seeds the jitter ([`RetryBuilder::seed`]).
    #[serde(default)]
    pub seed: Option<u64>,
    /// HTTP only: request bodies up to this many bytes are kept for replay
    /// ([`RetryBuilder::body_limit`]).
    #[serde(default)]
    pub body_limit: Option<usize>,
    /// HTTP only: whether to wait for a body still being streamed
    /// ([`RetryBuilder::wait_for_body`]).
    #[serde(default)]
    pub wait_for_body: Option<bool>,
    /// HTTP only: `true` retries POST and PATCH without an `Idempotency-Key`, `false` only with
    /// one ([`RetryBuilder::retry_non_idempotent`]).
    #[serde(default)]
    pub retry_non_idempotent: Option<bool>,
    /// HTTP only: one budget per server name ([`RetryBuilder::budget_per_server`]).
    #[serde(default)]
    pub budget_per_server: Option<bool>,
    /// With `budget_per_server`: the most servers with a budget of their own
    /// ([`RetryBuilder::max_servers`]).
    #[serde(default)]
    pub max_servers: Option<usize>,
}

impl RetryConfig {
    /// [`RetryLayer::builder`] with these settings. Set the classifier, the observer or the
    /// replay on it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::HttpOnly`] when an HTTP field is set, [`ConfigError::Conflict`] when
    /// `max_attempts` and `max_retries` both are. The ranges are checked by
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
            return Err(ConfigError::HttpOnly(field));
        }
        self.apply(RetryLayer::builder())
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
    /// [`ConfigError::Conflict`] when `max_attempts` and `max_retries` are both set. The ranges
    /// are checked by [`RetryBuilder::build`].
    pub fn http_builder(
        &self,
    ) -> Result<RetryBuilder<HttpReplay, HttpStatus, (), Plain, ServerScope>, ConfigError> {
        self.apply(RetryLayer::http()).map(|b| self.apply_http(b))
    }

    /// Builds [`http_builder`](Self::http_builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`http_builder`](Self::http_builder) and [`RetryBuilder::build`].
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
        self.apply(RetryLayer::grpc()).map(|b| self.apply_http(b))
    }

    /// Builds [`grpc_builder`](Self::grpc_builder)'s layer.
    ///
    /// # Errors
    ///
    /// As [`grpc_builder`](Self::grpc_builder) and [`RetryBuilder::build`].
    pub fn build_grpc(
        &self,
    ) -> Result<RetryLayer<HttpReplay, GrpcStatus, (), Http, ServerScope>, ConfigError> {
        self.grpc_builder()?.build()
    }

    /// The settings every kind of request has.
    fn apply<R, C, O, P>(
        &self,
        mut builder: RetryBuilder<R, C, O, P>,
    ) -> Result<RetryBuilder<R, C, O, P>, ConfigError> {
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        match (self.max_attempts, self.max_retries) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict("max_attempts", "max_retries"));
            }
            (Some(attempts), None) => builder = builder.max_attempts(attempts),
            (None, Some(retries)) => builder = builder.max_retries(retries),
            (None, None) => {}
        }
        if let Some(backoff) = self.backoff {
            builder = builder.backoff(backoff.to_backoff());
        }
        if let Some(d) = self.max_duration {
            builder = builder.max_duration(d.get());
        }
        if let Some(d) = self.max_server_delay {
            builder = builder.max_server_delay(d.get());
        }
        if let Some(budget) = self.budget {
            builder = builder.budget(budget.to_budget());
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        Ok(builder)
    }

    /// The HTTP replay's settings and the budget's scope.
    fn apply_http<C, O, P>(
        &self,
        mut builder: RetryBuilder<HttpReplay, C, O, P>,
    ) -> RetryBuilder<HttpReplay, C, O, P, ServerScope> {
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
        builder.map_parts(|r, c, o, ()| (r, c, o, scope))
    }
}

/// A [`RetryBudget`] in a configuration file, chosen by `kind`:
///
/// | TOML | budget |
/// |---|---|
/// | `{ kind = "ratio", ratio = 0.2, min_per_second = 10, window = "10s" }` | [`RetryBudget::ratio`] (each field optional: 0.2, 10 per second, 10 s) |
/// | `{ kind = "grpc_throttle", max_tokens = 10, token_ratio = 0.1 }` | [`RetryBudget::grpc_throttle`] (both required) |
/// | `{ kind = "unlimited" }` | [`RetryBudget::unlimited`] |
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BudgetSpec {
    /// Retries may be `ratio` of the requests over the window, plus a floor.
    #[non_exhaustive]
    Ratio {
        /// Retries per request over the window, 0 to 1000 (0.2 when left out).
        #[serde(default)]
        ratio: Option<f64>,
        /// The floor: retries allowed per second whatever the traffic (10 when left out).
        #[serde(default)]
        min_per_second: Option<u32>,
        /// How far back requests and retries are remembered, 1 s to 60 s (10 s when left out).
        #[serde(default)]
        window: Option<ConfigDuration>,
    },
    /// gRPC's `retryThrottling` (gRFC A6).
    #[non_exhaustive]
    GrpcThrottle {
        /// The token count it starts at, 1 to 1000.
        max_tokens: u32,
        /// Tokens a success gives back (above 0).
        token_ratio: f64,
    },
    /// No budget: only the attempts bound retries.
    #[non_exhaustive]
    Unlimited {},
}

impl BudgetSpec {
    /// The [`RetryBudget`] it describes.
    #[must_use]
    pub fn to_budget(&self) -> RetryBudget {
        match *self {
            Self::Ratio {
                ratio,
                min_per_second,
                window,
            } => {
                let budget = ratio.map_or_else(RetryBudget::default, RetryBudget::ratio);
                let budget = min_per_second.map_or(budget, |n| budget.min_per_second(n));
                window.map_or(budget, |window| budget.window(window.get()))
            }
            Self::GrpcThrottle {
                max_tokens,
                token_ratio,
            } => RetryBudget::grpc_throttle(max_tokens, token_ratio),
            Self::Unlimited {} => RetryBudget::unlimited(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use weir_core::{Backoff, Jitter};

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::Full;
    use tokio::time::Instant;
    use tower::{Layer, Service, ServiceExt, service_fn};
    use weir_core::BoxError;

    use super::*;
    use crate::ReplayBody;

    const MS: Duration = Duration::from_millis(1);

    fn parse(text: &str) -> RetryConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse_err(text: &str) -> String {
        toml::from_str::<RetryConfig>(text)
            .expect_err(text)
            .to_string()
    }

    /// A service that always fails, recording when each call started.
    fn failing() -> (
        impl Service<u32, Response = u32, Error = BoxError> + Clone,
        Arc<Mutex<Vec<Instant>>>,
    ) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let service = service_fn(move |_: u32| {
            seen.lock().unwrap().push(Instant::now());
            std::future::ready(Err::<u32, BoxError>("connection reset".into()))
        });
        (service, calls)
    }

    type HttpReq = Request<ReplayBody<Full<Bytes>>>;

    /// An HTTP service answering 503 with these headers, counting its calls.
    fn unavailable(
        headers: &'static [(&'static str, &'static str)],
    ) -> (
        impl Service<HttpReq, Response = Response<Full<Bytes>>, Error = BoxError> + Clone,
        Arc<Mutex<Vec<Instant>>>,
    ) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let service = service_fn(move |_: HttpReq| {
            seen.lock().unwrap().push(Instant::now());
            let mut res = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE);
            for (name, value) in headers {
                res = res.header(*name, *value);
            }
            std::future::ready(Ok(res.body(Full::new(Bytes::new())).unwrap()))
        });
        (service, calls)
    }

    fn post(body: &'static [u8]) -> Request<Full<Bytes>> {
        Request::post("http://upstream/orders")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    fn gaps(calls: &[Instant]) -> Vec<Duration> {
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }

    const FULL: &str = r#"
        name = "inventory"
        max_retries = 4
        backoff = { kind = "linear", base = "100ms", step = "50ms", max = "180ms", jitter = "none" }
        max_duration = "10s"
        max_server_delay = "1s"
        budget = { kind = "grpc_throttle", max_tokens = 10, token_ratio = 0.5 }
        seed = 7
    "#;

    const HTTP: &str = r#"
        body_limit = 4
        wait_for_body = false
        retry_non_idempotent = true
    "#;

    /// A builder's one budget, as a file without `budget_per_server` describes it.
    fn unscoped<R, C, O, P>(
        builder: RetryBuilder<R, C, O, P>,
    ) -> RetryBuilder<R, C, O, P, ServerScope> {
        builder.map_parts(|r, c, o, ()| (r, c, o, None))
    }

    fn expected<R, C, O, P>(builder: RetryBuilder<R, C, O, P>) -> RetryBuilder<R, C, O, P> {
        builder
            .name("inventory")
            .max_attempts(5)
            .backoff(
                Backoff::linear(100 * MS)
                    .step(50 * MS)
                    .max(180 * MS)
                    .jitter(Jitter::None),
            )
            .max_duration(Duration::from_secs(10))
            .max_server_delay(Duration::from_secs(1))
            .budget(RetryBudget::grpc_throttle(10, 0.5))
            .seed(7)
    }

    #[test]
    fn a_full_file_sets_every_setting_of_the_builder() {
        let config = parse(FULL);
        assert_eq!(
            format!("{:?}", config.builder().unwrap()),
            format!("{:?}", expected(RetryLayer::builder()))
        );
        let config = parse(&format!("{FULL}{HTTP}"));
        assert_eq!(
            format!("{:?}", config.http_builder().unwrap()),
            format!(
                "{:?}",
                unscoped(expected(RetryLayer::http()))
                    .body_limit(4)
                    .wait_for_body(false)
                    .retry_non_idempotent()
            )
        );
        assert_eq!(
            format!("{:?}", config.grpc_builder().unwrap()),
            format!(
                "{:?}",
                unscoped(expected(RetryLayer::grpc()))
                    .body_limit(4)
                    .wait_for_body(false)
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_file_retries_as_configured() {
        let (service, calls) = failing();
        let (layer, handle) = parse(FULL).builder().unwrap().build_with_handle().unwrap();
        assert!(layer.layer(service).oneshot(1).await.is_err());
        let calls = calls.lock().unwrap();
        // max_retries = 4: five calls; linear 100, 150, then capped at 180 ms, no jitter.
        assert_eq!(gaps(&calls), [100 * MS, 150 * MS, 180 * MS, 180 * MS]);
        assert_eq!(handle.retries(), 4);
        // The gRPC throttle: 10 tokens, 5 failures took 5, so none is left above the half.
        assert_eq!(handle.available(), Some(0));
        assert!(
            format!("{layer:?}").contains(r#"name: "inventory""#),
            "{layer:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_duration_and_the_server_delay_cap_are_applied() {
        // Retry-After: 1 is within max_server_delay, 1 s; max_duration 2500 ms stops the third
        // retry (it would start at 3 s).
        let config = parse(
            r#"
            max_attempts = 10
            max_server_delay = "1s"
            max_duration = "2500ms"
            "#,
        );
        let (service, calls) = unavailable(&[("retry-after", "1")]);
        let res = config
            .build_http()
            .unwrap()
            .layer(service)
            .oneshot(
                Request::get("http://upstream/")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            gaps(&calls.lock().unwrap()),
            [Duration::from_secs(1), Duration::from_secs(1)]
        );

        // #16.3: Retry-After: 120 is beyond max_server_delay: never shortened, no retry.
        let (service, calls) = unavailable(&[("retry-after", "120")]);
        let res = config
            .build_http()
            .unwrap()
            .layer(service)
            .oneshot(
                Request::get("http://upstream/")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn which_requests_are_retried_follows_the_file() {
        let count = |config: &str, grpc: bool, req: Request<Full<Bytes>>| {
            let config = parse(config);
            async move {
                let (service, calls) = unavailable(&[]);
                let status = if grpc {
                    let layer = config.build_grpc().unwrap();
                    layer.layer(service).oneshot(req).await.unwrap().status()
                } else {
                    let layer = config.build_http().unwrap();
                    layer.layer(service).oneshot(req).await.unwrap().status()
                };
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                calls.lock().unwrap().len()
            }
        };
        // HTTP: a POST is sent once by default, retried with retry_non_idempotent = true.
        assert_eq!(count("", false, post(b"x")).await, 1);
        assert_eq!(
            count("retry_non_idempotent = true", false, post(b"x")).await,
            3
        );
        // gRPC retries every method by default; false keeps it to idempotent calls.
        assert_eq!(count("", true, post(b"x")).await, 3);
        assert_eq!(
            count("retry_non_idempotent = false", true, post(b"x")).await,
            1
        );
        let mut keyed = post(b"x");
        keyed
            .headers_mut()
            .insert("idempotency-key", "order-17".parse().unwrap());
        assert_eq!(count("retry_non_idempotent = false", true, keyed).await, 3);
        // body_limit: a body over the limit is sent once.
        let limited = "retry_non_idempotent = true\nbody_limit = 4";
        assert_eq!(count(limited, false, post(b"1234")).await, 3);
        assert_eq!(count(limited, false, post(b"12345")).await, 1);
    }

    #[test]
    fn an_empty_table_builds_the_defaults() {
        let config = parse("");
        assert_eq!(config, RetryConfig::default());
        assert_eq!(
            format!("{:?}", config.builder().unwrap()),
            format!("{:?}", RetryLayer::builder())
        );
        assert_eq!(
            format!("{:?}", config.http_builder().unwrap()),
            format!("{:?}", unscoped(RetryLayer::http()))
        );
        assert_eq!(
            format!("{:?}", config.grpc_builder().unwrap()),
            format!("{:?}", unscoped(RetryLayer::grpc()))
        );
        assert_eq!(
            format!("{:?}", config.build().unwrap()),
            format!("{:?}", RetryLayer::builder().build().unwrap())
        );
    }

    #[test]
    fn budget_specs_describe_budgets() {
        #[derive(serde::Deserialize)]
        struct Holder {
            b: BudgetSpec,
        }
        let budget = |text: &str| {
            toml::from_str::<Holder>(&format!("b = {text}"))
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .b
                .to_budget()
        };
        assert_eq!(budget(r#"{ kind = "ratio" }"#), RetryBudget::default());
        assert_eq!(
            budget(r#"{ kind = "ratio", ratio = 0.1, min_per_second = 5, window = "30s" }"#),
            RetryBudget::ratio(0.1)
                .min_per_second(5)
                .window(Duration::from_secs(30))
        );
        assert_eq!(
            budget(r#"{ kind = "ratio", window = "30s" }"#),
            RetryBudget::default().window(Duration::from_secs(30))
        );
        assert_eq!(
            budget(r#"{ kind = "grpc_throttle", max_tokens = 100, token_ratio = 1 }"#),
            RetryBudget::grpc_throttle(100, 1.0)
        );
        assert_eq!(
            budget(r#"{ kind = "unlimited" }"#),
            RetryBudget::unlimited()
        );
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let err = parse_err("max_retry = 3");
        assert!(err.contains("unknown field `max_retry`"), "{err}");
        let err = parse_err(r#"budget = { kind = "ratio", floor = 5 }"#);
        assert!(err.contains("unknown field `floor`"), "{err}");
        let err = parse_err(r#"budget = { kind = "unlimited", ratio = 1 }"#);
        assert!(err.contains("unknown field `ratio`"), "{err}");
        let err = parse_err(r#"backoff = { kind = "linear", base = "1s", factor = 2 }"#);
        assert!(err.contains("unknown field `factor`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        // Out of the builder's range, or against the file's own rules.
        for (text, message) in [
            ("max_attempts = 0", "`max_attempts` must be at least 1"),
            (
                r#"budget = { kind = "ratio", ratio = 1500.0 }"#,
                "the budget's `ratio` must be finite and within 0..=1000",
            ),
            (
                r#"budget = { kind = "ratio", window = "0s" }"#,
                "the budget's `window` must be within 1 s..=60 s",
            ),
            (
                r#"budget = { kind = "grpc_throttle", max_tokens = 0, token_ratio = 0.1 }"#,
                "`max_tokens` must be within 1..=1000",
            ),
            (
                r#"budget = { kind = "grpc_throttle", max_tokens = 10, token_ratio = 0 }"#,
                "`token_ratio` must be finite and above 0",
            ),
            (
                "max_attempts = 3\nmax_retries = 2",
                "retry: `max_attempts` and `max_retries` are both set: choose one",
            ),
            (
                "body_limit = 1024",
                "`body_limit` applies to HTTP requests only",
            ),
            (
                "wait_for_body = true",
                "`wait_for_body` applies to HTTP requests only",
            ),
            (
                "retry_non_idempotent = false",
                "`retry_non_idempotent` applies to HTTP requests only",
            ),
        ] {
            let err = parse(text).build().expect_err(text).to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
        let err = parse("max_attempts = 0")
            .build_http()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`max_attempts`"), "{err}");
        parse("body_limit = 1024").build_http().unwrap();

        // Refused while reading the file: the error quotes the line with the field.
        for (text, words) in [
            (
                r#"max_duration = "1.5s""#,
                &["max_duration", "invalid duration \"1.5s\""][..],
            ),
            ("max_server_delay = 30", &["max_server_delay", "250ms"]),
            ("max_retries = -1", &["max_retries"]),
            ("body_limit = \"64KiB\"", &["body_limit"]),
            (
                r#"budget = { kind = "token_bucket" }"#,
                &["budget", "unknown variant `token_bucket`"],
            ),
            (
                r#"budget = { kind = "grpc_throttle", max_tokens = 10 }"#,
                &["budget", "missing field `token_ratio`"],
            ),
            (
                r#"backoff = { kind = "exponential", base = "1s", factor = 0 }"#,
                &[
                    "backoff",
                    "factor must be a finite number of at least 1, got 0",
                ],
            ),
            (
                r#"backoff = { kind = "exponential", base = "1s", jitter = { proportional = 101 } }"#,
                &["backoff", "percentage from 0 to 100, got 101"],
            ),
            (
                r#"backoff = { kind = "constant", base = "1s", jitter = "random" }"#,
                &["backoff", "unknown variant `random`"],
            ),
            (
                r#"backoff = { kind = "constant" }"#,
                &["backoff", "missing field `base`"],
            ),
        ] {
            let err = parse_err(text);
            for word in words {
                assert!(err.contains(word), "{text}: {word:?} not in {err}");
            }
        }
    }
}
