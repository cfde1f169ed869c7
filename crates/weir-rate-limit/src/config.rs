//! [`RateLimitConfig`]: a rate limiter's settings read from a configuration file (feature
//! `serde`), and the one concrete layer type such a file builds: the algorithm chosen by name
//! ([`ConfigAlgorithm`]), the key by [`KeySpec`] and the tiers of keys by a table
//! ([`ConfigTiers`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use http::{HeaderValue, Method};
use serde::de::{self, Deserialize, Deserializer};
use weir_core::config::{ConfigDuration, KeySpec, SpecKey};
use weir_core::{Name, key::ApiKeyToken, key::MissingKey, wire::HeaderStyle};

use weir_core::ConfigError;

use crate::builder::RateLimitBuilder;
use crate::layer::RateLimitLayer;
use crate::protocol::Http;
use crate::quota::Quota;
use crate::settings::{PATTERN, RateLimitSettings};
use crate::state::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, SlidingLog, SlidingLogState, SlidingWindow,
    TokenBucket, TokenBucketState, Verdict, WindowState,
};
use crate::store::MemoryStore;
use crate::sync::AtomicU64;
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
        let (quotas, tiers) = self.validated_quotas()?;
        for quota in quotas {
            builder = builder.quota(quota);
        }
        for (name, quotas) in tiers {
            builder = builder.tier(name, quotas);
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

    /// The file's quotas and tiers as [`RateLimitSettings`], for a running layer's
    /// [`RateLimitHandle::apply`](crate::RateLimitHandle) (a reloaded file): each quota checked
    /// as [`builder`](Self::builder) checks it, the tiers in the order the builder adds them.
    /// Only the quotas and tiers: a change of any other field needs a new layer.
    ///
    /// # Errors
    ///
    /// A quota or a tier that [`builder`](Self::builder) would refuse (the same error).
    pub fn settings(&self) -> Result<RateLimitSettings, ConfigError> {
        let mut settings = RateLimitSettings::new();
        let (quotas, tiers) = self.validated_quotas()?;
        for quota in quotas {
            settings = settings.quota(quota);
        }
        for (name, quotas) in tiers {
            settings = settings.tier(name, quotas);
        }
        Ok(settings)
    }

    /// The default quotas and the tiers' quotas, each checked (the one rule of
    /// [`builder`](Self::builder) and [`settings`](Self::settings)): a quota's fields named
    /// `quota` or `tier.NAME`, an empty tier refused.
    fn validated_quotas(&self) -> Result<(Vec<Quota>, Vec<(String, Vec<Quota>)>), ConfigError> {
        let quotas = self
            .quota
            .iter()
            .flatten()
            .map(|quota| quota.validated("quota"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tiers = Vec::new();
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
            tiers.push((name.clone(), quotas));
        }
        Ok((quotas, tiers))
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
    /// [`weir_core::key::RouteKey`] cannot be made from a runtime string).
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
                // A listed key above the extractor's cap is kept as the digest its requests
                // get, so it still matches them.
                let listed = key.listed(spec_key(key, text).ok_or_else(invalid)?);
                this.keys.insert(listed, name);
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
        KeySpec::ApiKey { .. } | KeySpec::ApiKeyHeader(_) | KeySpec::Bearer { .. } => {
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
mod tests;
