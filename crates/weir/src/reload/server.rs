//! [`ServerReloader`]: a new [`ServerConfig`] applied to a running server stack.

use std::fmt;
use std::time::Duration;

use weir_chaos::ChaosHandle;
use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;
use weir_load_shed::{ConfigLimit, Fixed, LoadShedHandle};
use weir_rate_limit::{ConfigAlgorithm, ConfigTiers, Http, MemoryStore, RateLimitHandle, UnitCost};
use weir_timeout::TimeoutHandle;

use super::pattern::PatternConfig;
use super::{Reloader, Target, restart};
use crate::presets::SERVER;
use crate::settings::{ConfigServerStack, ServerConfig};

/// The handle on the rate limit of a stack built from a [`ServerConfig`].
type ConfigRateLimitHandle = RateLimitHandle<
    weir_core::config::KeySpec,
    MemoryStore<ConfigAlgorithm>,
    ConfigTiers,
    UnitCost,
    (),
    Http,
>;

/// Applies a new [`ServerConfig`] to the [`ConfigServerStack`] it was built with
/// ([`ServerConfig::build_reloadable`]).
///
/// What a reload applies: `max_in_flight` (the load shedder's limit: a lower one lets the calls
/// in flight finish and admits no new one until they are below it), the timeout's `timeout`,
/// `incoming_floor`, `below_floor` and `expose_deadline` (a call already started keeps its
/// deadline; calls started after the reload get the new one), and the `rate_limit` table's quotas
/// and tiers ([`RateLimitHandle`]'s `apply`; each key's state carries over), and the `chaos`
/// table's `enabled` and probabilities (the next request sees them). What needs a restart
/// (a [`ConfigError`] that says so, naming the field): a `rate_limit` table added or removed, a
/// change of its other fields (its key, algorithm, mode, `tier_of`, key bounds, response fields,
/// name), a tier added, removed or renamed, a tier's number of quotas, a `chaos` table added or
/// removed or another of its fields changed (`chaos.header`, `chaos.seed`, ...),
/// `refusal_body`, `timeout_status`, `missing_key_status` and `exempt_paths` (the server stack
/// has no breaker, retry or bulkhead).
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
    chaos: Option<ChaosHandle>,
}

impl fmt::Debug for ServerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTarget")
            .field("rate_limit", &self.rate_limit.is_some())
            .field("shed", &self.shed)
            .field("timeout", &self.timeout)
            .field("chaos", &self.chaos)
            .finish()
    }
}

impl ServerConfig {
    /// As [`build`](Self::build), with a [`ServerReloader`] that applies a new configuration to
    /// the stack while it runs (and [`watch`](crate::watch) to do so when the file changes).
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
            chaos: stack.chaos_layer().handle(),
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
    let rate_limit = match (&a.rate_limit, &b.rate_limit) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => Some("rate_limit".to_owned()),
        (Some(x), Some(y)) => x.fixed_change(y).map(|f| format!("rate_limit.{f}")),
    };
    rate_limit.or_else(|| chaos_fixed_change(a.chaos.as_ref(), b.chaos.as_ref()))
}

/// The first change of a stack's `chaos` table that a running stack cannot take: the table
/// added or removed, or a field its handle cannot apply.
pub(super) fn chaos_fixed_change(
    a: Option<&weir_chaos::ChaosConfig>,
    b: Option<&weir_chaos::ChaosConfig>,
) -> Option<String> {
    match (a, b) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => Some("chaos".to_owned()),
        (Some(x), Some(y)) => x.fixed_change(y).map(|f| format!("chaos.{f}")),
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
        config.chaos_layer()?;
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
        let chaos = self.chaos.as_ref().zip(config.chaos.as_ref());
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
        if let Some((handle, table)) = chaos {
            handle
                .apply(table.settings())
                .map_err(|e| e.in_table("chaos"))?;
        }
        Ok(())
    }
}
