//! [`ClientReloader`]: a new [`ClientConfig`] applied to a running client stack of any mode.

use std::fmt;
use std::time::Duration;

use weir_bulkhead::BulkheadHandle;
use weir_chaos::ChaosHandle;
use weir_circuit_breaker::{CircuitBreakerBuilder, CircuitBreakerHandle};
use weir_core::ConfigError;
use weir_core::reconfigure::Reconfigure;
use weir_retry::RetryHandle;
use weir_timeout::TimeoutHandle;

use super::server::chaos_fixed_change;
use super::{Reloader, Target, restart};
use crate::presets::{CLIENT, ClientBuilder, ClientStack, Mode};
use crate::settings::{ClientConfig, ConfigClientStack};

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
/// `total_timeout` and `attempt_timeout` (to calls started after the reload), and the `chaos`
/// table's `enabled` and probabilities. What needs a restart (a conflict naming the field): a
/// `chaos` table added or removed, or another of its fields changed (`chaos.seed`, ...).
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
    chaos: Option<ChaosHandle>,
}

impl<B: fmt::Debug> fmt::Debug for ClientTarget<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTarget")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("bulkhead", &self.bulkhead)
            .field("total", &self.total)
            .field("attempt", &self.attempt)
            .field("chaos", &self.chaos)
            .finish()
    }
}

impl ClientConfig {
    /// As [`build`](Self::build), with a [`ClientReloader`] that applies a new configuration to
    /// the stack while it runs (and [`watch`](crate::watch) to do so when the file changes).
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build).
    pub fn build_reloadable(&self) -> Result<(ConfigClientStack, ClientReloader), ConfigError> {
        self.build_reloadable_with(|builder| builder.build())
    }

    /// As [`build_reloadable`](Self::build_reloadable) for a stack of another mode, order or
    /// observer: `build` takes [`builder`](Self::builder)'s [`ClientBuilder`] (these settings)
    /// and builds the stack, for example `|b| b.per_authority().build()` (one breaker per
    /// authority: a reload applies its settings to every authority's breaker) or
    /// `|b| b.grpc().build()`. A setting of the file that `build` changes again (say
    /// `.max_retries(9)`) is the file's again at the first reload that changes it. The `chaos`
    /// table's layer is put in the built stack's chaos slot.
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
    ) -> Result<
        (
            ConfigClientStack<K, Ord, O>,
            ClientReloader<K::BreakerHandle>,
        ),
        ConfigError,
    >
    where
        K: Mode,
        K::BreakerHandle: Reconfigure<Settings = CircuitBreakerBuilder> + Send + Sync + 'static,
    {
        let stack = build(self.builder()?)?.chaos(self.chaos_layer()?);
        let (total, attempt) = stack.timeout_handles();
        let target = ClientTarget {
            retry: stack.retry_handle().clone(),
            breaker: stack.breaker_handle().clone(),
            bulkhead: stack.bulkhead_handle().clone(),
            total: total.clone(),
            attempt: attempt.clone(),
            chaos: stack.chaos_layer().handle(),
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
        config.chaos_layer()?;
        if let Some(field) = chaos_fixed_change(old.chaos.as_ref(), config.chaos.as_ref()) {
            return Err(restart(CLIENT, field));
        }
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
        if let Some((handle, table)) = self.chaos.as_ref().zip(config.chaos.as_ref()) {
            handle
                .apply(table.settings())
                .map_err(|e| e.in_table("chaos"))?;
        }
        Ok(())
    }
}
