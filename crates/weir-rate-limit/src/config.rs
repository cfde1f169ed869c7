//! [`RateLimitConfig`]: a rate limiter's settings read from a configuration file (feature
//! `serde`), and the one concrete layer type such a file builds: the algorithm chosen by name
//! ([`ConfigAlgorithm`]), the key by [`KeySpec`] and the tiers of keys by a table
//! ([`ConfigTiers`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::{HeaderValue, Method};
use serde::de::{self, Deserialize, Deserializer};
use weir_core::config::{ConfigDuration, KeySpec, SpecKey};
use weir_core::{ApiKeyToken, HeaderStyle, MissingKey, Name};

use weir_core::ConfigError;

use crate::builder::{PATTERN, RateLimitBuilder};
use crate::layer::RateLimitLayer;
use crate::protocol::Http;
use crate::quota::Quota;
use crate::state::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, SlidingLog, SlidingLogState, SlidingWindow,
    TokenBucket, TokenBucketState, Verdict, WindowState,
};
use crate::store::MemoryStore;
use crate::tier::{TierOf, UnitCost};

/// The builder [`RateLimitConfig::builder`] returns: keyed by [`KeySpec`], deciding with a
/// [`ConfigAlgorithm`], tiers assigned by [`ConfigTiers`], for `http::Request` services.
pub type ConfigBuilder =
    RateLimitBuilder<KeySpec, ConfigAlgorithm, ConfigTiers, UnitCost, (), Http>;

/// The layer [`RateLimitConfig::build`] returns (see [`ConfigBuilder`]).
pub type ConfigLayer =
    RateLimitLayer<KeySpec, MemoryStore<ConfigAlgorithm>, ConfigTiers, UnitCost, (), Http>;

/// The settings of a [`RateLimitLayer`] read from a configuration file (TOML, or any serde
/// format). Every field is optional: an empty table gives the builder's defaults (GCRA, reject
/// mode, one key for every request, key-less requests shared, 100 000 keys idle for 10 minutes,
/// no response fields, name `"rate_limit"`, and no quota: give one in the file or in code). An
/// unknown field is an error.
///
/// | field | type | example | builder method |
/// |---|---|---|---|
/// | `quota` | a quota, or a list of quotas that stack | `{ rate = 100, per = "1s", burst = 20 }` | [`quota`](RateLimitBuilder::quota), once per quota |
/// | `tier` | table: tier name to a quota or a list | `{ premium = { rate = 1000, per = "1s" } }` | [`tier`](RateLimitBuilder::tier) |
/// | `tier_of` | table: key (as text) to tier name | `{ "pk_live_7f3a" = "premium" }` | [`tier_of`](RateLimitBuilder::tier_of) |
/// | `key` | [`KeySpec`] | `"peer_ip"`, `{ header = "x-tenant" }` | [`key`](RateLimitBuilder::key) |
/// | `algorithm` | `"gcra"`, `"token_bucket"`, `"leaky_bucket"`, `"fixed_window"`, `"sliding_window"`, `"sliding_log"` | `"gcra"` | [`algorithm`](RateLimitBuilder::algorithm) |
/// | `mode` | `"reject"`, `"shadow"` or `{ wait = { max_wait = duration } }` | `{ wait = { max_wait = "500ms" } }` | [`wait`](RateLimitBuilder::wait), [`shadow`](RateLimitBuilder::shadow) |
/// | `missing_key` | `"shared"`, `"reject"`, `"bypass"` | `"reject"` | [`missing_key`](RateLimitBuilder::missing_key) |
/// | `max_keys` | integer, at least 1 | `100000` | [`max_keys`](RateLimitBuilder::max_keys) |
/// | `idle_timeout` | duration | `"10m"` | [`idle_timeout`](RateLimitBuilder::idle_timeout) |
/// | `response_headers` | `"none"`, `"ietf"`, `"x_rate_limit"`, `"both"` | `"ietf"` | [`response_headers`](RateLimitBuilder::response_headers) |
/// | `name` | string | `"edge"` | [`name`](RateLimitBuilder::name) |
///
/// A quota is `{ rate = integer, per = duration, burst = integer, name = string }`: `rate`
/// units per `per`, `burst` (optional, `rate` by default) at once, `name` (optional,
/// `"default"`) the policy name in response fields and errors ([`Quota`]). Durations are
/// strings, a whole number and a unit (`"500us"`, `"250ms"`, `"10s"`, `"2m"`, `"1h"`, `"1d"`).
/// In `tier_of` a key is written as the `key` extractor produces it: an IP address for
/// `peer_ip` / `forwarded_ip`, the header's value for `header`, the token for the API keys and
/// `bearer`, `"host:port"` for `authority`, `"METHOD /route"` for `method_path`
/// (`"POST /login"`); keys it does not name get the default tier (the `quota`s).
///
/// **One type for every file.** Whatever the file chooses, the layer is a [`ConfigLayer`]: the
/// key is a [`KeySpec`] (`"global"` when the file names none: one state for every request), the
/// algorithm a [`ConfigAlgorithm`] (the chosen algorithm's state, one `match` per decision),
/// tiers are assigned by a [`ConfigTiers`] table, and it serves `http::Request` /
/// `http::Response` services (axum, tonic, hyper; `response_headers = "none"`, the default,
/// writes no field but a wait still honours the request's [`weir_core::Deadline`]). For another
/// request type, or the leanest layer, use [`RateLimitLayer::builder`] in code.
///
/// **What stays in code**: the [`cost`](RateLimitBuilder::cost) of a request, the
/// [`observer`](RateLimitBuilder::observer), a tier closure when a table is not enough
/// ([`tier_of`](RateLimitBuilder::tier_of) replaces the file's `tier_of`), and another
/// [`Store`](crate::Store) ([`build_with_store`](RateLimitBuilder::build_with_store)): call them
/// on the builder [`builder`](Self::builder) returns.
///
/// ```
/// use weir_rate_limit::RateLimitConfig;
///
/// let config: RateLimitConfig = toml::from_str(r#"
///     name = "api"
///     key = { header = "x-tenant" }
///     quota = [
///         { rate = 10, per = "1s", burst = 20, name = "burst" },
///         { rate = 10000, per = "1d", name = "daily" },
///     ]
///     missing_key = "reject"
///     response_headers = "ietf"
///
///     [tier]
///     premium = { rate = 100, per = "1s", name = "burst" }
///
///     [tier_of]
///     acme = "premium"
/// "#).unwrap();
/// let layer = config.build().unwrap();
/// assert_eq!(layer.name(), "api");
///
/// let err = toml::from_str::<RateLimitConfig>("quota = { rate = 0, per = \"1s\" }")
///     .unwrap()
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "rate limit: `quota.rate` must be at least 1");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// The layer's name, in errors and events.
    #[serde(default)]
    pub name: Option<String>,
    /// The default tier's quotas; several stack (a request must pass all of them). In a file,
    /// one quota table or a list of them.
    #[serde(default, deserialize_with = "quotas")]
    pub quota: Option<Vec<QuotaConfig>>,
    /// Named tiers, each with its own stacked quotas (one table or a list, at least one).
    #[serde(default, deserialize_with = "tiers")]
    pub tier: Option<BTreeMap<String, Vec<QuotaConfig>>>,
    /// The tier of some keys, by the key's text (see the type's documentation); every tier named
    /// must be defined in [`tier`](Self::tier). This struct's `Debug` shows the keys as written
    /// (API keys included); the built [`ConfigTiers`] shows API keys only by their length.
    #[serde(default)]
    pub tier_of: Option<BTreeMap<String, String>>,
    /// What a request's key is (`"global"`, one state for every request, by default).
    #[serde(default)]
    pub key: Option<KeySpec>,
    /// The algorithm (`"gcra"` by default).
    #[serde(default)]
    pub algorithm: Option<ConfigAlgorithm>,
    /// Refuse, wait for room, or only count (`"reject"` by default).
    #[serde(default)]
    pub mode: Option<ConfigMode>,
    /// What a request without a key gets: `"shared"` (the default), `"reject"` or `"bypass"`.
    #[serde(default)]
    pub missing_key: Option<MissingKey>,
    /// The most keys stored at once (100 000 by default); at least 1.
    #[serde(default)]
    pub max_keys: Option<NonZeroUsize>,
    /// How long a key goes without requests before it may be evicted (10 minutes by default).
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    /// The rate-limit fields written on admitted responses: `"none"` (the default), `"ietf"`,
    /// `"x_rate_limit"` or `"both"`.
    #[serde(default)]
    pub response_headers: Option<HeaderStyle>,
}

impl RateLimitConfig {
    /// The builder with these settings applied on top of its defaults; set what stays in code
    /// (cost, observer, ...) on it, then [`build`](RateLimitBuilder::build).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a quota with a zero (`quota.rate`, `tier.gold.burst`, ...) or a
    /// span past 500 years, an empty tier (`tier.gold`), or a `tier_of` entry naming an
    /// undefined tier or a key the `key` extractor cannot produce (`tier_of`). A file without
    /// any quota is accepted here (the quotas may come from code) and refused by `build`
    /// (`quota` missing).
    pub fn builder(&self) -> Result<ConfigBuilder, ConfigError> {
        let key = self.key.clone().unwrap_or_default();
        let tier_of = match &self.tier_of {
            Some(entries) => ConfigTiers::new(&key, entries, self.tier.as_ref())?,
            None => ConfigTiers::default(),
        };
        let mut builder = RateLimitLayer::builder()
            .key(key)
            .algorithm(self.algorithm.unwrap_or_default())
            .tier_of(tier_of)
            .response_headers(self.response_headers.unwrap_or(HeaderStyle::None));
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        for quota in self.quota.iter().flatten() {
            builder = builder.quota(quota.validated("quota")?);
        }
        for (name, quotas) in self.tier.iter().flatten() {
            if quotas.is_empty() {
                return Err(ConfigError::missing(
                    PATTERN,
                    format!("tier.{name}"),
                    "needs at least one quota",
                ));
            }
            let quotas = quotas
                .iter()
                .map(|q| q.validated(&format!("tier.{name}")))
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.tier(name.clone(), quotas);
        }
        builder = match self.mode.unwrap_or_default() {
            ConfigMode::Reject => builder,
            ConfigMode::Wait { max_wait } => builder.wait(max_wait.get()),
            ConfigMode::Shadow => builder.shadow(),
        };
        if let Some(missing) = self.missing_key {
            builder = builder.missing_key(missing);
        }
        if let Some(max_keys) = self.max_keys {
            builder = builder.max_keys(max_keys.get());
        }
        if let Some(idle) = self.idle_timeout {
            builder = builder.idle_timeout(idle.get());
        }
        Ok(builder)
    }

    /// Builds the layer: [`builder`](Self::builder), then [`RateLimitBuilder::build`].
    ///
    /// # Errors
    ///
    /// Those of [`builder`](Self::builder), and a missing `quota` for a file without one.
    pub fn build(&self) -> Result<ConfigLayer, ConfigError> {
        self.builder()?.build()
    }
}

/// One quota in a configuration file: `{ rate = 100, per = "1s", burst = 20, name = "edge" }`
/// ([`Quota::new`]`(rate, per).burst(burst).named(name)`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Units per period; at least 1.
    pub rate: u32,
    /// The period; longer than zero.
    #[serde(deserialize_with = "period")]
    pub per: ConfigDuration,
    /// The units that may be spent at once (`rate` when absent); at least 1.
    #[serde(default)]
    pub burst: Option<u32>,
    /// The policy name, in response fields and errors (`"default"` when absent).
    #[serde(default)]
    pub name: Option<String>,
}

impl QuotaConfig {
    /// `rate` units per `per`, burst and name left to their defaults.
    #[must_use]
    pub fn new(rate: u32, per: Duration) -> Self {
        Self {
            rate,
            per: per.into(),
            burst: None,
            name: None,
        }
    }

    /// The [`Quota`] (zeros raised to the least valid value, as [`Quota::new`] does; the
    /// configuration file refuses them instead).
    #[must_use]
    pub fn quota(&self) -> Quota {
        let mut quota = Quota::new(self.rate, self.per.get());
        if let Some(burst) = self.burst {
            quota = quota.burst(burst);
        }
        if let Some(name) = &self.name {
            quota = quota.named(name.clone());
        }
        quota
    }

    /// The quota, or the rule a number of the file breaks (a zero, or a span past 500 years)
    /// rather than the clamp [`Quota::new`] applies.
    /// `table` is where the quota sits in the file (`quota`, `tier.gold`).
    fn validated(&self, table: &str) -> Result<Quota, ConfigError> {
        if self.rate == 0 {
            return Err(ConfigError::zero(PATTERN, "rate", "must be at least 1").in_table(table));
        }
        if self.per.get().is_zero() {
            return Err(
                ConfigError::zero(PATTERN, "per", "must be longer than zero").in_table(table),
            );
        }
        if self.burst == Some(0) {
            return Err(ConfigError::zero(PATTERN, "burst", "must be at least 1").in_table(table));
        }
        let quota = self.quota();
        if quota.period() != self.per.get() || quota.burst_size() != self.burst.unwrap_or(self.rate)
        {
            return Err(ConfigError::out_of_range(
                PATTERN,
                "per",
                "and `burst` × the emission interval must span at most 500 years",
            )
            .in_table(table));
        }
        Ok(quota)
    }
}

/// What a request over the limit gets, in a configuration file: `mode = "reject"` (the
/// default), `mode = "shadow"` or `mode = { wait = { max_wait = "500ms" } }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ConfigMode {
    /// Refused at once ([`RateLimitBuilder`]'s default).
    #[default]
    Reject,
    /// Waits for room up to `max_wait` ([`RateLimitBuilder::wait`]).
    Wait {
        /// The longest a request waits for its turn.
        max_wait: ConfigDuration,
    },
    /// Counted and reported, never refused ([`RateLimitBuilder::shadow`]).
    Shadow,
}

/// The algorithm chosen by name in a configuration file (`algorithm = "token_bucket"`): an
/// [`Algorithm`] that decides as the algorithm it names, with that algorithm's state.
///
/// Each decision is one `match` on the state (no boxing, no allocation per decision); a state
/// is 16 bytes per quota and key, the mutex-guarded states of the token bucket and the window
/// algorithms boxed behind it (one allocation when a key is first seen). A layer built in code
/// with a concrete algorithm ([`Gcra`], ...) pays neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfigAlgorithm {
    /// [`Gcra`] (`"gcra"`, the default).
    #[default]
    Gcra,
    /// [`TokenBucket`] (`"token_bucket"`).
    TokenBucket,
    /// [`LeakyBucket`] (`"leaky_bucket"`).
    LeakyBucket,
    /// [`FixedWindow`] (`"fixed_window"`).
    FixedWindow,
    /// [`SlidingWindow`] (`"sliding_window"`).
    SlidingWindow,
    /// [`SlidingLog`] (`"sliding_log"`).
    SlidingLog,
}

/// The state of one [`ConfigAlgorithm`] quota: the state of the algorithm it names.
#[derive(Debug)]
pub struct ConfigAlgorithmState(AnyState);

/// One variant per algorithm (not per state type), so a state always decides with the
/// algorithm that made it.
#[derive(Debug)]
enum AnyState {
    Gcra(AtomicU64),
    TokenBucket(Box<TokenBucketState>),
    LeakyBucket(AtomicU64),
    FixedWindow(Box<WindowState>),
    SlidingWindow(Box<WindowState>),
    SlidingLog(Box<SlidingLogState>),
}

impl Algorithm for ConfigAlgorithm {
    type State = ConfigAlgorithmState;

    fn new_state(&self, quota: &Quota) -> ConfigAlgorithmState {
        ConfigAlgorithmState(match self {
            Self::Gcra => AnyState::Gcra(Gcra.new_state(quota)),
            Self::TokenBucket => AnyState::TokenBucket(Box::new(TokenBucket.new_state(quota))),
            Self::LeakyBucket => AnyState::LeakyBucket(LeakyBucket.new_state(quota)),
            Self::FixedWindow => AnyState::FixedWindow(Box::new(FixedWindow.new_state(quota))),
            Self::SlidingWindow => {
                AnyState::SlidingWindow(Box::new(SlidingWindow.new_state(quota)))
            }
            Self::SlidingLog => AnyState::SlidingLog(Box::new(SlidingLog.new_state(quota))),
        })
    }

    fn peek(&self, state: &ConfigAlgorithmState, quota: &Quota, cost: u32, now: u64) -> Verdict {
        match &state.0 {
            AnyState::Gcra(s) => Gcra.peek(s, quota, cost, now),
            AnyState::TokenBucket(s) => TokenBucket.peek(s, quota, cost, now),
            AnyState::LeakyBucket(s) => LeakyBucket.peek(s, quota, cost, now),
            AnyState::FixedWindow(s) => FixedWindow.peek(s, quota, cost, now),
            AnyState::SlidingWindow(s) => SlidingWindow.peek(s, quota, cost, now),
            AnyState::SlidingLog(s) => SlidingLog.peek(s, quota, cost, now),
        }
    }

    #[inline]
    fn acquire(
        &self,
        state: &ConfigAlgorithmState,
        quota: &Quota,
        cost: u32,
        now: u64,
        max_wait: u64,
    ) -> Verdict {
        match &state.0 {
            AnyState::Gcra(s) => Gcra.acquire(s, quota, cost, now, max_wait),
            AnyState::TokenBucket(s) => TokenBucket.acquire(s, quota, cost, now, max_wait),
            AnyState::LeakyBucket(s) => LeakyBucket.acquire(s, quota, cost, now, max_wait),
            AnyState::FixedWindow(s) => FixedWindow.acquire(s, quota, cost, now, max_wait),
            AnyState::SlidingWindow(s) => SlidingWindow.acquire(s, quota, cost, now, max_wait),
            AnyState::SlidingLog(s) => SlidingLog.acquire(s, quota, cost, now, max_wait),
        }
    }

    fn release(&self, state: &ConfigAlgorithmState, quota: &Quota, cost: u32, now: u64) {
        match &state.0 {
            AnyState::Gcra(s) => Gcra.release(s, quota, cost, now),
            AnyState::TokenBucket(s) => TokenBucket.release(s, quota, cost, now),
            AnyState::LeakyBucket(s) => LeakyBucket.release(s, quota, cost, now),
            AnyState::FixedWindow(s) => FixedWindow.release(s, quota, cost, now),
            AnyState::SlidingWindow(s) => SlidingWindow.release(s, quota, cost, now),
            AnyState::SlidingLog(s) => SlidingLog.release(s, quota, cost, now),
        }
    }

    fn rest_at(state: &ConfigAlgorithmState) -> u64 {
        match &state.0 {
            AnyState::Gcra(s) => Gcra::rest_at(s),
            AnyState::TokenBucket(s) => TokenBucket::rest_at(s),
            AnyState::LeakyBucket(s) => LeakyBucket::rest_at(s),
            AnyState::FixedWindow(s) => FixedWindow::rest_at(s),
            AnyState::SlidingWindow(s) => SlidingWindow::rest_at(s),
            AnyState::SlidingLog(s) => SlidingLog::rest_at(s),
        }
    }
}

/// The tier of each key a configuration file's `tier_of` table names: a [`TierOf`] over the
/// [`SpecKey`]s of a [`KeySpec`], one hash-map lookup per request (none when the table is
/// empty). Keys it does not name get the default tier.
#[derive(Clone, Debug, Default)]
pub struct ConfigTiers {
    keys: HashMap<SpecKey, Name>,
    /// `method_path` keys, by route then method (a route is compared as text, and a
    /// [`weir_core::RouteKey`] cannot be made from a runtime string).
    routes: HashMap<Box<str>, Vec<(Method, Name)>>,
}

impl ConfigTiers {
    fn new(
        key: &KeySpec,
        entries: &BTreeMap<String, String>,
        tiers: Option<&BTreeMap<String, Vec<QuotaConfig>>>,
    ) -> Result<Self, ConfigError> {
        let mut this = Self::default();
        for (text, tier) in entries {
            if !tiers.is_some_and(|tiers| tiers.contains_key(tier)) {
                return Err(ConfigError::unknown(
                    PATTERN,
                    "tier_of",
                    format!("`{text}` is assigned `{tier}`, which is not defined under `tier`"),
                ));
            }
            let invalid = || {
                ConfigError::invalid(
                    PATTERN,
                    "tier_of",
                    format!(
                        "`{text}` is not a key the `key` extractor produces (an IP address for \
                         peer_ip, a header value for header and the API keys, host[:port] for \
                         authority, \"METHOD /route\" for method_path; none for global)"
                    ),
                )
            };
            let name = Name::from(tier.clone());
            if matches!(key, KeySpec::MethodPath) {
                let (method, route) = method_path(text).ok_or_else(invalid)?;
                this.routes
                    .entry(route.into())
                    .or_default()
                    .push((method, name));
            } else {
                this.keys
                    .insert(spec_key(key, text).ok_or_else(invalid)?, name);
            }
        }
        Ok(this)
    }

    /// The number of keys the table assigns a tier.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len() + self.routes.values().map(Vec::len).sum::<usize>()
    }

    /// Whether the table assigns no key a tier (every key in the default tier).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.routes.is_empty()
    }
}

/// `"POST /login"`: a method, spaces, a route.
fn method_path(text: &str) -> Option<(Method, &str)> {
    let (method, route) = text.trim().split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let route = route.trim_start();
    (!route.is_empty()).then_some((method, route))
}

/// The key `key` extracts from a request whose key reads `text`.
fn spec_key(key: &KeySpec, text: &str) -> Option<SpecKey> {
    match key {
        KeySpec::PeerIp | KeySpec::ForwardedIp(_) => text.trim().parse().ok().map(SpecKey::Ip),
        KeySpec::Header(_) => HeaderValue::from_str(text).ok().map(SpecKey::Header),
        KeySpec::ApiKey | KeySpec::ApiKeyHeader(_) | KeySpec::Bearer => {
            let token = ApiKeyToken::from(HeaderValue::from_str(text).ok()?);
            (!token.as_bytes().is_empty()).then_some(SpecKey::ApiKey(token))
        }
        KeySpec::Authority => text
            .trim()
            .parse::<http::uri::Authority>()
            .ok()
            .map(SpecKey::Authority),
        // `global` has one key for every request: a tier for it is the default tier's quotas.
        _ => None,
    }
}

impl TierOf<SpecKey> for ConfigTiers {
    #[inline]
    fn tier(&self, key: &SpecKey) -> Option<&str> {
        if let SpecKey::MethodPath(method, route) = key {
            if self.routes.is_empty() {
                return None;
            }
            let methods = self.routes.get(route.as_str())?;
            return methods
                .iter()
                .find(|(m, _)| m == method)
                .map(|(_, tier)| tier.as_str());
        }
        if self.keys.is_empty() {
            return None;
        }
        self.keys.get(key).map(Name::as_str)
    }
}

// ------------------------------------------------------------------------------------------
// Deserialization helpers
// ------------------------------------------------------------------------------------------

/// One quota table or a list of them.
struct OneOrMany(Vec<QuotaConfig>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a quota such as { rate = 100, per = "1s" }, or a list of quotas"#)
            }

            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<OneOrMany, M::Error> {
                QuotaConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|quota| OneOrMany(vec![quota]))
            }

            fn visit_seq<S: de::SeqAccess<'de>>(self, seq: S) -> Result<OneOrMany, S::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

fn quotas<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<QuotaConfig>>, D::Error> {
    OneOrMany::deserialize(d).map(|quotas| Some(quotas.0))
}

fn tiers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, Vec<QuotaConfig>>>, D::Error> {
    let tiers = BTreeMap::<String, OneOrMany>::deserialize(d)?;
    Ok(Some(
        tiers
            .into_iter()
            .map(|(name, quotas)| (name, quotas.0))
            .collect(),
    ))
}

fn period<'de, D: Deserializer<'de>>(d: D) -> Result<ConfigDuration, D::Error> {
    let per = ConfigDuration::deserialize(d)?;
    if per.get().is_zero() {
        return Err(de::Error::custom("quota.per must be longer than zero"));
    }
    Ok(per)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http::{Request, Response};
    use proptest::prelude::*;
    use tokio::time::Instant;
    use tower::{Service, ServiceExt, service_fn};
    use tower_layer::Layer;
    use weir_core::{BoxError, Error, KeyExtractor, KeyedConfig};

    use super::*;
    use crate::shared::Mode;

    fn parse(text: &str) -> RateLimitConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse_error(text: &str) -> String {
        toml::from_str::<RateLimitConfig>(text)
            .expect_err(text)
            .to_string()
    }

    fn build_error(text: &str) -> String {
        parse(text).build().expect_err(text).to_string()
    }

    fn ok()
    -> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future = impl Send> + Clone
    {
        service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) })
    }

    fn request(tenant: Option<&str>) -> Request<()> {
        let mut req = Request::get("/");
        if let Some(tenant) = tenant {
            req = req.header("x-tenant", tenant);
        }
        req.body(()).expect("a valid request")
    }

    /// Sends one request; returns its result and how long it waited (paused time).
    async fn send<S>(
        svc: &mut S,
        tenant: Option<&str>,
    ) -> (Result<Response<()>, BoxError>, Duration)
    where
        S: Service<Request<()>, Response = Response<()>, Error = BoxError>,
    {
        let start = Instant::now();
        let result = match svc.ready().await {
            Ok(svc) => svc.call(request(tenant)).await,
            Err(e) => Err(e),
        };
        (result, start.elapsed())
    }

    fn field<'a>(res: &'a Response<()>, name: &str) -> &'a str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn refusal(result: Result<Response<()>, BoxError>) -> (String, String, Duration) {
        let err = result.expect_err("refused");
        let err = Error::find(&*err).expect("a weir error");
        assert!(err.is_rate_limited(), "{err}");
        let policy = err.rate_limit().map(|i| i.policy().to_owned());
        (
            err.layer().unwrap_or("").to_owned(),
            policy.unwrap_or_default(),
            err.retry_after().unwrap_or_default(),
        )
    }

    const FULL: &str = r#"
        name = "api"
        algorithm = "token_bucket"
        key = { header = "x-tenant" }
        quota = [
            { rate = 3, per = "1s", name = "second" },
            { rate = 1000, per = "1d", burst = 5, name = "daily" },
        ]
        mode = { wait = { max_wait = "1s" } }
        missing_key = "reject"
        max_keys = 1
        idle_timeout = "2m"
        response_headers = "x_rate_limit"

        [tier]
        gold = { rate = 10, per = "1s", name = "gold" }

        [tier_of]
        acme = "gold"
    "#;

    #[test]
    fn a_full_file_sets_every_field_of_the_builder() {
        let config = parse(FULL);
        let b = config.builder().expect("valid");
        assert_eq!(b.name.as_str(), "api");
        assert_eq!(b.algorithm, ConfigAlgorithm::TokenBucket);
        assert_eq!(
            b.extractor,
            KeySpec::Header(http::HeaderName::from_static("x-tenant"))
        );
        assert_eq!(
            b.quotas,
            [
                Quota::new(3, Duration::from_secs(1)).named("second"),
                Quota::new(1000, Duration::from_secs(86_400))
                    .burst(5)
                    .named("daily"),
            ]
        );
        assert_eq!(
            b.tiers,
            [(Name::new("gold"), vec![Quota::per_second(10).named("gold")])]
        );
        assert_eq!(b.tier_of.len(), 1);
        assert_eq!(b.mode, Mode::Wait(Duration::from_secs(1)));
        assert_eq!(b.missing, MissingKey::Reject);
        assert_eq!(
            b.keyed,
            KeyedConfig::new()
                .max_keys(1)
                .idle_timeout(Duration::from_secs(120))
        );
        assert_eq!(b.protocol.style(), HeaderStyle::XRateLimit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_file_builds_a_layer_that_behaves_as_written() {
        let (layer, handle) = parse(FULL)
            .builder()
            .expect("valid")
            .build_with_handle()
            .expect("valid");
        assert_eq!(layer.name(), "api");
        assert_eq!(handle.store().algorithm(), &ConfigAlgorithm::TokenBucket);
        let mut svc = layer.layer(ok());
        // The token bucket refills at period boundaries counted from the store's epoch: start
        // 1 ms after a day's boundary (a second's too), so the daily quota's refill is a day away.
        const DAY: u64 = 86_400_000_000_000;
        let into_day = crate::store::nanos(Instant::now()) % DAY;
        tokio::time::advance(Duration::from_nanos(DAY - into_day + 1_000_000)).await;

        // `tier_of` puts acme in the gold tier. It is the one key stored (`max_keys = 1`).
        let (res, _) = send(&mut svc, Some("acme")).await;
        let res = res.expect("admitted");
        assert_eq!(field(&res, "x-ratelimit-limit"), "10");
        assert_eq!(field(&res, "x-ratelimit-remaining"), "9");
        assert_eq!(handle.keys(), 1);

        // The default tier (zeta shares the overflow state, shaped like it): 3 at once (burst =
        // rate), fields in the legacy style.
        for left in ["2", "1", "0"] {
            let (res, waited) = send(&mut svc, Some("zeta")).await;
            let res = res.expect("admitted");
            assert_eq!(waited, Duration::ZERO);
            assert_eq!(field(&res, "x-ratelimit-limit"), "3");
            assert_eq!(field(&res, "x-ratelimit-remaining"), left);
            assert_eq!(field(&res, "ratelimit"), "");
        }
        // Wait mode: the 4th waits for the token bucket's next refill, within `max_wait`.
        let (res, waited) = send(&mut svc, Some("zeta")).await;
        assert!(res.is_ok());
        let (from, to) = (Duration::from_millis(999), Duration::from_secs(1));
        assert!(waited >= from && waited <= to, "{waited:?}");
        // Stacked: the 5th unit empties the daily quota's burst, which is then reported...
        let (res, waited) = send(&mut svc, Some("zeta")).await;
        let res = res.expect("admitted");
        assert_eq!(waited, Duration::ZERO);
        assert_eq!(field(&res, "x-ratelimit-limit"), "1000");
        assert_eq!(field(&res, "x-ratelimit-remaining"), "0");
        // ... and refuses the 6th at once: its refill is beyond `max_wait`.
        let (res, waited) = send(&mut svc, Some("zeta")).await;
        let (layer_name, policy, retry_after) = refusal(res);
        assert_eq!((layer_name.as_str(), policy.as_str()), ("api", "daily"));
        assert!(retry_after > Duration::from_secs(1));
        assert_eq!(waited, Duration::ZERO);

        // `missing_key = "reject"`: refused as a missing key (a 401), not as a rate limit.
        let (res, _) = send(&mut svc, None).await;
        let err = res.expect_err("refused");
        let err = Error::find(&*err).expect("a weir error");
        assert!(err.is_missing_key(), "{err}");
        assert_eq!(err.layer(), Some("api"));

        // `max_keys = 1`: another new key is not stored either; it shares the overflow state,
        // which zeta emptied.
        let (res, _) = send(&mut svc, Some("omega")).await;
        assert_eq!(refusal(res).1, "daily");
        assert_eq!(handle.keys(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_table_gives_the_builders_defaults() {
        let config = parse("");
        assert_eq!(config, RateLimitConfig::default());
        let b = config.builder().expect("valid");
        let defaults = RateLimitLayer::builder();
        assert_eq!(b.name, defaults.name);
        assert_eq!(b.quotas, defaults.quotas);
        assert_eq!(b.tiers, defaults.tiers);
        assert_eq!(b.mode, defaults.mode);
        assert_eq!(b.missing, defaults.missing);
        assert_eq!(b.keyed, defaults.keyed);
        assert_eq!(b.algorithm, ConfigAlgorithm::Gcra);
        assert_eq!(b.extractor, KeySpec::Global);
        assert!(b.tier_of.is_empty());
        assert_eq!(b.protocol.style(), HeaderStyle::None);
        // No quota: refused by `build` exactly as the builder refuses it.
        assert_eq!(config.build().err(), defaults.build().err());
        assert!(config.build().err().is_some_and(|e| e.is_missing()));

        // With a quota from code it limits as the builder's default layer does: GCRA, reject
        // mode, one state for every request, no response field.
        let (layer, handle) = b
            .quota(Quota::per_second(2))
            .build_with_handle()
            .expect("valid");
        assert_eq!(layer.name(), "rate_limit");
        let mut svc = layer.layer(ok());
        for tenant in [Some("a"), Some("b")] {
            let (res, _) = send(&mut svc, tenant).await;
            assert!(res.expect("admitted").headers().is_empty());
        }
        // `global` keeps its one state as the builder's `Global` does: no map, no key stored.
        assert_eq!(handle.keys(), 0);
        let (res, waited) = send(&mut svc, Some("c")).await;
        let (name, policy, retry_after) = refusal(res);
        assert_eq!((name.as_str(), policy.as_str()), ("rate_limit", "default"));
        assert_eq!(retry_after, Duration::from_millis(500));
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn shadow_mode_counts_but_never_refuses_and_reject_refuses() {
        let quota = "quota = { rate = 1, per = \"1m\" }\n";
        let shadow = parse(&format!("{quota}mode = \"shadow\""));
        assert_eq!(shadow.builder().expect("valid").mode, Mode::Shadow);
        let mut svc = shadow.build().expect("valid").layer(ok());
        for _ in 0..3 {
            assert!(send(&mut svc, None).await.0.is_ok());
        }
        let reject = parse(&format!("{quota}mode = \"reject\""));
        let mut svc = reject.build().expect("valid").layer(ok());
        assert!(send(&mut svc, None).await.0.is_ok());
        assert_eq!(
            refusal(send(&mut svc, None).await.0).2,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_single_quota_a_table_or_a_list_read_the_same() {
        let inline = parse(r#"quota = { rate = 5, per = "2m", burst = 7, name = "q" }"#);
        let table = parse("[quota]\nrate = 5\nper = \"2m\"\nburst = 7\nname = \"q\"\n");
        let list = parse("[[quota]]\nrate = 5\nper = \"2m\"\nburst = 7\nname = \"q\"\n");
        assert_eq!(inline, table);
        assert_eq!(inline, list);
        let quotas = inline.quota.expect("one quota");
        assert_eq!(
            quotas.iter().map(QuotaConfig::quota).collect::<Vec<_>>(),
            [Quota::new(5, Duration::from_secs(120)).burst(7).named("q")]
        );
        // Burst defaults to the rate, as in `Quota::new`.
        let q = QuotaConfig::new(4, Duration::from_secs(1)).quota();
        assert_eq!((q.burst_size(), q.name()), (4, "default"));
    }

    #[test]
    fn every_algorithm_mode_and_header_style_reads_by_name() {
        for (name, algorithm) in [
            ("gcra", ConfigAlgorithm::Gcra),
            ("token_bucket", ConfigAlgorithm::TokenBucket),
            ("leaky_bucket", ConfigAlgorithm::LeakyBucket),
            ("fixed_window", ConfigAlgorithm::FixedWindow),
            ("sliding_window", ConfigAlgorithm::SlidingWindow),
            ("sliding_log", ConfigAlgorithm::SlidingLog),
        ] {
            let config = parse(&format!("algorithm = \"{name}\""));
            assert_eq!(config.algorithm, Some(algorithm), "{name}");
        }
        for (name, style) in [
            ("none", HeaderStyle::None),
            ("ietf", HeaderStyle::Ietf),
            ("x_rate_limit", HeaderStyle::XRateLimit),
            ("both", HeaderStyle::Both),
        ] {
            let config = parse(&format!("response_headers = \"{name}\""));
            let b = config.builder().expect("valid");
            assert_eq!(b.protocol.style(), style, "{name}");
        }
        for (name, missing) in [
            ("shared", MissingKey::Shared),
            ("reject", MissingKey::Reject),
            ("bypass", MissingKey::Bypass),
        ] {
            let config = parse(&format!("missing_key = \"{name}\""));
            assert_eq!(config.missing_key, Some(missing), "{name}");
        }
        let wait = parse(r#"mode = { wait = { max_wait = "250ms" } }"#);
        let b = wait.builder().expect("valid");
        assert_eq!(b.mode, Mode::Wait(Duration::from_millis(250)));
        // The state a file-chosen algorithm keeps per quota and key.
        assert_eq!(size_of::<ConfigAlgorithmState>(), 16);
    }

    #[test]
    fn the_config_layer_and_its_service_are_send_sync_and_clone() {
        fn assert_shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
        let layer = parse("quota = { rate = 1, per = \"1s\" }")
            .build()
            .expect("valid");
        assert_shareable(&layer);
        assert_shareable(&layer.layer(ok()));
    }

    fn tiers_of(text: &str) -> (KeySpec, ConfigTiers) {
        let b = parse(text)
            .builder()
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        (b.extractor, b.tier_of)
    }

    fn tier_of_request(text: &str, req: &Request<()>) -> Option<String> {
        let (spec, tiers) = tiers_of(text);
        let key = spec.extract(req)?;
        tiers.tier(&key).map(str::to_owned)
    }

    #[test]
    fn tier_of_reads_each_kind_of_key_as_its_extractor_produces_it() {
        let tier = "[tier]\ngold = { rate = 9, per = \"1s\" }\n";
        let gold = Some("gold".to_owned());

        let mut req = Request::get("http://inventory:8080/login")
            .body(())
            .expect("valid");
        let peer: SocketAddr = "10.0.0.7:5000".parse().expect("valid");
        req.extensions_mut().insert(peer);
        let ip = format!("key = \"peer_ip\"\n{tier}[tier_of]\n\"10.0.0.7\" = \"gold\"\n");
        assert_eq!(tier_of_request(&ip, &req), gold);
        let other_ip = ip.replace("10.0.0.7\"", "10.0.0.8\"");
        assert_eq!(tier_of_request(&other_ip, &req), None);

        let authority =
            format!("key = \"authority\"\n{tier}[tier_of]\n\"inventory:8080\" = \"gold\"\n");
        assert_eq!(tier_of_request(&authority, &req), gold);

        let route = format!("key = \"method_path\"\n{tier}[tier_of]\n\"GET /login\" = \"gold\"\n");
        assert_eq!(tier_of_request(&route, &req), gold);
        let post = Request::post("/login").body(()).expect("valid");
        assert_eq!(tier_of_request(&route, &post), None);

        let bearer = Request::get("/")
            .header("authorization", "Bearer pk_live_1")
            .header("x-tenant", "acme")
            .body(())
            .expect("valid");
        let token = format!("key = \"bearer\"\n{tier}[tier_of]\npk_live_1 = \"gold\"\n");
        assert_eq!(tier_of_request(&token, &bearer), gold);
        let header =
            format!("key = {{ header = \"x-tenant\" }}\n{tier}[tier_of]\nacme = \"gold\"\n");
        assert_eq!(tier_of_request(&header, &bearer), gold);
        assert_eq!(tier_of_request(&header, &req), None);
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        for (text, field) in [
            ("max_key = 5", "max_key"),
            ("quota = { rate = 1, per = \"1s\", brust = 2 }", "brust"),
            ("[[quota]]\nrate = 1\nperiod = \"1s\"", "period"),
            (
                "[tier]\ngold = [{ rate = 1, per = \"1s\", bursts = 1 }]",
                "bursts",
            ),
            ("mode = { wait = { max = \"1s\" } }", "max"),
            ("key = { forwarded_ip = { proxies = 1 } }", "proxies"),
        ] {
            let error = parse_error(text);
            // serde's words for a struct, toml's for an enum's struct variant.
            let named = error.contains(&format!("unknown field `{field}`"))
                || error.contains(&format!("unexpected keys in table: {field},"));
            assert!(named, "{text}: {error}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_with_its_field_named() {
        for (text, field, rule) in [
            (
                "quota = { rate = 1, per = \"0s\" }",
                "per",
                "quota.per must be longer than zero",
            ),
            (
                "quota = { rate = 1, per = \"1 sec\" }",
                "per",
                "invalid duration",
            ),
            ("quota = { rate = -1, per = \"1s\" }", "rate", "rate"),
            ("quota = { per = \"1s\" }", "quota", "missing field `rate`"),
            (
                "idle_timeout = \"10 minutes\"",
                "idle_timeout",
                "invalid duration",
            ),
            (
                "algorithm = \"gcra2\"",
                "algorithm",
                "unknown variant `gcra2`",
            ),
            ("mode = \"drop\"", "mode", "unknown variant `drop`"),
            (
                "missing_key = \"drop\"",
                "missing_key",
                "unknown variant `drop`",
            ),
            (
                "response_headers = \"draft\"",
                "response_headers",
                "unknown variant `draft`",
            ),
            ("max_keys = 0", "max_keys", "nonzero"),
            ("key = \"cookie\"", "key", "unknown variant `cookie`"),
        ] {
            let error = parse_error(text);
            assert!(
                error.contains(field) && error.contains(rule),
                "{text}: {error}"
            );
        }
        for (text, error) in [
            (
                "quota = { rate = 0, per = \"1s\" }",
                "rate limit: `quota.rate` must be at least 1",
            ),
            (
                "quota = { rate = 1, per = \"1s\", burst = 0 }",
                "rate limit: `quota.burst` must be at least 1",
            ),
            (
                "quota = { rate = 1, per = \"1s\" }\n[tier]\ngold = { rate = 0, per = \"1s\" }",
                "rate limit: `tier.gold.rate` must be at least 1",
            ),
            (
                "quota = { rate = 1, per = \"1s\" }\n[tier]\ngold = []",
                "rate limit: `tier.gold` needs at least one quota",
            ),
            (
                "quota = { rate = 1, per = \"1d\", burst = 200000 }",
                "rate limit: `quota.per` and `burst` × the emission interval must span at most 500 years",
            ),
        ] {
            assert_eq!(build_error(text), error, "{text}");
        }
        let unknown_tier = "key = \"api_key\"\n[tier]\ngold = { rate = 9, per = \"1s\" }\n\
                            [tier_of]\nk1 = \"silver\"";
        assert!(
            parse(unknown_tier)
                .builder()
                .err()
                .is_some_and(|e| e.is_unknown() && e.field() == "tier_of")
        );
        assert!(build_error(unknown_tier).contains("`silver`"));
        for bad_key in [
            "key = \"peer_ip\"\n[tier]\ngold = { rate = 9, per = \"1s\" }\n[tier_of]\n\"10.0.0\" = \"gold\"",
            "key = \"method_path\"\n[tier]\ngold = { rate = 9, per = \"1s\" }\n[tier_of]\n\"/login\" = \"gold\"",
            "[tier]\ngold = { rate = 9, per = \"1s\" }\n[tier_of]\nanyone = \"gold\"",
        ] {
            assert!(
                parse(bad_key)
                    .builder()
                    .err()
                    .is_some_and(|e| e.is_invalid() && e.field() == "tier_of"),
                "{bad_key}"
            );
            assert!(
                build_error(bad_key).starts_with("rate limit: `tier_of`"),
                "{bad_key}"
            );
        }
    }

    /// Drives `concrete` and `config` through the same decisions and checks every answer.
    fn decides_the_same<A: Algorithm>(
        concrete: &A,
        config: ConfigAlgorithm,
        quota: &Quota,
        ops: &[(u64, u32, bool, bool)],
    ) -> Result<(), TestCaseError> {
        let a = concrete.new_state(quota);
        let b = config.new_state(quota);
        let mut now = 0;
        for &(dt, cost, wait, release) in ops {
            now += dt;
            let max_wait = if wait { 1_000_000_000 } else { 0 };
            prop_assert_eq!(
                concrete.peek(&a, quota, cost, now),
                config.peek(&b, quota, cost, now)
            );
            let verdict = concrete.acquire(&a, quota, cost, now, max_wait);
            prop_assert_eq!(verdict, config.acquire(&b, quota, cost, now, max_wait));
            if release && verdict.is_admitted() {
                concrete.release(&a, quota, cost, now);
                config.release(&b, quota, cost, now);
            }
            prop_assert_eq!(A::rest_at(&a), ConfigAlgorithm::rest_at(&b));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn a_config_algorithm_decides_as_the_algorithm_it_names(
            rate in 1u32..6,
            burst in 1u32..8,
            ops in proptest::collection::vec(
                (0u64..600_000_000, 1u32..4, any::<bool>(), any::<bool>()),
                1..80,
            ),
        ) {
            let quota = Quota::per_second(rate).burst(burst);
            decides_the_same(&Gcra, ConfigAlgorithm::Gcra, &quota, &ops)?;
            decides_the_same(&TokenBucket, ConfigAlgorithm::TokenBucket, &quota, &ops)?;
            decides_the_same(&LeakyBucket, ConfigAlgorithm::LeakyBucket, &quota, &ops)?;
            decides_the_same(&FixedWindow, ConfigAlgorithm::FixedWindow, &quota, &ops)?;
            decides_the_same(&SlidingWindow, ConfigAlgorithm::SlidingWindow, &quota, &ops)?;
            decides_the_same(&SlidingLog, ConfigAlgorithm::SlidingLog, &quota, &ops)?;
        }
    }
}
