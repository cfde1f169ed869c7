//! Reloading a running stack's settings from its configuration file (#25): [`ServerReloader`]
//! applies a new [`ServerConfig`] through the handles of the stack it was built with,
//! [`ClientReloader`] a new [`ClientConfig`], and [`watch`] reloads either whenever the file
//! changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use weir_bulkhead::BulkheadHandle;
use weir_circuit_breaker::CircuitBreakerHandle;
use weir_core::protocol::Auto;
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, ConfigError};
use weir_load_shed::{ConfigLimit, Fixed, LoadShedHandle};
use weir_rate_limit::{
    ConfigAlgorithm, ConfigTiers, Http, MemoryStore, RateLimitConfig, RateLimitHandle, UnitCost,
};
use weir_retry::RetryHandle;
use weir_timeout::TimeoutHandle;

use crate::presets::{ClientStack, SERVER};
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

/// Something that takes a new configuration while it runs: what [`watch`] reloads.
pub trait Reload: Send + Sync + 'static {
    /// The configuration it reads (a [`ServerConfig`] or a [`ClientConfig`]).
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

struct Inner {
    /// The configuration in force: what a reload is compared with.
    running: Mutex<ServerConfig>,
    rate_limit: Option<ConfigRateLimitHandle>,
    shed: LoadShedHandle,
    timeout: TimeoutHandle<Duration, weir_core::protocol::Http>,
    applied: AtomicU64,
    refused: AtomicU64,
}

/// Applies a new [`ServerConfig`] to the [`ConfigServerStack`] it was built with
/// ([`ServerConfig::build_reloadable`]); cheap to clone (every clone is the same reloader).
///
/// [`reload`](Self::reload) validates the whole new configuration first (every table, by the
/// rules [`ServerConfig::build`] applies), then checks that every change can be applied to the
/// running stack, and only then applies each layer's new settings through its handle: a
/// configuration refused for any reason changes nothing.
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
#[derive(Clone)]
pub struct ServerReloader {
    inner: Arc<Inner>,
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
        let rate_limit = stack.rate_limit().get().map(|layer| layer.handle());
        let reloader = ServerReloader {
            inner: Arc::new(Inner {
                running: Mutex::new(self.clone()),
                rate_limit,
                shed: stack.load_shed(),
                timeout: stack.timeout_handle(),
                applied: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        };
        Ok((stack, reloader))
    }
}

/// The error of a field that cannot change while the stack runs.
fn restart(field: &str) -> ConfigError {
    ConfigError::conflict(
        SERVER,
        field.to_owned(),
        "cannot change while the stack runs: it needs a restart",
    )
}

/// `config` without the fields a reload applies (the shedder's limit, the timeout's settings,
/// the rate limit's quotas and tiers): what must be equal for the reload to apply.
fn fixed_part(config: &ServerConfig) -> ServerConfig {
    let mut fixed = config.clone();
    fixed.timeout = None;
    fixed.max_in_flight = None;
    fixed.expose_deadline = None;
    fixed.incoming_floor = None;
    fixed.below_floor = None;
    if let Some(rate_limit) = fixed.rate_limit.as_mut() {
        rate_limit.quota = None;
        rate_limit.tier = None;
    }
    fixed
}

/// The first field that differs between `a` and `b` (both without their reloadable parts), as
/// the file names it.
fn changed_field(a: &ServerConfig, b: &ServerConfig) -> Option<String> {
    macro_rules! fields {
        ($($f:ident),*) => {
            $(if a.$f != b.$f { return Some(stringify!($f).to_owned()); })*
        };
    }
    fields!(
        refusal_body,
        timeout_status,
        missing_key_status,
        exempt_paths
    );
    match (&a.rate_limit, &b.rate_limit) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => Some("rate_limit".to_owned()),
        (Some(x), Some(y)) => rate_limit_field(x, y).map(|f| format!("rate_limit.{f}")),
    }
}

fn rate_limit_field(a: &RateLimitConfig, b: &RateLimitConfig) -> Option<&'static str> {
    macro_rules! fields {
        ($($f:ident),*) => {
            $(if a.$f != b.$f { return Some(stringify!($f)); })*
        };
    }
    fields!(
        name,
        quota,
        tier,
        tier_of,
        key,
        algorithm,
        mode,
        missing_key,
        max_keys,
        idle_timeout,
        response_headers
    );
    None
}

impl ServerReloader {
    /// Applies `config` to the running stack if every table passes and every change can be
    /// applied while it runs; otherwise applies nothing. Counted in [`applied`](Self::applied)
    /// or [`refused`](Self::refused).
    ///
    /// # Errors
    ///
    /// The first broken rule of the new configuration (as [`ServerConfig::build`] names it), or
    /// a change that needs a restart (`is_conflict()`, the field named).
    pub fn reload(&self, config: &ServerConfig) -> Result<(), ConfigError> {
        let result = self.apply_all(config);
        let counter = if result.is_ok() {
            &self.inner.applied
        } else {
            &self.inner.refused
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

    fn apply_all(&self, config: &ServerConfig) -> Result<(), ConfigError> {
        // 1. The whole file, by the builders' rules (every table), as a new stack would be.
        let builder = config.builder()?;
        let timeout = builder.timeout_settings();
        let max_in_flight = builder.max_in_flight_setting();
        builder.build()?;
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // 2. Every change must be one the running stack can take.
        if let Some(field) = changed_field(&fixed_part(&running), &fixed_part(config)) {
            return Err(restart(&field));
        }
        let rate_limit = match (&self.inner.rate_limit, &config.rate_limit) {
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
            let mut tuning = self.inner.shed.settings();
            tuning.limit = Some(ConfigLimit::Fixed(Fixed::new(max_in_flight)));
            tuning
        });
        let timeout_changed = running.timeout != config.timeout
            || running.incoming_floor != config.incoming_floor
            || running.below_floor != config.below_floor
            || running.expose_deadline != config.expose_deadline;
        // 3. Apply: every check passed (the timeout's and the shedder's settings were checked by
        // `build` above, by the same rules as their handles'), so no apply below fails.
        if let Some(tuning) = shed {
            self.inner.shed.apply(tuning)?;
        }
        if timeout_changed {
            self.inner.timeout.apply(timeout)?;
        }
        if let Some((handle, settings)) = rate_limit {
            handle
                .apply(settings)
                .map_err(|e| e.in_table("rate_limit"))?;
        }
        *running = config.clone();
        Ok(())
    }

    /// The configuration in force (the one built, or the last one applied).
    #[must_use]
    pub fn running(&self) -> ServerConfig {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Configurations applied since the stack was built.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.inner.applied.load(Ordering::Relaxed)
    }

    /// Configurations refused (invalid, or needing a restart); the running settings were kept.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

impl Reload for ServerReloader {
    type Config = ServerConfig;

    fn reload(&self, config: &ServerConfig) -> Result<(), ConfigError> {
        Self::reload(self, config)
    }
}

impl fmt::Debug for ServerReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerReloader")
            .field("applied", &self.applied())
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

struct ClientInner {
    /// The configuration in force: what a reload is compared with.
    running: Mutex<ClientConfig>,
    retry: RetryHandle,
    breaker: CircuitBreakerHandle,
    bulkhead: BulkheadHandle,
    total: TimeoutHandle<Duration, Auto>,
    attempt: TimeoutHandle<Duration, Auto>,
    applied: AtomicU64,
    refused: AtomicU64,
}

/// Applies a new [`ClientConfig`] to the [`ClientStack`] it was built with
/// ([`ClientConfig::build_reloadable`]); cheap to clone (every clone is the same reloader).
///
/// [`reload`](Self::reload) validates the whole new configuration first (by the rules
/// [`ClientConfig::build`] applies, `attempt_timeout` at most `total_timeout` among them), then
/// applies each layer's new settings through its handle, the breaker's first (the one handle that
/// can refuse on its state: a breaker that has held 8 window shapes refuses a ninth
/// `sampling_window`); a configuration refused for any reason changes nothing.
///
/// Every field of a [`ClientConfig`] is applied: `max_retries` (to calls that start from now on;
/// one in flight finishes its retries under the number it started with), `failure_rate`,
/// `minimum_calls`, `sampling_window` and `open_duration` (at once; the breaker's state is kept),
/// `max_concurrent` (a smaller bulkhead lets the calls running finish and admits no new one above
/// its new size), `total_timeout` and `attempt_timeout` (to calls started after the reload).
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
#[derive(Clone)]
pub struct ClientReloader {
    inner: Arc<ClientInner>,
}

impl ClientConfig {
    /// As [`build`](Self::build), with a [`ClientReloader`] that applies a new configuration to
    /// the stack while it runs (and [`watch`] to do so when the file changes).
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build).
    pub fn build_reloadable(&self) -> Result<(ClientStack, ClientReloader), ConfigError> {
        let stack = self.build()?;
        let (total, attempt) = stack.timeout_handles();
        let reloader = ClientReloader {
            inner: Arc::new(ClientInner {
                running: Mutex::new(self.clone()),
                retry: stack.retry_handle().clone(),
                breaker: stack.breaker_handle().clone(),
                bulkhead: stack.bulkhead_handle().clone(),
                total: total.clone(),
                attempt: attempt.clone(),
                applied: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        };
        Ok((stack, reloader))
    }
}

impl ClientReloader {
    /// Applies `config` to the running stack if it passes every rule; otherwise applies
    /// nothing. Counted in [`applied`](Self::applied) or [`refused`](Self::refused).
    ///
    /// # Errors
    ///
    /// The first broken rule of the new configuration (as [`ClientConfig::build`] names it), or
    /// the breaker's refusal of a new window (see [`ClientReloader`]).
    pub fn reload(&self, config: &ClientConfig) -> Result<(), ConfigError> {
        let result = self.apply_all(config);
        let counter = if result.is_ok() {
            &self.inner.applied
        } else {
            &self.inner.refused
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

    fn apply_all(&self, config: &ClientConfig) -> Result<(), ConfigError> {
        let inner = &*self.inner;
        // 1. The whole file, by the builder's rules, as a new stack would be.
        let builder = config.builder()?;
        let total = builder.total_timeout_settings();
        let attempt = builder.attempt_timeout_settings();
        let breaker = builder.breaker_tuning(inner.breaker.settings());
        let mut retry = inner.retry.settings();
        retry.max_attempts = builder.max_retries_setting().saturating_add(1);
        let mut bulkhead = inner.bulkhead.settings();
        bulkhead.max_concurrent = builder.max_concurrent_setting();
        builder.build()?;
        let mut running = inner.running.lock().unwrap_or_else(PoisonError::into_inner);
        let old = &*running;
        // 2. Apply what changed. Every setting passed `build`'s rules, which are the handles'
        // rules; the breaker is first, as the one handle that can still refuse (on its state),
        // and then nothing else has been applied.
        if (
            old.failure_rate,
            old.minimum_calls,
            old.sampling_window,
            old.open_duration,
        ) != (
            config.failure_rate,
            config.minimum_calls,
            config.sampling_window,
            config.open_duration,
        ) {
            inner.breaker.apply(breaker)?;
        }
        if old.max_retries != config.max_retries {
            inner.retry.apply(retry)?;
        }
        if old.max_concurrent != config.max_concurrent {
            inner.bulkhead.apply(bulkhead)?;
        }
        if old.total_timeout != config.total_timeout {
            inner.total.apply(total)?;
        }
        if old.attempt_timeout != config.attempt_timeout {
            inner.attempt.apply(attempt)?;
        }
        *running = config.clone();
        Ok(())
    }

    /// The configuration in force (the one built, or the last one applied).
    #[must_use]
    pub fn running(&self) -> ClientConfig {
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Configurations applied since the stack was built.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.inner.applied.load(Ordering::Relaxed)
    }

    /// Configurations refused (invalid); the running settings were kept.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

impl Reload for ClientReloader {
    type Config = ClientConfig;

    fn reload(&self, config: &ClientConfig) -> Result<(), ConfigError> {
        Self::reload(self, config)
    }
}

impl fmt::Debug for ClientReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientReloader")
            .field("applied", &self.applied())
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

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
