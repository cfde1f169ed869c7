//! `CircuitBreakerConfig`: the breaker's settings read from a configuration file (feature
//! `serde`), fed through the builder so a file passes the same checks as code.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use weir_core::MissingKey;
use weir_core::config::{BackoffSpec, ConfigDuration, KeySpec};

use crate::builder::{CircuitBreakerBuilder, ConfigError, KeyedCircuitBreakerBuilder};
use crate::layer::{CircuitBreakerLayer, KeyedCircuitBreakerLayer};

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
/// use weir_core::HttpStatus;
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
    /// [`ConfigError::Conflict`] when `count_window` and `time_window`, or `open_duration` and
    /// `open_backoff`, are both set. The ranges are checked by the builder's `build()`.
    pub fn builder(&self) -> Result<CircuitBreakerBuilder, ConfigError> {
        if self.count_window.is_some() && self.time_window.is_some() {
            return Err(ConfigError::Conflict("count_window", "time_window"));
        }
        if self.open_duration.is_some() && self.open_backoff.is_some() {
            return Err(ConfigError::Conflict("open_duration", "open_backoff"));
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
    /// [`ConfigError::KeyedSetting`] when a keyed field (`key`, `max_keys`, `idle_timeout`,
    /// `missing_key`) is set, else as [`builder`](Self::builder) and
    /// [`CircuitBreakerBuilder::build`].
    pub fn build(&self) -> Result<CircuitBreakerLayer, ConfigError> {
        if let Some(field) = self.keyed_field() {
            return Err(ConfigError::KeyedSetting(field));
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
    /// [`ConfigError::KeyedBackpressure`] when `backpressure = true`. The ranges are checked by
    /// [`KeyedCircuitBreakerBuilder::build`].
    pub fn keyed<C, O>(
        &self,
        builder: CircuitBreakerBuilder<C, O>,
    ) -> Result<KeyedCircuitBreakerBuilder<KeySpec, C, O>, ConfigError> {
        if self.backpressure == Some(true) {
            return Err(ConfigError::KeyedBackpressure);
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
mod tests {
    use std::time::Duration;
    use weir_core::{Backoff, Jitter};

    use tower::{Layer, ServiceExt, service_fn};
    use weir_core::{BoxError, Error};

    use super::*;
    use crate::State;

    fn parse(text: &str) -> CircuitBreakerConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse_err(text: &str) -> String {
        toml::from_str::<CircuitBreakerConfig>(text)
            .expect_err(text)
            .to_string()
    }

    fn build_err(text: &str) -> String {
        parse(text).build().expect_err(text).to_string()
    }

    /// A service that fails when asked to.
    fn flaky() -> impl tower::Service<bool, Response = &'static str, Error = BoxError> + Clone {
        service_fn(|fail: bool| async move {
            if fail {
                Err::<_, BoxError>("down".into())
            } else {
                Ok("ok")
            }
        })
    }

    const FULL: &str = r#"
        name = "inventory"
        count_window = 10
        failure_rate = 40
        consecutive_failures = 3
        slow_calls = { threshold = "2s", rate = 80.5 }
        minimum_calls = 5
        open_backoff = { kind = "exponential", base = "4s", factor = 3, max = "1m", jitter = "none" }
        half_open_probes = 2
        max_half_open_wait = "20s"
        backpressure = true
        seed = 7
    "#;

    #[test]
    fn a_full_file_sets_every_setting_of_the_builder() {
        let config = parse(FULL);
        let expected = CircuitBreakerLayer::builder()
            .name("inventory")
            .count_window(10)
            .failure_rate(40.0)
            .consecutive_failures(3)
            .slow_calls(Duration::from_secs(2), 80.5)
            .minimum_calls(5)
            .open_backoff(
                Backoff::exponential(Duration::from_secs(4))
                    .factor(3.0)
                    .max(Duration::from_secs(60)),
            )
            .half_open_probes(2)
            .max_half_open_wait(Duration::from_secs(20))
            .backpressure()
            .seed(7);
        assert_eq!(
            format!("{:?}", config.builder().unwrap()),
            format!("{expected:?}")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_file_builds_a_breaker_that_behaves_as_configured() {
        let mut config = parse(FULL);
        config.backpressure = None; // rejections are easier to see than waits
        let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
        let service = layer.layer(flaky());

        // consecutive_failures = 3 opens before the minimum of 5 calls.
        for _ in 0..3 {
            assert!(service.clone().oneshot(true).await.is_err());
        }
        assert_eq!(handle.state(), State::Open);
        // open_backoff: the first opening lasts the base, 4 s (no jitter).
        assert_eq!(
            handle.snapshot().open_remaining(),
            Some(Duration::from_secs(4))
        );
        let err = service.clone().oneshot(false).await.unwrap_err();
        let weir = Error::find(&*err).expect("a weir rejection");
        assert!(weir.is_circuit_open());
        assert_eq!(weir.layer(), Some("inventory"));

        // Half-open with 2 probes: one failed probe re-opens, for base × factor = 12 s.
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(service.clone().oneshot(true).await.is_err());
        assert_eq!(handle.state(), State::Open);
        assert_eq!(
            handle.snapshot().open_remaining(),
            Some(Duration::from_secs(12))
        );

        // Two good probes close it.
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(service.clone().oneshot(false).await.unwrap(), "ok");
        assert_eq!(handle.state(), State::HalfOpen);
        assert_eq!(service.clone().oneshot(false).await.unwrap(), "ok");
        assert_eq!(handle.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_rate_and_a_time_window_trip_as_configured() {
        let config = parse(
            r#"
            time_window = { size = "10s", buckets = 10 }
            failure_rate = 50
            minimum_calls = 4
            open_duration = "30s"
            "#,
        );
        let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
        let service = layer.layer(flaky());
        // Failures older than the 10 s window do not count.
        service.clone().oneshot(true).await.unwrap_err();
        service.clone().oneshot(true).await.unwrap_err();
        tokio::time::advance(Duration::from_secs(11)).await;
        for fail in [false, false, true] {
            let _ = service.clone().oneshot(fail).await;
        }
        assert_eq!(handle.state(), State::Closed, "1 failure in 3 calls");
        service.clone().oneshot(true).await.unwrap_err();
        assert_eq!(handle.state(), State::Open, "2 failures in 4 calls");
        assert_eq!(
            handle.snapshot().open_remaining(),
            Some(Duration::from_secs(30))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_false_leaves_only_consecutive_failures() {
        let config = parse(
            r#"
            failure_rate = false
            consecutive_failures = 4
            count_window = 4
            minimum_calls = 2
            "#,
        );
        let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
        let service = layer.layer(flaky());
        for fail in [true, true, true, false, true, true, true] {
            let _ = service.clone().oneshot(fail).await;
        }
        assert_eq!(
            handle.state(),
            State::Closed,
            "6 failures in 7 calls, never 4 in a row"
        );
        service.clone().oneshot(true).await.unwrap_err();
        assert_eq!(handle.state(), State::Open);
        assert_eq!(
            format!("{:?}", config.builder().unwrap()),
            format!(
                "{:?}",
                CircuitBreakerLayer::consecutive_failures(4)
                    .count_window(4)
                    .minimum_calls(2)
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_open_the_circuit() {
        let config = parse(
            r#"
            slow_calls = { threshold = "1s", rate = 50 }
            minimum_calls = 2
            "#,
        );
        let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
        let service = layer.layer(service_fn(|delay: u64| async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok::<_, BoxError>(())
        }));
        service.clone().oneshot(10).await.unwrap();
        service.clone().oneshot(1_500).await.unwrap();
        assert_eq!(handle.state(), State::Open);
        assert_eq!(handle.snapshot().slow_calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn keyed_breakers_use_the_key_and_its_bounds() {
        let config = parse(
            r#"
            consecutive_failures = 2
            key = { header = "x-tenant" }
            max_keys = 100
            idle_timeout = "1m"
            missing_key = "reject"
            "#,
        );
        let expected = CircuitBreakerLayer::builder()
            .consecutive_failures(2)
            .keyed(KeySpec::Header(http::HeaderName::from_static("x-tenant")))
            .max_keys(100)
            .idle_timeout(Duration::from_secs(60))
            .missing_key(MissingKey::Reject);
        let keyed = config.keyed(config.builder().unwrap()).unwrap();
        assert_eq!(format!("{keyed:?}"), format!("{expected:?}"));

        let (layer, handle) = keyed.build_with_handle().unwrap();
        let service = layer.layer(service_fn(|req: http::Request<bool>| async move {
            if *req.body() {
                Err::<(), BoxError>("down".into())
            } else {
                Ok(())
            }
        }));
        let request = |tenant: Option<&str>, fail: bool| {
            let mut req = http::Request::new(fail);
            if let Some(tenant) = tenant {
                req.headers_mut()
                    .insert("x-tenant", tenant.parse().unwrap());
            }
            req
        };
        for _ in 0..2 {
            service
                .clone()
                .oneshot(request(Some("acme"), true))
                .await
                .unwrap_err();
        }
        let err = service
            .clone()
            .oneshot(request(Some("acme"), false))
            .await
            .unwrap_err();
        assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
        service
            .clone()
            .oneshot(request(Some("globex"), false))
            .await
            .unwrap();
        // (max_keys bounds each of the map's shards, so it is not two keys exactly: the bound
        // itself is `weir_core::KeyedMap`'s, tested there.)
        let mut states = Vec::new();
        handle.for_each(|key, snapshot| states.push((format!("{key:?}"), snapshot.state())));
        states.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            states,
            [
                (r#"Header("acme")"#.to_owned(), State::Open),
                (r#"Header("globex")"#.to_owned(), State::Closed),
            ]
        );
        // missing_key = "reject": no header, no call.
        let err = service
            .clone()
            .oneshot(request(None, false))
            .await
            .unwrap_err();
        assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    }

    #[test]
    fn an_empty_table_builds_the_defaults() {
        let config = parse("");
        assert_eq!(config, CircuitBreakerConfig::default());
        assert_eq!(
            format!("{:?}", config.builder().unwrap()),
            format!("{:?}", CircuitBreakerLayer::builder())
        );
        assert_eq!(
            format!("{:?}", config.build().unwrap()),
            format!("{:?}", CircuitBreakerLayer::new())
        );
        // Keyed: by authority, with the keyed builder's defaults.
        assert_eq!(
            format!("{:?}", config.keyed(config.builder().unwrap()).unwrap()),
            format!(
                "{:?}",
                CircuitBreakerLayer::builder().keyed(KeySpec::Authority)
            )
        );
        config.build_keyed().unwrap();
    }

    #[test]
    fn backoff_specs_describe_whole_backoffs() {
        #[derive(serde::Deserialize)]
        struct Holder {
            b: BackoffSpec,
        }
        let backoff = |text: &str| {
            toml::from_str::<Holder>(&format!("b = {text}"))
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .b
                .to_backoff()
        };
        let s = Duration::from_secs;
        assert_eq!(
            backoff(r#"{ kind = "constant", base = "5s" }"#),
            Backoff::constant(s(5))
        );
        assert_eq!(
            backoff(
                r#"{ kind = "linear", base = "5s", step = "1s", max = "1m", jitter = "equal" }"#
            ),
            Backoff::linear(s(5))
                .step(s(1))
                .max(s(60))
                .jitter(Jitter::Equal)
        );
        assert_eq!(
            backoff(
                r#"{ kind = "exponential", base = "1s", factor = 1.5, jitter = { proportional = 20 } }"#
            ),
            Backoff::exponential(s(1))
                .factor(1.5)
                .jitter(Jitter::Proportional(20))
        );
        assert_eq!(
            backoff(r#"{ kind = "exponential", base = "1s", jitter = "decorrelated" }"#),
            Backoff::exponential(s(1)).jitter(Jitter::Decorrelated)
        );
        assert_eq!(
            backoff(r#"{ kind = "constant", base = "1s", jitter = "full" }"#).jitter_mode(),
            Jitter::Full
        );
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let err = parse_err("failure_rat = 50");
        assert!(err.contains("unknown field `failure_rat`"), "{err}");
        let err = parse_err(r#"time_window = { size = "10s", buckets = 10, slide = true }"#);
        assert!(err.contains("unknown field `slide`"), "{err}");
        let err = parse_err(r#"open_backoff = { kind = "constant", base = "1s", factor = 2 }"#);
        assert!(err.contains("unknown field `factor`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        // Out of the builder's range.
        for (text, field) in [
            ("failure_rate = 150", "failure_rate must be a percentage"),
            ("failure_rate = 0", "failure_rate must be a percentage"),
            ("count_window = 0", "count_window must hold"),
            ("minimum_calls = 0", "minimum_calls must be at least 1"),
            (
                "consecutive_failures = 0",
                "consecutive_failures must be at least 1",
            ),
            (
                "half_open_probes = 0",
                "half_open_probes must be at least 1",
            ),
            (
                r#"max_half_open_wait = "0s""#,
                "max_half_open_wait must be above zero",
            ),
            (r#"open_duration = "0s""#, "open_duration"),
            (
                r#"open_backoff = { kind = "exponential", base = "0s" }"#,
                "open_backoff's base",
            ),
            (
                r#"slow_calls = { threshold = "1s", rate = 100.5 }"#,
                "slow_calls' rate",
            ),
            (
                r#"slow_calls = { threshold = "0s", rate = 50 }"#,
                "slow_calls' threshold",
            ),
            (
                r#"time_window = { size = "10s", buckets = 0 }"#,
                "time_window must have 1 to 1000 buckets",
            ),
            (
                r#"time_window = { size = "5ms", buckets = 10 }"#,
                "time_window's buckets must be at least 1 ms",
            ),
        ] {
            let err = build_err(text);
            assert!(err.contains(field), "{text}: {err}");
        }
        let err = parse(r#"max_keys = 0"#)
            .build_keyed()
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_keys must be at least 1"), "{err}");

        // Refused while reading the file: the error quotes the line with the field.
        for (text, words) in [
            (
                r#"open_duration = "5x""#,
                &["open_duration", "invalid duration \"5x\""][..],
            ),
            (
                r#"max_half_open_wait = 30"#,
                &["max_half_open_wait", "250ms"],
            ),
            (r#"failure_rate = true"#, &["failure_rate", "or false"]),
            (
                r#"failure_rate = "half""#,
                &["failure_rate", "a percentage"],
            ),
            (
                r#"missing_key = "drop""#,
                &["missing_key", "unknown variant `drop`"],
            ),
            (r#"key = "cookie""#, &["key", "unknown variant `cookie`"]),
            (r#"count_window = -1"#, &["count_window"]),
            (
                r#"open_backoff = { kind = "fibonacci", base = "1s" }"#,
                &["open_backoff", "unknown variant `fibonacci`"],
            ),
            (
                r#"open_backoff = { kind = "exponential", base = "1s", factor = 0.5 }"#,
                &[
                    "open_backoff",
                    "factor must be a finite number of at least 1, got 0.5",
                ],
            ),
            (
                r#"open_backoff = { kind = "exponential", base = "1s", jitter = { proportional = 150 } }"#,
                &["open_backoff", "percentage from 0 to 100, got 150"],
            ),
            (
                r#"open_backoff = { kind = "exponential", base = "1s", jitter = "wobbly" }"#,
                &["open_backoff", "unknown variant `wobbly`"],
            ),
            (
                r#"open_backoff = { base = "1s" }"#,
                &["open_backoff", "missing field `kind`"],
            ),
            (
                r#"slow_calls = { threshold = "1s" }"#,
                &["slow_calls", "missing field `rate`"],
            ),
        ] {
            let err = parse_err(text);
            for word in words {
                assert!(err.contains(word), "{text}: {word:?} not in {err}");
            }
        }
    }

    #[test]
    fn settings_that_exclude_each_other_are_refused() {
        let err = build_err(
            r#"
            count_window = 10
            time_window = { size = "10s", buckets = 10 }
            "#,
        );
        assert_eq!(err, "count_window and time_window are both set: choose one");
        let err = build_err(
            r#"
            open_duration = "5s"
            open_backoff = { kind = "constant", base = "5s" }
            "#,
        );
        assert_eq!(
            err,
            "open_duration and open_backoff are both set: choose one"
        );

        // Keyed fields belong to build_keyed; backpressure to build.
        for (text, field) in [
            (r#"key = "peer_ip""#, "key"),
            ("max_keys = 10", "max_keys"),
            (r#"idle_timeout = "1m""#, "idle_timeout"),
            (r#"missing_key = "bypass""#, "missing_key"),
        ] {
            let err = build_err(text);
            assert!(
                err.starts_with(&format!("{field} configures keyed breakers")),
                "{err}"
            );
            parse(text).build_keyed().unwrap();
        }
        let err = parse("backpressure = true")
            .build_keyed()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("backpressure does not apply to keyed"),
            "{err}"
        );
        parse("backpressure = false").build_keyed().unwrap();
    }
}
