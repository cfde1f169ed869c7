//! `PartitionedConfig`: a partitioned bulkhead's settings read from a configuration file
//! (feature `serde`). A plain bulkhead's file form is its
//! [`BulkheadSettings`](crate::BulkheadSettings).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use http::HeaderValue;
use serde::Deserialize;
use weir_core::config::{ConfigDuration, KeySpec, SpecKey};
use weir_core::protocol::Http;
use weir_core::{ConfigError, key::ApiKeyToken, key::MissingKey, keyed::KeyedConfig};

use crate::layer::BulkheadLayer;
use crate::partition::{PartitionedBuilder, PartitionedLayer};
use crate::settings::PATTERN;

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
    /// A [`ConfigError`] for a `partition` key the extractor could never produce
    /// ([`is_invalid`](ConfigError::is_invalid)), or a zero `per_key`, partition size or
    /// `borrow.size` ([`is_zero`](ConfigError::is_zero)); the builder's rules are reported by
    /// `build()`. Each message names the field.
    pub fn builder(&self) -> Result<PartitionedBuilder<KeySpec, SpecKey>, ConfigError> {
        let at_least_one = |size: usize, field: &'static str, rule: &'static str| {
            if size == 0 {
                Err(ConfigError::zero(PATTERN, field, rule))
            } else {
                Ok(())
            }
        };
        let key = self.key.clone().unwrap_or_default();
        let mut named = Vec::new();
        for (text, size) in self.partition.iter().flatten() {
            at_least_one(*size, "partition", "sizes must be at least 1")?;
            // A listed key above the extractor's cap is kept as the digest its requests get.
            named.push((key.listed(partition_key(&key, text)?), *size));
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

    /// Builds the `Plain`-mode layer: [`builder`](Self::builder), then
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
    let invalid = |rule: &'static str| ConfigError::invalid(PATTERN, "partition", rule);
    match key {
        KeySpec::PeerIp | KeySpec::ForwardedIp(_) => text
            .trim()
            .parse::<IpAddr>()
            .map(SpecKey::Ip)
            .map_err(|_| invalid("keys must be IP addresses (the `key` is an IP address)")),
        KeySpec::Header(_) => HeaderValue::from_str(text)
            .map(SpecKey::Header)
            .map_err(|_| invalid("keys must be valid header values")),
        KeySpec::ApiKey { .. } | KeySpec::ApiKeyHeader(_) | KeySpec::Bearer { .. } => {
            HeaderValue::from_str(text)
                .ok()
                .filter(|value| !value.is_empty())
                .map(|value| SpecKey::ApiKey(ApiKeyToken::from(value)))
                .ok_or_else(|| invalid("keys must be non-empty API keys (valid header values)"))
        }
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

#[cfg(test)]
mod tests;
