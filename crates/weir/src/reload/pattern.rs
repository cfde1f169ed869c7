//! [`PatternReloader`]: one pattern's table applied to its layer's handle.

use std::fmt;
use std::marker::PhantomData;

use weir_bulkhead::{BulkheadSettings, PartitionedConfig, PartitionedTuning};
use weir_chaos::{ChaosConfig, ChaosSettings};
use weir_circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerConfig};
use weir_core::ConfigError;
use weir_core::config::SpecKey;
use weir_core::reconfigure::Reconfigure;
use weir_load_shed::{LoadShedConfig, LoadShedTuning};
use weir_rate_limit::{RateLimitConfig, RateLimitSettings};
use weir_retry::{RetryConfig, RetrySettings};
use weir_timeout::{RouteTimeouts, TimeoutBuilder, TimeoutConfig};

use super::{Reloader, Target, restart};

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
/// rules (in flight keeps its settings, key state carried over, ...). [`watch`](crate::watch) reloads it from
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
/// | `ChaosConfig` | `ChaosHandle` | `name`, `seed`, `latency_distribution`, `status_code`, `grpc_code`, `body_after`, `header`, `route_prefix`, `window_start`, `window_end` (the switch and the probabilities are applied); an HTTP field for a plain-mode layer (the handle's) |
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

impl PatternConfig<ChaosSettings> for ChaosConfig {
    const PATTERN: &'static str = "chaos";

    fn reload_settings(&self) -> Result<ChaosSettings, ConfigError> {
        // HTTP mode reads every field; a plain-mode layer's handle refuses the HTTP ones.
        self.build_http()?;
        Ok(self.settings())
    }

    fn fixed_change(&self, new: &Self) -> Option<&'static str> {
        first_change!(self, new;
            name, seed, latency_distribution, status_code, grpc_code, body_after, header,
            route_prefix, window_start, window_end)
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
