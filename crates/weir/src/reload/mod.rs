//! Reloading running settings from a configuration file (#25): a [`Reloader`] applies a new
//! configuration through the handles of what it was built with: a server stack
//! ([`ServerReloader`], from [`ServerConfig::build_reloadable`](crate::ServerConfig::build_reloadable)), a client stack of any mode
//! ([`ClientReloader`], from [`ClientConfig::build_reloadable`](crate::ClientConfig::build_reloadable) and
//! [`ClientConfig::build_reloadable_with`](crate::ClientConfig::build_reloadable_with)), or one pattern's layer ([`PatternReloader`], from
//! [`reloader`]); and [`watch`] reloads any of them whenever the file changes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use weir_core::ConfigError;

/// The first of the named fields that differs between `$a` and `$b`, as `Some("field")`.
macro_rules! first_change {
    ($a:expr, $b:expr; $($f:ident),* $(,)?) => {{
        let (a, b) = (&$a, &$b);
        None$(.or_else(|| (a.$f != b.$f).then_some(stringify!($f))))*
    }};
}

mod client;
mod pattern;
mod server;
#[cfg(test)]
mod tests;
mod watch;

pub use self::client::{ClientReloader, ClientTarget};
pub use self::pattern::{PatternConfig, PatternReloader, PatternTarget, reloader};
pub use self::server::{ServerReloader, ServerTarget};
pub use self::watch::{Watcher, watch};

/// Something that takes a new configuration while it runs: what [`watch`] reloads. Every
/// [`Reloader`] is one.
pub trait Reload: Send + Sync + 'static {
    /// The configuration it reads (a [`ServerConfig`](crate::ServerConfig), a [`ClientConfig`](crate::ClientConfig), a pattern's table).
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
/// - [`ServerReloader`]: a [`ServerConfig`](crate::ServerConfig) to a server stack ([`ServerConfig::build_reloadable`](crate::ServerConfig::build_reloadable)).
/// - [`ClientReloader`]: a [`ClientConfig`](crate::ClientConfig) to a client stack, one breaker, one per authority or
///   gRPC ([`ClientConfig::build_reloadable`](crate::ClientConfig::build_reloadable), [`ClientConfig::build_reloadable_with`](crate::ClientConfig::build_reloadable_with)).
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
