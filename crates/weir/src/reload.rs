//! Reloading running settings from a configuration file (#25): a [`Reloader`] applies a new
//! configuration through the handles of what it was built with: a server stack
//! ([`ServerReloader`], from [`ServerConfig::build_reloadable`]), a client stack of any mode
//! ([`ClientReloader`], from [`ClientConfig::build_reloadable`] and
//! [`ClientConfig::build_reloadable_with`]), or one pattern's layer ([`PatternReloader`], from
//! [`reloader`]); and [`watch`] reloads any of them whenever the file changes.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use weir_bulkhead::{BulkheadHandle, BulkheadSettings, PartitionedConfig, PartitionedTuning};
use weir_circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerConfig, CircuitBreakerHandle};
use weir_core::config::SpecKey;
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, ConfigError};
use weir_load_shed::{ConfigLimit, Fixed, LoadShedConfig, LoadShedHandle, LoadShedTuning};
use weir_rate_limit::{
    ConfigAlgorithm, ConfigTiers, Http, MemoryStore, RateLimitConfig, RateLimitHandle,
    RateLimitSettings, UnitCost,
};
use weir_retry::{RetryConfig, RetryHandle, RetrySettings};
use weir_timeout::{RouteTimeouts, TimeoutBuilder, TimeoutConfig, TimeoutHandle};

use crate::presets::{ClientBuilder, ClientStack, Mode, SERVER};
use crate::settings::{ClientConfig, ConfigServerStack, ServerConfig};

/// The handle on the rate limit of a stack built from a [`ServerConfig`].
type ConfigRateLimitHandle = RateLimitHandle<
    weir_core::config::KeySpec,
    MemoryStore<ConfigAlgorithm>,
    ConfigTiers,
    UnitCost,
    (),
    Http,
>;

/// Something that takes a new configuration while it runs: what [`watch`] reloads. Every
/// [`Reloader`] is one.
pub trait Reload: Send + Sync + 'static {
    /// The configuration it reads (a [`ServerConfig`], a [`ClientConfig`], a pattern's table).
    type Config: Send + 'static;

    /// Validates `config` whole and, if every table passes, applies it; otherwise applies
    /// nothing.
    ///
    /// # Errors
    ///
    /// The first broken rule, or a change that needs a restart, as a [`ConfigError`] naming
    /// its field.
    fn reload(&self, config: &Self::Config) -> Result<(), ConfigError>;
}

/// What a [`Reloader`] applies a configuration to: the handles of a running stack or layer
/// ([`ServerTarget`], [`ClientTarget`], [`PatternTarget`]).
pub trait Target: Send + Sync + 'static {
    /// The configuration it takes.
    type Config: Clone + Send + 'static;

    /// Validates `new` whole (by the rules the builders apply), checks that every change from
    /// `running` can be taken while it runs, and only then applies it through the handles.
    ///
    /// # Errors
    ///
    /// The first broken rule, or a change that needs a restart (a conflict naming the field);
    /// nothing is applied then.
    fn apply(&self, running: &Self::Config, new: &Self::Config) -> Result<(), ConfigError>;
}

struct Ledger<T: Target> {
    target: T,
    /// The configuration in force: what a reload is compared with. Held across a reload, so
    /// reloads are applied one at a time.
    running: Mutex<T::Config>,
    applied: AtomicU64,
    refused: AtomicU64,
}

/// Applies a new configuration to what it was built with, whole or not at all, and counts
/// the outcomes; cheap to clone (every clone is the same reloader). A [`Reload`], so [`watch`]
/// takes it.
///
/// - [`ServerReloader`]: a [`ServerConfig`] to a server stack ([`ServerConfig::build_reloadable`]).
/// - [`ClientReloader`]: a [`ClientConfig`] to a client stack, one breaker, one per authority or
///   gRPC ([`ClientConfig::build_reloadable`], [`ClientConfig::build_reloadable_with`]).
/// - [`PatternReloader`]: one pattern's table (a `RateLimitConfig`, a `CircuitBreakerConfig`,
///   ...) to its layer's handle ([`reloader`]).
///
/// [`reload`](Self::reload) validates the whole new configuration by the builders' rules,
/// checks that every change can be applied to the running layers, and only then applies each
/// layer's new settings through its handle: a configuration refused for any reason changes
/// nothing, and [`running`](Self::running) stays the one in force.
pub struct Reloader<T: Target> {
    inner: Arc<Ledger<T>>,
}

impl<T: Target> Reloader<T> {
    /// A reloader applying new configurations to `target`, which runs `running` now.
    #[must_use]
    pub fn new(target: T, running: T::Config) -> Self {
        Self {
            inner: Arc::new(Ledger {
                target,
                running: Mutex::new(running),
                applied: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Applies `config` if every table passes and every change can be applied while it runs;
    /// otherwise applies nothing. Counted in [`applied`](Self::applied) or
    /// [`refused`](Self::refused) (and, with the `metrics` feature, in
    /// `weir_config_reload_total{result}`).
    ///
    /// # Errors
    ///
    /// The first broken rule of the new configuration (as its `build()` names it), or a change
    /// that needs a restart (`is_conflict()`, the field named).
    pub fn reload(&self, config: &T::Config) -> Result<(), ConfigError> {
        let inner = &*self.inner;
        let result = {
            let mut running = inner.running.lock().unwrap_or_else(PoisonError::into_inner);
            let result = inner.target.apply(&running, config);
            if result.is_ok() {
                *running = config.clone();
            }
            result
        };
        let counter = if result.is_ok() {
            &inner.applied
        } else {
            &inner.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "weir_config_reload_total",
            "result" => if result.is_ok() { "applied" } else { "refused" }
        )
        .increment(1);
        result
    }

    /// The configuration in force (the one built, or the last one applied).
    #[must_use]
    pub fn running(&self) -> T::Config {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Configurations applied since the reloader was made.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.inner.applied.load(Ordering::Relaxed)
    }

    /// Configurations refused (invalid, or needing a restart); the running settings were kept.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// What it applies configurations to.
    #[must_use]
    pub fn target(&self) -> &T {
        &self.inner.target
    }
}

impl<T: Target> Clone for Reloader<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Target> Reload for Reloader<T> {
    type Config = T::Config;

    fn reload(&self, config: &T::Config) -> Result<(), ConfigError> {
        Self::reload(self, config)
    }
}

impl<T: Target> fmt::Debug for Reloader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("applied", &self.applied())
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

/// The error of a field that cannot change while the layer runs.
fn restart(pattern: &'static str, field: impl Into<String>) -> ConfigError {
    ConfigError::conflict(
        pattern,
        field.into(),
        "cannot change while the layer runs: it needs a restart",
    )
}

/// The first of the named fields that differs between `$a` and `$b`, as `Some("field")`.
macro_rules! first_change {
    ($a:expr, $b:expr; $($f:ident),* $(,)?) => {{
        let (a, b) = (&$a, &$b);
        None$(.or_else(|| (a.$f != b.$f).then_some(stringify!($f))))*
    }};
}

// --- The server stack ---------------------------------------------------------------------

/// Applies a new [`ServerConfig`] to the [`ConfigServerStack`] it was built with
/// ([`ServerConfig::build_reloadable`]).
///
/// What a reload applies: `max_in_flight` (the load shedder's limit: a lower one lets the calls
/// in flight finish and admits no new one until they are below it), the timeout's `timeout`,
/// `incoming_floor`, `below_floor` and `expose_deadline` (a call already started keeps its
/// deadline; calls started after the reload get the new one), and the `rate_limit` table's quotas
/// and tiers ([`RateLimitHandle`]'s `apply`; each key's state carries over). What needs a restart
/// (a [`ConfigError`] that says so, naming the field): a `rate_limit` table added or removed, a
/// change of its other fields (its key, algorithm, mode, `tier_of`, key bounds, response fields,
/// name), a tier added, removed or renamed, a tier's number of quotas, `refusal_body`,
/// `timeout_status`, `missing_key_status` and `exempt_paths` (the server stack has no breaker,
/// retry or bulkhead).
///
/// ```
/// use weir::ServerConfig;
///
/// let config: ServerConfig = toml::from_str(r#"
///     [rate_limit]
///     quota = { rate = 100, per = "1s" }
/// "#).unwrap();
/// let (_stack, reloader) = config.build_reloadable().unwrap();
///
/// let raised: ServerConfig = toml::from_str(r#"
///     [rate_limit]
///     quota = { rate = 500, per = "1s" }
/// "#).unwrap();
/// reloader.reload(&raised).unwrap();
/// assert_eq!(reloader.applied(), 1);
///
/// let zero: ServerConfig = toml::from_str(r#"
///     [rate_limit]
///     quota = { rate = 0, per = "1s" }
/// "#).unwrap();
/// let err = reloader.reload(&zero).unwrap_err();
/// assert_eq!(err.field(), "rate_limit.quota.rate");
/// assert_eq!(reloader.refused(), 1);
/// assert_eq!(reloader.running(), raised, "a refused file keeps the running settings");
/// ```
pub type ServerReloader = Reloader<ServerTarget>;

/// The handles of a server stack built from a [`ServerConfig`]: what a [`ServerReloader`]
/// applies a new one to.
pub struct ServerTarget {
    rate_limit: Option<ConfigRateLimitHandle>,
    shed: LoadShedHandle,
    timeout: TimeoutHandle<Duration>,
}

impl fmt::Debug for ServerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTarget")
            .field("rate_limit", &self.rate_limit.is_some())
            .field("shed", &self.shed)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ServerConfig {
    /// As [`build`](Self::build), with a [`ServerReloader`] that applies a new configuration to
    /// the stack while it runs (and [`watch`] to do so when the file changes).
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build).
    pub fn build_reloadable(&self) -> Result<(ConfigServerStack, ServerReloader), ConfigError> {
        let stack = self.build()?;
        let target = ServerTarget {
            rate_limit: stack.rate_limit().get().map(|layer| layer.handle()),
            shed: stack.load_shed(),
            timeout: stack.timeout_handle(),
        };
        Ok((stack, Reloader::new(target, self.clone())))
    }
}

/// The first field that differs between `a` and `b` and that a running server stack cannot
/// take, as the file names it.
fn server_fixed_change(a: &ServerConfig, b: &ServerConfig) -> Option<String> {
    if let Some(field) = first_change!(a, b;
        refusal_body, timeout_status, missing_key_status, exempt_paths)
    {
        return Some(field.to_owned());
    }
    match (&a.rate_limit, &b.rate_limit) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => Some("rate_limit".to_owned()),
        (Some(x), Some(y)) => x.fixed_change(y).map(|f| format!("rate_limit.{f}")),
    }
}

impl Target for ServerTarget {
    type Config = ServerConfig;

    fn apply(&self, running: &ServerConfig, config: &ServerConfig) -> Result<(), ConfigError> {
        // 1. The whole file, by the builders' rules (every table), as a new stack would be.
        let builder = config.builder()?;
        let timeout = builder.timeout_settings();
        let max_in_flight = builder.max_in_flight_setting();
        builder.build()?;
        // 2. Every change must be one the running stack can take.
        if let Some(field) = server_fixed_change(running, config) {
            return Err(restart(SERVER, field));
        }
        let rate_limit = match (&self.rate_limit, &config.rate_limit) {
            (Some(handle), Some(table)) => {
                let settings = table.settings().map_err(|e| e.in_table("rate_limit"))?;
                handle
                    .check(&settings)
                    .map_err(|e| e.in_table("rate_limit"))?;
                Some((handle, settings))
            }
            _ => None,
        };
        // The shedder's tuning in force with the new limit: its name, shares and durations are
        // its own, so only the limit changes (of the same algorithm, `Fixed`).
        let shed = (running.max_in_flight != config.max_in_flight).then(|| {
            let mut tuning = self.shed.settings();
            tuning.limit = Some(ConfigLimit::Fixed(Fixed::new(max_in_flight)));
            tuning
        });
        let timeout_changed = first_change!(running, config;
            timeout, incoming_floor, below_floor, expose_deadline)
        .is_some();
        // 3. Apply: every check passed (the timeout's and the shedder's settings were checked by
        // `build` above, by the same rules as their handles'), so no apply below fails.
        if let Some(tuning) = shed {
            self.shed.apply(tuning)?;
        }
        if timeout_changed {
            self.timeout.apply(timeout)?;
        }
        if let Some((handle, settings)) = rate_limit {
            handle
                .apply(settings)
                .map_err(|e| e.in_table("rate_limit"))?;
        }
        Ok(())
    }
}

// --- The client stack ---------------------------------------------------------------------

/// Applies a new [`ClientConfig`] to the [`ClientStack`] it was built with
/// ([`ClientConfig::build_reloadable`]; [`ClientConfig::build_reloadable_with`] for the
/// per-authority and gRPC stacks, whose breaker handle is `B`).
///
/// [`reload`](Reloader::reload) validates the whole new configuration first (by the rules
/// [`ClientConfig::build`] applies, `attempt_timeout` at most `total_timeout` among them), then
/// applies each layer's new settings through its handle, the breaker's first (the one handle that
/// can refuse on its state: a breaker that has held 8 window shapes refuses a ninth
/// `sampling_window`); a configuration refused for any reason changes nothing.
///
/// Every field of a [`ClientConfig`] is applied: `max_retries` (to calls that start from now on;
/// one in flight finishes its retries under the number it started with), `failure_rate`,
/// `minimum_calls`, `sampling_window` and `open_duration` (at once; the breaker's state is kept;
/// per authority, every authority's breaker and those made later), `max_concurrent` (a smaller
/// bulkhead lets the calls running finish and admits no new one above its new size),
/// `total_timeout` and `attempt_timeout` (to calls started after the reload).
///
/// ```
/// use weir::ClientConfig;
///
/// let config: ClientConfig = toml::from_str("max_retries = 2").unwrap();
/// let (_stack, reloader) = config.build_reloadable().unwrap();
/// reloader.reload(&toml::from_str("max_retries = 5").unwrap()).unwrap();
///
/// let broken: ClientConfig = toml::from_str(r#"
///     max_retries = 1
///     total_timeout = "1s"
///     attempt_timeout = "2s"
/// "#).unwrap();
/// let err = reloader.reload(&broken).unwrap_err();
/// assert_eq!(err.field(), "attempt_timeout");
/// assert_eq!((reloader.applied(), reloader.refused()), (1, 1));
/// assert_eq!(reloader.running().max_retries, Some(5), "a refused file changes nothing");
/// ```
pub type ClientReloader<B = CircuitBreakerHandle> = Reloader<ClientTarget<B>>;

/// The handles of a client stack built from a [`ClientConfig`], its breaker's `B` (one
/// breaker's, or every authority's): what a [`ClientReloader`] applies a new one to.
pub struct ClientTarget<B = CircuitBreakerHandle> {
    retry: RetryHandle,
    breaker: B,
    bulkhead: BulkheadHandle,
    total: TimeoutHandle<Duration>,
    attempt: TimeoutHandle<Duration>,
}

impl<B: fmt::Debug> fmt::Debug for ClientTarget<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTarget")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("bulkhead", &self.bulkhead)
            .field("total", &self.total)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl ClientConfig {
    /// As [`build`](Self::build), with a [`ClientReloader`] that applies a new configuration to
    /// the stack while it runs (and [`watch`] to do so when the file changes).
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build).
    pub fn build_reloadable(&self) -> Result<(ClientStack, ClientReloader), ConfigError> {
        self.build_reloadable_with(|builder| builder.build())
    }

    /// As [`build_reloadable`](Self::build_reloadable) for a stack of another mode, order or
    /// observer: `build` takes [`builder`](Self::builder)'s [`ClientBuilder`] (these settings)
    /// and builds the stack, for example `|b| b.per_authority().build()` (one breaker per
    /// authority: a reload applies its settings to every authority's breaker) or
    /// `|b| b.grpc().build()`. A setting of the file that `build` changes again (say
    /// `.max_retries(9)`) is the file's again at the first reload that changes it.
    ///
    /// ```
    /// use weir::ClientConfig;
    ///
    /// let config: ClientConfig = toml::from_str("minimum_calls = 20").unwrap();
    /// let (stack, reloader) = config.build_reloadable_with(|b| b.per_authority().build())?;
    /// reloader.reload(&toml::from_str("minimum_calls = 5").unwrap())?;
    /// # let _ = stack;
    /// # Ok::<(), weir::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of `build`.
    pub fn build_reloadable_with<K, Ord, O>(
        &self,
        build: impl FnOnce(ClientBuilder) -> Result<ClientStack<K, Ord, O>, ConfigError>,
    ) -> Result<(ClientStack<K, Ord, O>, ClientReloader<K::BreakerHandle>), ConfigError>
    where
        K: Mode,
        K::BreakerHandle: Reconfigure<Settings = CircuitBreakerBuilder> + Send + Sync + 'static,
    {
        let stack = build(self.builder()?)?;
        let (total, attempt) = stack.timeout_handles();
        let target = ClientTarget {
            retry: stack.retry_handle().clone(),
            breaker: stack.breaker_handle().clone(),
            bulkhead: stack.bulkhead_handle().clone(),
            total: total.clone(),
            attempt: attempt.clone(),
        };
        Ok((stack, Reloader::new(target, self.clone())))
    }
}

impl<B> Target for ClientTarget<B>
where
    B: Reconfigure<Settings = CircuitBreakerBuilder> + Send + Sync + 'static,
{
    type Config = ClientConfig;

    fn apply(&self, old: &ClientConfig, config: &ClientConfig) -> Result<(), ConfigError> {
        // 1. The whole file, by the builder's rules, as a new stack would be.
        let builder = config.builder()?;
        let total = builder.total_timeout_settings();
        let attempt = builder.attempt_timeout_settings();
        let breaker = builder.breaker_tuning(self.breaker.settings());
        let mut retry = self.retry.settings();
        retry.max_attempts = builder.max_retries_setting().saturating_add(1);
        let mut bulkhead = self.bulkhead.settings();
        bulkhead.max_concurrent = builder.max_concurrent_setting();
        builder.build()?;
        // 2. Apply what changed. Every setting passed `build`'s rules, which are the handles'
        // rules; the breaker is first, as the one handle that can still refuse (on its state),
        // and then nothing else has been applied.
        if first_change!(old, config;
            failure_rate, minimum_calls, sampling_window, open_duration)
        .is_some()
        {
            self.breaker.apply(breaker)?;
        }
        if old.max_retries != config.max_retries {
            self.retry.apply(retry)?;
        }
        if old.max_concurrent != config.max_concurrent {
            self.bulkhead.apply(bulkhead)?;
        }
        if old.total_timeout != config.total_timeout {
            self.total.apply(total)?;
        }
        if old.attempt_timeout != config.attempt_timeout {
            self.attempt.apply(attempt)?;
        }
        Ok(())
    }
}

// --- One pattern's layer ------------------------------------------------------------------

/// A pattern's configuration table as a running layer's handle takes it again: implemented for
/// every pattern's `*Config` (and the plain bulkhead's [`BulkheadSettings`]), with `S` the
/// settings type of the handle's [`Reconfigure`]. What [`reloader`] needs.
pub trait PatternConfig<S>: Clone + Send + 'static {
    /// The pattern, in the errors of a change that needs a restart.
    const PATTERN: &'static str;

    /// Validates the table whole, by the rules its `build()` applies, and gives the settings
    /// the handle's [`apply`](Reconfigure::apply) takes.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] `build()` would return, naming the field.
    fn reload_settings(&self) -> Result<S, ConfigError>;

    /// The first field that differs between `self` (the table running) and `new` and that a
    /// running layer cannot take (its name, its key, ...); `None` when the handle can apply
    /// every change.
    fn fixed_change(&self, new: &Self) -> Option<&'static str>;
}

/// Applies a new pattern table `C` to a running layer through its handle `H`; from
/// [`reloader`].
pub type PatternReloader<C, H> = Reloader<PatternTarget<C, H>>;

/// A layer's handle, and the type of the table it is reloaded from: what a
/// [`PatternReloader`] applies a new table to.
pub struct PatternTarget<C, H> {
    handle: H,
    config: PhantomData<fn(C)>,
}

impl<C, H: fmt::Debug> fmt::Debug for PatternTarget<C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternTarget")
            .field("handle", &self.handle)
            .finish()
    }
}

impl<C, H> Target for PatternTarget<C, H>
where
    H: Reconfigure + Send + Sync + 'static,
    C: PatternConfig<H::Settings>,
{
    type Config = C;

    fn apply(&self, running: &C, new: &C) -> Result<(), ConfigError> {
        let settings = new.reload_settings()?;
        if let Some(field) = running.fixed_change(new) {
            return Err(restart(C::PATTERN, field));
        }
        self.handle.apply(settings)
    }
}

/// A [`Reloader`] for one pattern's layer: `config` is the table it was built from (checked
/// here), `handle` its handle. Each [`reload`](Reloader::reload) validates the new table by its
/// `build()`'s rules ([`PatternConfig::reload_settings`]), refuses a change of a field fixed
/// when the layer was built ([`PatternConfig::fixed_change`]: a conflict naming it), then
/// applies the settings through the handle's [`Reconfigure::apply`], which keeps the pattern's
/// rules (in flight keeps its settings, key state carried over, ...). [`watch`] reloads it from
/// its file.
///
/// | table | handle | fixed (a restart) |
/// |---|---|---|
/// | `RateLimitConfig` | a `RateLimitHandle` (in memory or Redis) | `name`, `key`, `algorithm`, `mode`, `tier_of`, `missing_key`, `max_keys`, `idle_timeout`, `response_headers`; a tier added, removed or renamed, a number of quotas (the handle's) |
/// | `CircuitBreakerConfig` | `CircuitBreakerHandle`, `KeyedCircuitBreakerHandle` | `name`, `seed`, `key`, `max_keys`, `idle_timeout`, `missing_key`; a ninth window shape (the handle's) |
/// | `RetryConfig` | `RetryHandle` | `settings.name`, `settings.seed`, the HTTP fields (`body_limit`, `wait_for_body`, `retry_non_idempotent`, `budget_per_server`, `max_servers`) |
/// | `TimeoutConfig` | `TimeoutHandle<RouteTimeouts>` | `name` (the route table is replaced whole) |
/// | `PartitionedConfig` | `PartitionedHandle` | `key`, `missing_key`, `max_keys`, `idle_timeout`, `name`; a partition added or removed, a pool added or removed (the handle's) |
/// | `LoadShedConfig` | `LoadShedHandle` | `name`; another algorithm than the running one (the handle's) |
/// | `BulkheadSettings` | `BulkheadHandle` | `name`, `backpressure`, `release_at_head` |
///
/// ```
/// use weir::circuit_breaker::CircuitBreakerConfig;
///
/// let config: CircuitBreakerConfig = toml::from_str("failure_rate = 50\nminimum_calls = 20")?;
/// let (_layer, handle) = config.builder()?.build_with_handle()?;
/// let reloader = weir::reloader(&config, handle.clone())?;
///
/// reloader.reload(&toml::from_str("failure_rate = 25\nminimum_calls = 10")?)?;
/// let err = reloader
///     .reload(&toml::from_str("name = \"other\"\nfailure_rate = 25\nminimum_calls = 10")?)
///     .unwrap_err();
/// assert_eq!((err.field(), err.is_conflict()), ("name", true));
/// assert_eq!((reloader.applied(), reloader.refused()), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `config`'s broken rule, if it has one.
pub fn reloader<C, H>(config: &C, handle: H) -> Result<PatternReloader<C, H>, ConfigError>
where
    H: Reconfigure + Send + Sync + 'static,
    C: PatternConfig<H::Settings>,
{
    config.reload_settings()?;
    let target = PatternTarget {
        handle,
        config: PhantomData,
    };
    Ok(Reloader::new(target, config.clone()))
}

impl PatternConfig<RateLimitSettings> for RateLimitConfig {
    const PATTERN: &'static str = "rate limit";

    fn reload_settings(&self) -> Result<RateLimitSettings, ConfigError> {
        self.build()?;
        self.settings()
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        first_change!(self, new;
            name, tier_of, key, algorithm, mode, missing_key, max_keys, idle_timeout,
            response_headers)
    }
}

impl PatternConfig<CircuitBreakerBuilder> for CircuitBreakerConfig {
    const PATTERN: &'static str = "circuit breaker";

    fn reload_settings(&self) -> Result<CircuitBreakerBuilder, ConfigError> {
        let keyed = self.key.is_some()
            || self.max_keys.is_some()
            || self.idle_timeout.is_some()
            || self.missing_key.is_some();
        if keyed {
            self.build_keyed()?;
        } else {
            self.build()?;
        }
        self.builder()
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        first_change!(self, new; name, seed, key, max_keys, idle_timeout, missing_key)
    }
}

impl PatternConfig<RetrySettings> for RetryConfig {
    const PATTERN: &'static str = "retry";

    fn reload_settings(&self) -> Result<RetrySettings, ConfigError> {
        // The HTTP builder reads every field (the HTTP ones are left out of other tables).
        self.http_builder()?.build()?;
        Ok(self.settings.clone())
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        if self.settings.name != new.settings.name {
            return Some("name");
        }
        if self.settings.seed != new.settings.seed {
            return Some("seed");
        }
        first_change!(self, new;
            body_limit, wait_for_body, retry_non_idempotent, budget_per_server, max_servers)
    }
}

impl PatternConfig<TimeoutBuilder<RouteTimeouts>> for TimeoutConfig {
    const PATTERN: &'static str = "timeout";

    fn reload_settings(&self) -> Result<TimeoutBuilder<RouteTimeouts>, ConfigError> {
        self.build()?;
        self.builder()
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        first_change!(self, new; name)
    }
}

impl PatternConfig<PartitionedTuning<SpecKey>> for PartitionedConfig {
    const PATTERN: &'static str = "bulkhead";

    fn reload_settings(&self) -> Result<PartitionedTuning<SpecKey>, ConfigError> {
        let builder = self.builder()?;
        let tuning = builder.tuning();
        builder.build()?;
        Ok(tuning)
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        first_change!(self, new; key, missing_key, max_keys, idle_timeout, name)
    }
}

impl PatternConfig<LoadShedTuning> for LoadShedConfig {
    const PATTERN: &'static str = "load shed";

    fn reload_settings(&self) -> Result<LoadShedTuning, ConfigError> {
        let builder = self.builder()?;
        let tuning = builder.tuning();
        builder.build()?;
        Ok(tuning)
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        (self.settings.name != new.settings.name).then_some("name")
    }
}

impl PatternConfig<Self> for BulkheadSettings {
    const PATTERN: &'static str = "bulkhead";

    fn reload_settings(&self) -> Result<Self, ConfigError> {
        self.validate()?;
        Ok(self.clone())
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        first_change!(self, new; name, backpressure, release_at_head)
    }
}

// --- Watching the file --------------------------------------------------------------------

/// What the watcher's task and its handle share.
struct Shared {
    wake: Notify,
    /// Woken after every look at the file.
    done: Notify,
    checks: AtomicU64,
    applied: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A running [`watch`]: its counters, a way to check the file now, and the task (stopped when
/// the watcher is dropped).
pub struct Watcher {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Checks the file now instead of at the next poll (what a SIGHUP handler, or an admin
    /// endpoint, calls).
    pub fn check_now(&self) {
        self.shared.wake.notify_one();
    }

    /// Checks the file now and waits until it has been looked at (and applied, or refused);
    /// the number of files applied since the watcher started.
    pub async fn check(&self) -> u64 {
        let done = self.shared.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        self.check_now();
        done.await;
        self.applied()
    }

    /// How many times the file was looked at (each poll and each [`check_now`](Self::check_now)).
    #[must_use]
    pub fn checks(&self) -> u64 {
        self.shared.checks.load(Ordering::Relaxed)
    }

    /// Changed files applied.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.shared.applied.load(Ordering::Relaxed)
    }

    /// Changed files that were not applied: unreadable, not parsed, or refused by the reload
    /// (the running settings were kept).
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// The last failure's message (with its field), if any.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("checks", &self.checks())
            .field("applied", &self.applied())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

/// The file as last seen: its contents.
struct Seen {
    text: String,
}

fn look(path: &Path) -> std::io::Result<Seen> {
    Ok(Seen {
        text: std::fs::read_to_string(path)?,
    })
}

/// Watches the configuration file at `path` and reloads `target` when it changes, on a task
/// spawned on the current tokio runtime (call it from within one).
///
/// **How a change is seen: by polling, every `every`** (and at once on
/// [`Watcher::check_now`]): the file's contents are read and compared with what was last applied
/// or refused (not its modification time, which a copy may keep and a `touch` changes alone), so
/// an editor's save, a `mv` of a new file into place and a Kubernetes ConfigMap's symlink swap
/// are all seen, on every platform, with no file-notification dependency; a file whose text did
/// not change is not reloaded, and a refused text is not tried again until it changes. The contents at the start are taken as the running configuration's. SIGHUP is left
/// to the application (`tokio::signal::unix` and [`Watcher::check_now`], as the gateway example
/// does), so this crate needs no signal handling.
///
/// `parse` turns the file's text into a configuration (`|text| toml::from_str(text)`, or any
/// serde format). A file that cannot be read or parsed, or that the reload refuses, keeps the
/// running settings: the error is logged at `warn` with its field (tracing target
/// `weir::reload`), counted in [`Watcher::failed`], and with the `metrics` feature counted as
/// `weir_config_reload_total{result="refused"}` (an applied one as `result="applied"`; a file
/// that could not be read or parsed as `result="unreadable"`).
pub fn watch<R, F, E>(path: impl Into<PathBuf>, target: R, every: Duration, parse: F) -> Watcher
where
    R: Reload,
    F: Fn(&str) -> Result<R::Config, E> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let path = path.into();
    let shared = Arc::new(Shared {
        wake: Notify::new(),
        done: Notify::new(),
        checks: AtomicU64::new(0),
        applied: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_error: Mutex::new(None),
    });
    let task = tokio::spawn(run(path, target, every, parse, Arc::clone(&shared)));
    Watcher { shared, task }
}

async fn run<R, F, E>(path: PathBuf, target: R, every: Duration, parse: F, shared: Arc<Shared>)
where
    R: Reload,
    F: Fn(&str) -> Result<R::Config, E> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let mut last = look(&path).ok();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.wake.notified() => {}
        }
        shared.checks.fetch_add(1, Ordering::Relaxed);
        check_once(&path, &target, &parse, &shared, &mut last);
        shared.done.notify_waiters();
    }
}

/// One look at the file: reloaded if its text changed since `last`.
fn check_once<R, F, E>(path: &Path, target: &R, parse: &F, shared: &Shared, last: &mut Option<Seen>)
where
    R: Reload,
    F: Fn(&str) -> Result<R::Config, E>,
    E: Into<BoxError>,
{
    let seen = match look(path) {
        Ok(seen) => seen,
        Err(e) => {
            fail(
                shared,
                path,
                &format!("cannot read the file: {e}"),
                "unreadable",
            );
            return;
        }
    };
    if last.as_ref().is_some_and(|l| l.text == seen.text) {
        *last = Some(seen);
        return;
    }
    let outcome = match parse(&seen.text) {
        Ok(config) => target
            .reload(&config)
            .map_err(|e| (e.to_string(), "refused")),
        Err(e) => Err((e.into().to_string(), "unreadable")),
    };
    match outcome {
        Ok(()) => {
            shared.applied.fetch_add(1, Ordering::Relaxed);
            tracing::info!(target: "weir::reload", path = %path.display(), "configuration reloaded");
        }
        Err((message, result)) => fail(shared, path, &message, result),
    }
    *last = Some(seen);
}

fn fail(shared: &Shared, path: &Path, message: &str, result: &'static str) {
    shared.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        target: "weir::reload",
        path = %path.display(),
        error = %message,
        "configuration not reloaded; the running settings are kept"
    );
    #[cfg(feature = "metrics")]
    if result == "unreadable" {
        metrics::counter!("weir_config_reload_total", "result" => result).increment(1);
    }
    let _ = result;
    *shared
        .last_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
}
