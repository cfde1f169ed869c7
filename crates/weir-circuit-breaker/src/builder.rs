//! `CircuitBreakerBuilder`: every setting, checked once by `build()`.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use weir_core::inspect::Registry;
use weir_core::{
    ConfigError, Name, Observer, backoff::Backoff, classify::AnyError, key::MissingKey,
    keyed::KeyedConfig,
};

use crate::handle::{CircuitBreakerHandle, KeyedCircuitBreakerHandle};
use crate::layer::{CircuitBreakerLayer, KeyedCircuitBreakerLayer};
use crate::settings::{CircuitBreakerSettings, at_least_one};
use crate::shared::{KeyedState, Lanes, Shared};
use crate::state::WindowKind;

impl CircuitBreakerLayer {
    /// Every setting, starting from the defaults.
    #[must_use]
    pub const fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// Opens after `n` failures in a row, and on nothing else (no failure rate).
    #[must_use]
    pub fn consecutive_failures(n: u32) -> CircuitBreakerBuilder {
        let mut builder = CircuitBreakerBuilder::new().consecutive_failures(n);
        builder.clear_failure_rate();
        builder
    }

    /// The settings of .NET's standard resilience pipeline (Polly): opens when 10 % of the calls
    /// of the last 30 s failed (10 buckets), once at least 100 calls were made; open for 5 s.
    #[must_use]
    pub const fn standard() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
            .failure_rate(10.0)
            .time_window(Duration::from_secs(30), 10)
            .minimum_calls(100)
            .open_duration(Duration::from_secs(5))
    }
}

/// Builds a [`CircuitBreakerLayer`]; from [`CircuitBreakerLayer::builder`] or a preset.
///
/// Defaults (Resilience4j's, with a shorter open time):
///
/// | setting | default |
/// |---|---|
/// | trip condition | failure rate ≥ 50 % |
/// | window | the last 100 calls ([`count_window`](Self::count_window)) |
/// | minimum calls | 100 (never more than a count window holds) |
/// | slow calls | not tracked |
/// | open time | 5 s, not growing ([`open_backoff`](Self::open_backoff) to grow it) |
/// | half-open probes | 3 |
/// | maximum half-open wait | 30 s |
/// | admission | reject at once ([`backpressure`](Self::backpressure) to wait) |
/// | classifier | [`AnyError`] |
/// | observer | `()` |
pub struct CircuitBreakerBuilder<C = AnyError, O = ()> {
    settings: CircuitBreakerSettings,
    classifier: C,
    observer: O,
    registry: Option<Registry>,
}

impl CircuitBreakerBuilder {
    pub(crate) const fn new() -> Self {
        Self {
            settings: CircuitBreakerSettings::DEFAULT,
            classifier: AnyError,
            observer: (),
            registry: None,
        }
    }
}

impl<C, O> CircuitBreakerBuilder<C, O> {
    /// Names the layer (in errors and events). Default `"circuit_breaker"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"circuit_breaker"` when
    /// given none). A keyed layer registers its keyed handle. `build` refuses a name the
    /// registry already holds for a breaker ([`ConfigError::is_duplicate`]), so give each
    /// registered breaker a name of its own.
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Judges the rates over the last `calls` recorded calls (a ring that truly slides: the
    /// oldest outcome leaves as the newest enters). Between 1 and 1 000 000. The default, 100.
    #[must_use]
    pub const fn count_window(mut self, calls: u32) -> Self {
        self.settings.window = WindowKind::Count(calls);
        self
    }

    /// Judges the rates over the calls of the last `size`, counted in `buckets` buckets of
    /// `size / buckets` each (the window covers the current, partial bucket and the
    /// `buckets - 1` before it). 1 to 1 000 buckets of at least 1 ms.
    #[must_use]
    pub const fn time_window(mut self, size: Duration, buckets: u32) -> Self {
        self.settings.window = WindowKind::Time { size, buckets };
        self
    }

    /// Opens when at least `percent` (in `(0, 100]`) of the window's calls failed. Default 50.
    #[must_use]
    pub const fn failure_rate(mut self, percent: f64) -> Self {
        self.settings.failure_rate = Some(percent);
        self
    }

    /// Also opens after `n` failures in a row, whatever the window says.
    #[must_use]
    pub const fn consecutive_failures(mut self, n: u32) -> Self {
        self.settings.consecutive_failures = Some(n);
        self
    }

    /// Counts calls that take `threshold` or longer (from `call` until the inner future
    /// completes: for HTTP, until the response head) as slow, and opens when at least `percent`
    /// of the window's calls were slow. A slow probe re-opens a half-open circuit.
    #[must_use]
    pub const fn slow_calls(mut self, threshold: Duration, percent: f64) -> Self {
        self.settings.slow_calls = Some((threshold, percent));
        self
    }

    /// The rates are not judged before the window holds this many calls. Default 100, never
    /// more than a count window holds.
    #[must_use]
    pub const fn minimum_calls(mut self, calls: u32) -> Self {
        self.settings.minimum_calls = calls;
        self
    }

    /// A fixed open time. Default 5 s.
    #[must_use]
    pub const fn open_duration(mut self, duration: Duration) -> Self {
        self.settings.open = Backoff::constant(duration);
        self
    }

    /// An open time that grows with each opening in a row (reset when the circuit closes), with
    /// a cap and jitter: for example
    /// `Backoff::exponential(Duration::from_secs(5)).max(Duration::from_secs(300)).jitter(Jitter::Proportional(20))`.
    /// A server's `Retry-After` never sets the open time: it answers one caller's request.
    #[must_use]
    pub const fn open_backoff(mut self, backoff: Backoff) -> Self {
        self.settings.open = backoff;
        self
    }

    /// How many probe calls a half-open circuit lets through; it closes when all of them
    /// succeeded. Default 3.
    #[must_use]
    pub const fn half_open_probes(mut self, probes: u32) -> Self {
        self.settings.probes = probes;
        self
    }

    /// How long a half-open circuit whose probe slots are all taken waits for them before it
    /// opens again (so probes that never report back cannot pin it half-open). Default 30 s.
    #[must_use]
    pub const fn max_half_open_wait(mut self, wait: Duration) -> Self {
        self.settings.max_half_open = wait;
        self
    }

    /// Seeds the open time's jitter, for reproducible tests.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// While the circuit is open, `poll_ready` is pending (woken when the open time ends)
    /// instead of rejecting. A half-open circuit with no probe slot free still rejects.
    #[must_use]
    pub const fn backpressure(mut self) -> Self {
        self.settings.backpressure = true;
        self
    }

    /// Classifies results: [`weir_core::classify::HttpStatus`], [`weir_core::classify::GrpcStatus`], a closure.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerBuilder<C2, O> {
        CircuitBreakerBuilder {
            settings: self.settings,
            classifier,
            observer: self.observer,
            registry: self.registry,
        }
    }

    /// Receives every [`Event`](crate::Event): a closure, `weir_core::observer::Tracing`,
    /// `weir_core::observer::Metrics`.
    #[must_use]
    pub fn observer<O2>(self, observer: O2) -> CircuitBreakerBuilder<C, O2> {
        CircuitBreakerBuilder {
            settings: self.settings,
            classifier: self.classifier,
            observer,
            registry: self.registry,
        }
    }

    /// One breaker per key: per host with
    /// `|req: &http::Request<B>| req.uri().authority().cloned()`, or any
    /// [`KeyExtractor`](weir_core::KeyExtractor). Every key gets a breaker with these settings.
    pub fn keyed<E>(self, extractor: E) -> KeyedCircuitBreakerBuilder<E, C, O> {
        KeyedCircuitBreakerBuilder {
            builder: self,
            extractor,
            config: KeyedConfig::new(),
            max_keys: KeyedConfig::new().get_max_keys(),
            missing: MissingKey::default(),
        }
    }

    /// No failure-rate condition (for the consecutive-failures preset).
    pub(crate) const fn clear_failure_rate(&mut self) {
        self.settings.failure_rate = None;
    }

    /// The shared state, and the registry to register its handle in.
    fn parts(self) -> Result<(Arc<Shared<C, O>>, Option<Registry>), ConfigError> {
        let shared = Shared::from_settings(self.settings, self.classifier, self.observer)?;
        Ok((shared, self.registry))
    }

    fn shared(self) -> Result<Arc<Shared<C, O>>, ConfigError>
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<crate::Event<'a>> + Send + Sync + 'static,
    {
        let (shared, registry) = self.parts()?;
        if let Some(registry) = registry {
            registry.register_unique(Arc::new(CircuitBreakerHandle::new(Arc::clone(&shared))))?;
        }
        Ok(shared)
    }

    /// Checks the settings and builds the layer. Every service the layer makes, and every
    /// clone, shares one breaker.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting out of its range, or, with a
    /// [`registry`](Self::registry), a duplicate `name`.
    pub fn build(self) -> Result<CircuitBreakerLayer<C, O>, ConfigError>
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<crate::Event<'a>> + Send + Sync + 'static,
    {
        Ok(CircuitBreakerLayer::from_shared(self.shared()?))
    }

    /// As [`build`](Self::build), with a [`CircuitBreakerHandle`] that reads and controls the
    /// breaker.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_handle(
        self,
    ) -> Result<(CircuitBreakerLayer<C, O>, CircuitBreakerHandle), ConfigError>
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<crate::Event<'a>> + Send + Sync + 'static,
    {
        let shared = self.shared()?;
        let handle = CircuitBreakerHandle::new(shared.clone());
        Ok((CircuitBreakerLayer::from_shared(shared), handle))
    }
}

impl<C: fmt::Debug, O> fmt::Debug for CircuitBreakerBuilder<C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("settings", &self.settings)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyedCircuitBreakerLayer`]: from [`CircuitBreakerBuilder::keyed`].
///
/// Keys are bounded ([`max_keys`](Self::max_keys), default 100 000: past it, new keys share one
/// overflow breaker) and idle ones are forgotten ([`idle_timeout`](Self::idle_timeout), default
/// 10 min), but only while their breaker is closed: an open breaker is never forgotten, so its
/// key cannot come back closed early. Backpressure does not apply to keyed breakers (the key is
/// known only in `call`): they always reject at once.
pub struct KeyedCircuitBreakerBuilder<E, C = AnyError, O = ()> {
    builder: CircuitBreakerBuilder<C, O>,
    extractor: E,
    config: KeyedConfig,
    max_keys: usize,
    missing: MissingKey,
}

impl<E, C, O> KeyedCircuitBreakerBuilder<E, C, O> {
    /// The most keys kept (at least 1). Default 100 000.
    #[must_use]
    pub const fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self.config = self.config.max_keys(n);
        self
    }

    /// How long a key with a closed breaker is kept without calls. Default 10 minutes.
    #[must_use]
    pub const fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.idle_timeout(timeout);
        self
    }

    /// What a request without a key does: share one breaker (the default), bypass the breaker,
    /// or be rejected (with a circuit-open error).
    #[must_use]
    pub const fn missing_key(mut self, missing: MissingKey) -> Self {
        self.missing = missing;
        self
    }

    fn state(self) -> Result<Arc<KeyedState<E, C, O>>, ConfigError>
    where
        E: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<crate::Event<'a>> + Send + Sync + 'static,
    {
        let settings = self.builder.settings.validate()?;
        if self.max_keys == 0 {
            return Err(at_least_one("max_keys"));
        }
        let (shared, registry) = self.builder.parts()?;
        let state = Arc::new(KeyedState {
            extractor: self.extractor,
            config: self.config,
            settings: arc_swap::ArcSwap::from_pointee(settings),
            missing: self.missing,
            map: OnceLock::new(),
            lanes: Lanes::new(Arc::clone(&shared)),
            shared,
        });
        if let Some(registry) = registry {
            registry
                .register_unique(Arc::new(KeyedCircuitBreakerHandle::new(Arc::clone(&state))))?;
        }
        Ok(state)
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting out of its range, or, with a
    /// [`registry`](CircuitBreakerBuilder::registry), a duplicate `name`.
    pub fn build(self) -> Result<KeyedCircuitBreakerLayer<E, C, O>, ConfigError>
    where
        E: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<crate::Event<'a>> + Send + Sync + 'static,
    {
        Ok(KeyedCircuitBreakerLayer::from_state(self.state()?))
    }

    /// As [`build`](Self::build), with a handle over every key's breaker.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_handle(
        self,
    ) -> Result<(KeyedCircuitBreakerLayer<E, C, O>, KeyedCircuitBreakerHandle), ConfigError>
    where
        E: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<crate::Event<'a>> + Send + Sync + 'static,
    {
        let state = self.state()?;
        let handle = KeyedCircuitBreakerHandle::new(state.clone());
        Ok((KeyedCircuitBreakerLayer::from_state(state), handle))
    }
}

impl<E: fmt::Debug, C: fmt::Debug, O> fmt::Debug for KeyedCircuitBreakerBuilder<E, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerBuilder")
            .field("builder", &self.builder)
            .field("extractor", &self.extractor)
            .field("config", &self.config)
            .field("missing", &self.missing)
            .finish()
    }
}

/// The builder as a handle's settings ([`Reconfigure`](weir_core::reconfigure::Reconfigure)).
impl CircuitBreakerBuilder {
    /// A builder holding `settings` (what a handle's `settings()` gives).
    pub(crate) const fn from_settings(settings: CircuitBreakerSettings) -> Self {
        Self {
            settings,
            classifier: AnyError,
            observer: (),
            registry: None,
        }
    }
}

impl<C, O> CircuitBreakerBuilder<C, O> {
    /// The plain settings (what a handle's `apply` takes), without the classifier and observer.
    pub(crate) fn into_settings(self) -> CircuitBreakerSettings {
        self.settings
    }
}
