//! `BulkheadConfig` and `PartitionedConfig`: a bulkhead's settings read from a configuration
//! file (feature `serde`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use http::HeaderValue;
use serde::Deserialize;
use weir_core::config::{ConfigDuration, KeySpec, SpecKey};
use weir_core::{ApiKeyToken, KeyedConfig, MissingKey};

use crate::builder::{BulkheadBuilder, ConfigError};
use crate::layer::BulkheadLayer;
use crate::partition::{PartitionedBuilder, PartitionedLayer};
use crate::protocol::Http;

/// The settings of a [`BulkheadLayer`] read from a configuration file (TOML, or any serde
/// format). Every field is optional: an empty table gives the builder's defaults (100
/// concurrent calls, no queue, `Retry-After: 1s`, name `"default"`). An unknown field is an
/// error.
///
/// | field | type | example | builder method |
/// |---|---|---|---|
/// | `max_concurrent` | integer, at least 1 | `64` | [`max_concurrent`](BulkheadBuilder::max_concurrent) |
/// | `max_queue` | integer | `128` | [`max_queue`](BulkheadBuilder::max_queue) |
/// | `max_wait` | duration, needs `max_queue` | `"250ms"` | [`max_wait`](BulkheadBuilder::max_wait) |
/// | `retry_after` | duration | `"2s"` | [`retry_after`](BulkheadBuilder::retry_after) |
/// | `backpressure` | boolean | `true` | [`backpressure`](BulkheadBuilder::backpressure) (wait in `poll_ready`; no queue) |
/// | `release_at_head` | boolean, HTTP mode only | `true` | [`release_at_head`](BulkheadBuilder::release_at_head) |
/// | `name` | string | `"api"` | [`name`](BulkheadBuilder::name) |
///
/// Durations are strings, a whole number and a unit (`"250ms"`, `"10s"`).
///
/// **HTTP mode is chosen in code**, because it changes the layer's response type
/// (`http::Response<GuardedBody<..>>`, the permit riding in the body): [`build`](Self::build)
/// and [`builder`](Self::builder) give the default [`Plain`](crate::Plain) mode, for any request type;
/// [`build_http`](Self::build_http) and [`http_builder`](Self::http_builder) give [`Http`] mode
/// (the permit is held until the response body ends, the queue wait bounded by the request's
/// deadline), where the file's `release_at_head = true` releases it with the response head
/// instead. `release_at_head` in [`Plain`](crate::Plain) mode is an error, not ignored.
///
/// **What stays in code**: the observer ([`observer`](BulkheadBuilder::observer)), on the
/// builder [`builder`](Self::builder) returns. A partitioned bulkhead is a
/// [`PartitionedConfig`].
///
/// ```
/// use weir_bulkhead::BulkheadConfig;
///
/// let config: BulkheadConfig = toml::from_str(r#"
///     max_concurrent = 64
///     max_queue = 128
///     max_wait = "250ms"
///     name = "api"
/// "#).unwrap();
/// let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
/// assert_eq!(handle.stats().max_concurrent, 64);
/// # let _ = layer;
///
/// let err = toml::from_str::<BulkheadConfig>(r#"max_wait = "1s""#).unwrap().build().unwrap_err();
/// assert_eq!(err.to_string(), "bulkhead: `max_wait` needs a queue: set `max_queue` above zero");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BulkheadConfig {
    /// The most calls in flight at once (at least 1).
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// How many requests may wait for a permit, in arrival order (0: refuse at once).
    #[serde(default)]
    pub max_queue: Option<usize>,
    /// The longest a queued request waits (needs `max_queue`; more than zero).
    #[serde(default)]
    pub max_wait: Option<ConfigDuration>,
    /// The `Retry-After` every rejection carries (more than zero).
    #[serde(default)]
    pub retry_after: Option<ConfigDuration>,
    /// `true`: wait for a permit in `poll_ready` instead of queueing or refusing in `call`.
    #[serde(default)]
    pub backpressure: Option<bool>,
    /// HTTP mode only: `true` releases the permit with the response head instead of when the
    /// body ends.
    #[serde(default)]
    pub release_at_head: Option<bool>,
    /// The bulkhead's name in errors and events.
    #[serde(default)]
    pub name: Option<String>,
}

impl BulkheadConfig {
    /// The settings every mode shares.
    fn apply<P>(&self, mut builder: BulkheadBuilder<(), P>) -> BulkheadBuilder<(), P> {
        if let Some(max) = self.max_concurrent {
            builder = builder.max_concurrent(max);
        }
        if let Some(max) = self.max_queue {
            builder = builder.max_queue(max);
        }
        if let Some(max_wait) = self.max_wait {
            builder = builder.max_wait(max_wait.get());
        }
        if let Some(retry_after) = self.retry_after {
            builder = builder.retry_after(retry_after.get());
        }
        if self.backpressure == Some(true) {
            builder = builder.backpressure();
        }
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        builder
    }

    /// A [`Plain`](crate::Plain)-mode [`BulkheadBuilder`] with these settings on top of the builder's
    /// defaults; chain [`observer`](BulkheadBuilder::observer) before `build()` to add one.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] if the file sets `release_at_head` (HTTP mode only: use
    /// [`http_builder`](Self::http_builder)); the builder's rules are reported by `build()`.
    pub fn builder(&self) -> Result<BulkheadBuilder, ConfigError> {
        if self.release_at_head.is_some() {
            return Err(ConfigError::InvalidSetting {
                field: "release_at_head",
                rule: "applies in HTTP mode only: build with `http_builder()` or `build_http()`",
            });
        }
        Ok(self.apply(BulkheadLayer::builder()))
    }

    /// An [`Http`]-mode [`BulkheadBuilder`] with these settings, `release_at_head` included.
    ///
    /// # Errors
    ///
    /// None yet (the builder's rules are reported by `build()`); a `Result` like
    /// [`builder`](Self::builder).
    pub fn http_builder(&self) -> Result<BulkheadBuilder<(), Http>, ConfigError> {
        let builder = self.apply(BulkheadLayer::builder()).http();
        Ok(if self.release_at_head == Some(true) {
            builder.release_at_head()
        } else {
            builder
        })
    }

    /// Builds the [`Plain`](crate::Plain)-mode layer: [`builder`](Self::builder), then
    /// [`BulkheadBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build(&self) -> Result<BulkheadLayer, ConfigError> {
        self.builder()?.build()
    }

    /// Builds the [`Http`]-mode layer: [`http_builder`](Self::http_builder), then
    /// [`BulkheadBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build_http(&self) -> Result<BulkheadLayer<(), Http>, ConfigError> {
        self.http_builder()?.build()
    }
}

/// The settings of a [`PartitionedLayer`] (one bulkhead per key) read from a configuration
/// file. Every field is optional: an empty table gives the builder's defaults (one partition
/// for every request, as the key is `"global"`; 10 permits per key; no pool, no queue). An
/// unknown field is an error.
///
/// | field | type | example | builder method |
/// |---|---|---|---|
/// | `key` | [`KeySpec`] | `{ header = "x-downstream" }`, `"peer_ip"` | [`BulkheadLayer::partitioned`] |
/// | `partition` | table: key to size | `{ payments = 20, search = 5 }` | [`partition`](PartitionedBuilder::partition) |
/// | `per_key` | integer, at least 1 | `10` | [`per_key`](PartitionedBuilder::per_key) |
/// | `borrow` | table, `size` and `cap` | `{ size = 10, cap = 4 }` | [`borrow`](PartitionedBuilder::borrow) |
/// | `max_queue` | integer | `50` | [`max_queue`](PartitionedBuilder::max_queue) |
/// | `max_wait` | duration, needs `max_queue` | `"200ms"` | [`max_wait`](PartitionedBuilder::max_wait) |
/// | `missing_key` | `"shared"`, `"reject"` or `"bypass"` | `"reject"` | [`missing_key`](PartitionedBuilder::missing_key) |
/// | `max_keys` | integer, at least 1 | `100000` | [`keys`](PartitionedBuilder::keys) ([`KeyedConfig::max_keys`]) |
/// | `idle_timeout` | duration | `"10m"` | [`keys`](PartitionedBuilder::keys) ([`KeyedConfig::idle_timeout`]) |
/// | `retry_after` | duration | `"2s"` | [`retry_after`](PartitionedBuilder::retry_after) |
/// | `name` | string | `"downstreams"` | [`name`](PartitionedBuilder::name) |
///
/// A `partition` key is written as the key extractor reads it: a header's value for
/// `{ header = ".." }`, an API key or bearer token for `"api_key"` / `"bearer"`, an IP address
/// for `"peer_ip"` / `forwarded_ip`, a `host:port` for `"authority"`. A key the extractor
/// could never produce is an error, and so is any named partition with `"global"` or
/// `"method_path"` (the key is a route template, which cannot be made from text).
///
/// The layer is keyed by the [`KeySpec`] and serves `http::Request`s. HTTP mode, the observer
/// and a key extractor written in code stay in code: call
/// [`http`](PartitionedBuilder::http) or [`observer`](PartitionedBuilder::observer) on the
/// builder [`builder`](Self::builder) returns, or build with [`BulkheadLayer::partitioned`].
///
/// ```
/// use weir_bulkhead::PartitionedConfig;
/// use weir_core::config::SpecKey;
///
/// let config: PartitionedConfig = toml::from_str(r#"
///     key = { header = "x-downstream" }
///     partition = { payments = 20, search = 5 }
///     per_key = 10
///     borrow = { size = 10, cap = 4 }
///     missing_key = "reject"
/// "#).unwrap();
/// let layer = config.build().unwrap();
/// let payments = SpecKey::Header("payments".parse().unwrap());
/// assert_eq!(layer.stats(&payments).unwrap().max_concurrent, 20);
/// assert_eq!(layer.pool_stats().unwrap().max_concurrent, 10);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PartitionedConfig {
    /// What a request's partition key is (default `"global"`: one key for every request).
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// Named partitions: a key, as the extractor reads it, to its number of permits.
    #[serde(default)]
    pub partition: Option<BTreeMap<String, usize>>,
    /// The permits of each key without a named partition (at least 1).
    #[serde(default)]
    pub per_key: Option<usize>,
    /// A pool shared by all partitions that a full one borrows from.
    #[serde(default)]
    pub borrow: Option<BorrowSpec>,
    /// How many requests may wait in each full partition (0: refuse at once).
    #[serde(default)]
    pub max_queue: Option<usize>,
    /// The longest a queued request waits (needs `max_queue`; more than zero).
    #[serde(default)]
    pub max_wait: Option<ConfigDuration>,
    /// What a request without a key does: `"shared"` (one partition for them all), `"reject"`
    /// or `"bypass"`.
    #[serde(default)]
    pub missing_key: Option<MissingKey>,
    /// The most keys kept at once.
    #[serde(default)]
    pub max_keys: Option<NonZeroUsize>,
    /// How long a key may go unused before its partition can be forgotten (never while it has
    /// calls in flight or waiting).
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    /// The `Retry-After` every rejection carries (more than zero).
    #[serde(default)]
    pub retry_after: Option<ConfigDuration>,
    /// The bulkhead's name in errors and events.
    #[serde(default)]
    pub name: Option<String>,
}

/// The shared pool of a [`PartitionedConfig`]: `size` permits, at most `cap` lent to one
/// partition at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BorrowSpec {
    /// The pool's permits (at least 1).
    pub size: usize,
    /// The most permits one partition may borrow at a time.
    pub cap: usize,
}

impl PartitionedConfig {
    /// A [`PartitionedBuilder`] keyed by the file's [`KeySpec`], with these settings on top of
    /// the builder's defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a `partition` key the extractor could never produce,
    /// or a zero `per_key`, partition size or `borrow.size`; the builder's rules are reported
    /// by `build()`. Each message names the field.
    pub fn builder(&self) -> Result<PartitionedBuilder<KeySpec, SpecKey>, ConfigError> {
        let at_least_one = |size: usize, field, rule| {
            if size == 0 {
                Err(ConfigError::InvalidSetting { field, rule })
            } else {
                Ok(())
            }
        };
        let key = self.key.clone().unwrap_or_default();
        let mut named = Vec::new();
        for (text, size) in self.partition.iter().flatten() {
            at_least_one(*size, "partition", "sizes must be at least 1")?;
            named.push((partition_key(&key, text)?, *size));
        }
        if let Some(size) = self.per_key {
            at_least_one(size, "per_key", "must be at least 1")?;
        }
        if let Some(pool) = self.borrow {
            at_least_one(pool.size, "borrow", "`size` must be at least 1")?;
        }
        let mut builder = BulkheadLayer::partitioned(key);
        for (key, size) in named {
            builder = builder.partition(key, size);
        }
        if let Some(size) = self.per_key {
            builder = builder.per_key(size);
        }
        if let Some(pool) = self.borrow {
            builder = builder.borrow(pool.size, pool.cap);
        }
        if let Some(max) = self.max_queue {
            builder = builder.max_queue(max);
        }
        if let Some(max_wait) = self.max_wait {
            builder = builder.max_wait(max_wait.get());
        }
        if let Some(missing) = self.missing_key {
            builder = builder.missing_key(missing);
        }
        if self.max_keys.is_some() || self.idle_timeout.is_some() {
            let mut keys = KeyedConfig::new();
            if let Some(max) = self.max_keys {
                keys = keys.max_keys(max.get());
            }
            if let Some(idle) = self.idle_timeout {
                keys = keys.idle_timeout(idle.get());
            }
            builder = builder.keys(keys);
        }
        if let Some(retry_after) = self.retry_after {
            builder = builder.retry_after(retry_after.get());
        }
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        Ok(builder)
    }

    /// [`builder`](Self::builder) in [`Http`] mode: each permit is held until the response
    /// body ends.
    ///
    /// # Errors
    ///
    /// As [`builder`](Self::builder).
    pub fn http_builder(
        &self,
    ) -> Result<PartitionedBuilder<KeySpec, SpecKey, (), Http>, ConfigError> {
        Ok(self.builder()?.http())
    }

    /// Builds the [`Plain`](crate::Plain)-mode layer: [`builder`](Self::builder), then
    /// [`PartitionedBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build(&self) -> Result<PartitionedLayer<KeySpec, SpecKey>, ConfigError> {
        self.builder()?.build()
    }

    /// Builds the [`Http`]-mode layer: [`http_builder`](Self::http_builder), then
    /// [`PartitionedBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build_http(&self) -> Result<PartitionedLayer<KeySpec, SpecKey, (), Http>, ConfigError> {
        self.http_builder()?.build()
    }
}

/// The key `key` extracts from a request whose key reads `text`.
fn partition_key(key: &KeySpec, text: &str) -> Result<SpecKey, ConfigError> {
    let invalid = |rule| ConfigError::InvalidSetting {
        field: "partition",
        rule,
    };
    match key {
        KeySpec::PeerIp | KeySpec::ForwardedIp(_) => text
            .trim()
            .parse::<IpAddr>()
            .map(SpecKey::Ip)
            .map_err(|_| invalid("keys must be IP addresses (the `key` is an IP address)")),
        KeySpec::Header(_) => HeaderValue::from_str(text)
            .map(SpecKey::Header)
            .map_err(|_| invalid("keys must be valid header values")),
        KeySpec::ApiKey | KeySpec::ApiKeyHeader(_) | KeySpec::Bearer => HeaderValue::from_str(text)
            .ok()
            .filter(|value| !value.is_empty())
            .map(|value| SpecKey::ApiKey(ApiKeyToken::from(value)))
            .ok_or_else(|| invalid("keys must be non-empty API keys (valid header values)")),
        KeySpec::Authority => text
            .trim()
            .parse::<http::uri::Authority>()
            .map(SpecKey::Authority)
            .map_err(|_| invalid("keys must be authorities, `host` or `host:port`")),
        _ => Err(invalid(
            "needs a `key` that names one partition per value (not `global` or `method_path`)",
        )),
    }
}

/// Reads `missing_key`: `"shared"`, `"reject"` or `"bypass"`.
#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use http::{Request, Response};
    use tokio::time::Instant;
    use tower::{Layer, Service, ServiceExt, service_fn};
    use weir_core::{BoxError, Error};

    use super::*;

    fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> T {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn weir_error(err: &BoxError) -> &Error {
        Error::find(&**err).expect("a weir error")
    }

    fn sleepy<Req: Send + 'static>() -> impl Service<
        Req,
        Response = (),
        Error = Infallible,
        Future = impl Future<Output = Result<(), Infallible>> + Send,
    > + Clone {
        service_fn(|_: Req| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(())
        })
    }

    const FULL: &str = r#"
        max_concurrent = 2
        max_queue = 1
        max_wait = "100ms"
        retry_after = "3s"
        name = "inventory"
    "#;

    #[test]
    fn a_full_file_reads_every_field() {
        let config: BulkheadConfig = parse(&format!(
            "{FULL}backpressure = false\nrelease_at_head = true\n"
        ));
        assert_eq!(config.max_concurrent, Some(2));
        assert_eq!(config.max_queue, Some(1));
        assert_eq!(config.max_wait, Some(Duration::from_millis(100).into()));
        assert_eq!(config.retry_after, Some(Duration::from_secs(3).into()));
        assert_eq!(config.backpressure, Some(false));
        assert_eq!(config.release_at_head, Some(true));
        assert_eq!(config.name.as_deref(), Some("inventory"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_file_builds_a_bulkhead_with_every_setting() {
        let config: BulkheadConfig = parse(FULL);
        let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
        assert_eq!(handle.stats().max_concurrent, 2);
        let mut svc = layer.layer(sleepy::<u32>());

        let running = [
            tokio::spawn(svc.ready().await.unwrap().call(1)),
            tokio::spawn(svc.ready().await.unwrap().call(2)),
        ];
        tokio::task::yield_now().await;
        let started = Instant::now();
        let queued = tokio::spawn(svc.ready().await.unwrap().call(3));
        tokio::task::yield_now().await;
        assert_eq!(handle.stats().queued, 1, "max_queue = 1");

        // The queue is full: refused at once, with the file's Retry-After and name.
        let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
        let err = weir_error(&err);
        assert!(err.is_bulkhead_full());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(err.layer(), Some("inventory"));

        // The queued call gives up after max_wait.
        let err = queued.await.unwrap().unwrap_err();
        assert!(weir_error(&err).is_bulkhead_full());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        for call in running {
            call.await.unwrap().unwrap();
        }
        assert_eq!(handle.stats().rejected, 2);
        assert_eq!(handle.stats().available, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn backpressure_waits_instead_of_refusing() {
        let config: BulkheadConfig = parse("max_concurrent = 1\nbackpressure = true");
        let layer = config.build().unwrap();
        let svc = layer.layer(sleepy::<u32>());
        let started = Instant::now();
        let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.clone().oneshot(2));
        a.unwrap();
        b.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "one after the other"
        );

        // Without it, the second is refused at once.
        let layer = parse::<BulkheadConfig>("max_concurrent = 1")
            .build()
            .unwrap();
        let svc = layer.layer(sleepy::<u32>());
        let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.clone().oneshot(2));
        a.unwrap();
        assert!(weir_error(&b.unwrap_err()).is_bulkhead_full());
    }

    #[tokio::test(start_paused = true)]
    async fn http_mode_holds_the_permit_in_the_body_unless_release_at_head() {
        let inner = service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("body")))
        });
        for (text, held) in [
            ("max_concurrent = 3", 1),
            ("max_concurrent = 3\nrelease_at_head = false", 1),
            ("max_concurrent = 3\nrelease_at_head = true", 0),
        ] {
            let config: BulkheadConfig = parse(text);
            let layer = config.build_http().unwrap();
            let handle = layer.handle();
            let response = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
            assert_eq!(handle.stats().in_flight, held, "{text}");
            drop(response);
            assert_eq!(handle.stats().in_flight, 0, "{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_table_builds_the_builder_defaults() {
        let config: BulkheadConfig = parse("");
        assert_eq!(config, BulkheadConfig::default());
        let from_file = config.build().unwrap();
        let from_code = BulkheadLayer::builder().build().unwrap();
        // Debug shows the name, the figures (100 permits), the queue and the wait.
        assert_eq!(format!("{from_file:?}"), format!("{from_code:?}"));
        assert_eq!(from_file.handle().stats().max_concurrent, 100);

        // No queue, Retry-After 1 s.
        let svc = from_file.layer(sleepy::<u32>());
        let calls: Vec<_> = (0..101).map(|n| svc.clone().oneshot(n)).collect();
        let results = futures_join_all(calls).await;
        let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(refused.len(), 1);
        let err = weir_error(refused[0]);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(err.layer(), None, "an unnamed bulkhead names no layer");
    }

    /// Runs every future to completion on this task, in order of completion.
    async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let mut handles = Vec::new();
        let set = tokio::task::LocalSet::new();
        set.run_until(async {
            for future in futures {
                handles.push(tokio::task::spawn_local(future));
            }
            let mut out = Vec::new();
            for handle in handles {
                out.push(handle.await.unwrap());
            }
            out
        })
        .await
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let err = toml::from_str::<BulkheadConfig>("max_concurrent = 5\nqueue = 3").unwrap_err();
        assert!(err.to_string().contains("unknown field `queue`"), "{err}");
        let err = toml::from_str::<PartitionedConfig>("per_key = 5\npartitions = {}").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `partitions`"),
            "{err}"
        );
        let err =
            toml::from_str::<PartitionedConfig>("borrow = { size = 5, limit = 2 }").unwrap_err();
        assert!(err.to_string().contains("unknown field `limit`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let build_err = |text: &str| {
            parse::<BulkheadConfig>(text)
                .build()
                .unwrap_err()
                .to_string()
        };
        let read_err = |text: &str| {
            toml::from_str::<BulkheadConfig>(text)
                .unwrap_err()
                .to_string()
        };

        assert_eq!(
            build_err("max_concurrent = 0"),
            "bulkhead: `max_concurrent` must be at least 1"
        );
        assert_eq!(
            build_err(r#"max_wait = "1s""#),
            "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
        );
        assert!(
            build_err("max_queue = 2\nmax_wait = \"0ms\"")
                .contains("`max_wait` must be more than zero")
        );
        assert!(build_err(r#"retry_after = "0s""#).contains("`retry_after`"));
        assert!(
            build_err("backpressure = true\nmax_queue = 4")
                .starts_with("bulkhead: `backpressure()`")
        );
        assert_eq!(
            build_err("release_at_head = true"),
            "bulkhead: `release_at_head` applies in HTTP mode only: build with `http_builder()` or `build_http()`"
        );

        let text = read_err(r#"max_wait = "a while""#);
        assert!(text.contains("max_wait"), "{text}");
        assert!(text.contains(r#"invalid duration "a while""#), "{text}");
        let text = read_err(r#"backpressure = "yes""#);
        assert!(text.contains("backpressure"), "{text}");
        let text = read_err("max_concurrent = -3");
        assert!(text.contains("max_concurrent"), "{text}");
    }

    // --- partitions ---------------------------------------------------------------------------

    const PARTITIONED: &str = r#"
        key = { header = "x-downstream" }
        partition = { payments = 3, search = 1 }
        per_key = 2
        borrow = { size = 2, cap = 1 }
        max_queue = 1
        max_wait = "50ms"
        missing_key = "reject"
        max_keys = 10
        idle_timeout = "1m"
        retry_after = "2s"
        name = "downstreams"
    "#;

    fn to(downstream: &'static str) -> Request<()> {
        Request::get("/")
            .header("x-downstream", downstream)
            .body(())
            .unwrap()
    }

    fn header(value: &'static str) -> SpecKey {
        SpecKey::Header(HeaderValue::from_static(value))
    }

    #[test]
    fn a_full_partitioned_file_reads_every_field() {
        let config: PartitionedConfig = parse(PARTITIONED);
        assert_eq!(
            config.key,
            Some(parse::<Key>(r#"key = { header = "x-downstream" }"#).key)
        );
        let partitions = config.partition.unwrap();
        assert_eq!((partitions["payments"], partitions["search"]), (3, 1));
        assert_eq!(config.per_key, Some(2));
        assert_eq!(config.borrow, Some(BorrowSpec { size: 2, cap: 1 }));
        assert_eq!(config.max_queue, Some(1));
        assert_eq!(config.max_wait, Some(Duration::from_millis(50).into()));
        assert_eq!(config.missing_key, Some(MissingKey::Reject));
        assert_eq!(config.max_keys, NonZeroUsize::new(10));
        assert_eq!(config.idle_timeout, Some(Duration::from_secs(60).into()));
        assert_eq!(config.retry_after, Some(Duration::from_secs(2).into()));
        assert_eq!(config.name.as_deref(), Some("downstreams"));
    }

    #[derive(Deserialize)]
    struct Key {
        key: KeySpec,
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_partitioned_file_builds_every_setting() {
        let layer = parse::<PartitionedConfig>(PARTITIONED).build().unwrap();
        assert_eq!(layer.stats(&header("payments")).unwrap().max_concurrent, 3);
        assert_eq!(layer.stats(&header("search")).unwrap().max_concurrent, 1);
        assert_eq!(layer.pool_stats().unwrap().max_concurrent, 2);
        let mut svc = layer.layer(sleepy::<Request<()>>());

        // search: its 1 permit, then 1 borrowed from the pool (cap 1), then 1 in the queue.
        let mut running = Vec::new();
        for _ in 0..2 {
            running.push(tokio::spawn(svc.ready().await.unwrap().call(to("search"))));
        }
        tokio::task::yield_now().await;
        assert_eq!(layer.pool_stats().unwrap().in_flight, 1, "borrow cap 1");
        let started = Instant::now();
        let queued = tokio::spawn(svc.ready().await.unwrap().call(to("search")));
        tokio::task::yield_now().await;
        assert_eq!(layer.stats(&header("search")).unwrap().queued, 1);
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(to("search"))
            .await
            .unwrap_err();
        let err = weir_error(&err);
        assert!(err.is_bulkhead_full());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(err.layer(), Some("downstreams"));
        // max_wait: the queued one gives up after 50 ms.
        assert!(weir_error(&queued.await.unwrap().unwrap_err()).is_bulkhead_full());
        assert_eq!(started.elapsed(), Duration::from_millis(50));

        // Another downstream gets per_key = 2 permits (the pool's one is still lent out).
        for _ in 0..2 {
            running.push(tokio::spawn(svc.ready().await.unwrap().call(to("ledger"))));
        }
        tokio::task::yield_now().await;
        assert_eq!(layer.stats(&header("ledger")).unwrap().max_concurrent, 2);
        assert_eq!(layer.stats(&header("ledger")).unwrap().in_flight, 2);

        // missing_key = "reject".
        let keyless = Request::new(());
        let err = svc.ready().await.unwrap().call(keyless).await.unwrap_err();
        assert!(weir_error(&err).is_bulkhead_full());

        for call in running {
            call.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_partitioned_table_builds_the_builder_defaults() {
        let config: PartitionedConfig = parse("");
        assert_eq!(config, PartitionedConfig::default());
        let layer = config.build().unwrap();
        let from_code = BulkheadLayer::partitioned::<_, SpecKey>(KeySpec::Global)
            .build()
            .unwrap();
        assert_eq!(format!("{layer:?}"), format!("{from_code:?}"));
        assert_eq!(layer.pool_stats(), None);
        // Every request has the one global key: 10 permits, no queue, key-less never happens.
        let svc = layer.layer(sleepy::<Request<()>>());
        let calls: Vec<_> = (0..11)
            .map(|_| svc.clone().oneshot(Request::new(())))
            .collect();
        let refused = futures_join_all(calls)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        assert_eq!(refused, 1);
        assert_eq!(layer.stats(&SpecKey::Global).unwrap().max_concurrent, 10);
    }

    #[test]
    fn partition_keys_are_read_as_the_extractor_reads_them() {
        let build = |text: &str| parse::<PartitionedConfig>(text).build();
        let layer = build("key = \"peer_ip\"\npartition = { \"10.0.0.7\" = 4 }").unwrap();
        let ip = SpecKey::Ip("10.0.0.7".parse().unwrap());
        assert_eq!(layer.stats(&ip).unwrap().max_concurrent, 4);

        let layer = build("key = \"authority\"\npartition = { \"inventory:8080\" = 6 }").unwrap();
        let authority = SpecKey::Authority("inventory:8080".parse().unwrap());
        assert_eq!(layer.stats(&authority).unwrap().max_concurrent, 6);

        let layer = build("key = \"api_key\"\npartition = { \"k-123\" = 2 }").unwrap();
        let token = SpecKey::ApiKey(ApiKeyToken::from(HeaderValue::from_static("k-123")));
        assert_eq!(layer.stats(&token).unwrap().max_concurrent, 2);

        for (text, rule) in [
            (
                "key = \"peer_ip\"\npartition = { web = 4 }",
                "keys must be IP addresses",
            ),
            (
                "key = { header = \"x-tenant\" }\npartition = { \"bad\\nvalue\" = 1 }",
                "keys must be valid header values",
            ),
            (
                "key = \"bearer\"\npartition = { \"\" = 1 }",
                "keys must be non-empty API keys",
            ),
            (
                "key = \"authority\"\npartition = { \"a b\" = 1 }",
                "keys must be authorities",
            ),
            (
                "partition = { payments = 3 }",
                "not `global` or `method_path`",
            ),
            (
                "key = \"method_path\"\npartition = { \"GET /a\" = 3 }",
                "not `global` or `method_path`",
            ),
        ] {
            let err = build(text).unwrap_err().to_string();
            assert!(err.starts_with("bulkhead: `partition` "), "{text}: {err}");
            assert!(err.contains(rule), "{text}: {err}");
        }
    }

    #[test]
    fn bad_partitioned_values_name_their_field() {
        let build_err = |text: &str| {
            parse::<PartitionedConfig>(text)
                .build()
                .unwrap_err()
                .to_string()
        };
        let read_err = |text: &str| {
            toml::from_str::<PartitionedConfig>(text)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            build_err("per_key = 0"),
            "bulkhead: `per_key` must be at least 1"
        );
        assert_eq!(
            build_err("key = \"peer_ip\"\npartition = { \"10.0.0.1\" = 0 }"),
            "bulkhead: `partition` sizes must be at least 1"
        );
        assert_eq!(
            build_err("borrow = { size = 0, cap = 0 }"),
            "bulkhead: `borrow` `size` must be at least 1"
        );
        assert_eq!(
            build_err(r#"max_wait = "1s""#),
            "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
        );
        let text = read_err(r#"missing_key = "ignore""#);
        assert!(text.contains("unknown variant `ignore`"), "{text}");
        assert!(text.contains("missing_key"), "{text}");
        let text = read_err("max_keys = 0");
        assert!(text.contains("max_keys"), "{text}");
        let text = read_err("borrow = { size = 4 }");
        assert!(text.contains("missing field `cap`"), "{text}");
        let text = read_err(r#"key = "cookie""#);
        assert!(text.contains("cookie"), "{text}");
    }
}
