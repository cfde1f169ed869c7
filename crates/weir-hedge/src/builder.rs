//! `HedgeBuilder`, `HedgeLayer::builder()` and the presets, and `HedgeBudget`.

use std::sync::Arc;
use std::time::Duration;

use weir_core::inspect::Registry;
use weir_core::{ConfigError, Name, classify::AnyError, classify::GrpcStatus};
use weir_retry::{HttpReplay, IdempotentReplay, SharedBudget};

use crate::grpc::GrpcAttempts;
use crate::handle::HedgeHandle;
use crate::layer::HedgeLayer;
use crate::settings::{HedgeSettings, PercentileSettings};
use crate::shared::Shared;
use crate::state::{Budget, Throttle};

impl HedgeLayer {
    /// A builder with the defaults (see [`HedgeBuilder`]).
    #[must_use]
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::new()
    }

    /// A builder for `http::Request<B>`: only idempotent methods (or a request with an
    /// `Idempotency-Key`) are hedged, bodies are buffered and replayed exactly as retry does
    /// ([`HttpReplay`]), and the request's [`Deadline`](weir_core::Deadline) is honoured.
    #[must_use]
    pub fn http() -> HedgeBuilder<HttpReplay> {
        HedgeBuilder::new().replay(HttpReplay::new())
    }

    /// A builder for gRPC calls over `http::Request<B>` (gRFC A6 hedging): every call may be
    /// hedged (gRPC methods are POSTs; hedge only idempotent methods, as A6 says: put the layer
    /// on those), a body still streaming is never waited for (such a call is sent once), every
    /// hedge carries `grpc-previous-rpc-attempts`, and [`GrpcStatus`] classifies: a transient
    /// status (`UNAVAILABLE`...) is non-fatal, any other failure fatal; pushback is read from
    /// `grpc-retry-pushback-ms`.
    #[must_use]
    pub fn grpc() -> HedgeBuilder<GrpcAttempts<HttpReplay>, GrpcStatus> {
        HedgeBuilder::new()
            .replay(GrpcAttempts::new(
                HttpReplay::new().non_idempotent(true).wait_for_body(false),
            ))
            .classify(GrpcStatus::new())
    }
}

/// How many hedges the whole layer may send, so hedging never becomes a load multiplier.
///
/// A balance of hedges: every request adds `ratio` of a hedge, every second adds
/// `min_per_second` (the floor, so a quiet client can still hedge), the balance holds at most
/// `burst` and starts full; each hedge takes one. Over any run, hedges sent never exceed
/// `burst + ratio x requests + min_per_second x seconds`. Shared by every service and clone.
///
/// With [`throttle`](Self::throttle), gRFC A6's retry throttling applies to hedges on top of
/// it: failing attempts take tokens, successes give back a fraction of one, and no hedge goes
/// while the tokens are at or below half (A6: "the throttling applies to hedges as to retries").
///
/// The default is `HedgeBudget::ratio(0.1)` (10 % extra load at most), `min_per_second(1)`,
/// `burst(10)`, no throttle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeBudget {
    ratio: f64,
    min_per_second: u32,
    burst: Option<u32>,
    /// `(max_tokens, token_ratio)`.
    throttle: Option<(u32, f64)>,
}

impl HedgeBudget {
    /// Hedges may be `ratio` of the requests (plus the floor). Finite, within `0.0..=1000.0`.
    #[must_use]
    pub const fn ratio(ratio: f64) -> Self {
        Self {
            ratio,
            min_per_second: 1,
            burst: Some(10),
            throttle: None,
        }
    }

    /// The floor: this many hedges per second whatever the traffic (1 unless set).
    #[must_use]
    pub const fn min_per_second(mut self, n: u32) -> Self {
        self.min_per_second = n;
        self
    }

    /// The most hedges the balance holds (10 unless set; at least 1).
    #[must_use]
    pub const fn burst(mut self, n: u32) -> Self {
        if self.burst.is_some() {
            self.burst = Some(n);
        }
        self
    }

    /// No budget: only `max_attempts` bounds hedges.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            ratio: 0.0,
            min_per_second: 0,
            burst: None,
            throttle: None,
        }
    }

    /// gRFC A6's retry throttling (gRPC's `retryThrottling`), applied to hedges on top of this
    /// budget (an [`unlimited`](Self::unlimited) one included): a token count starts at
    /// `max_tokens`; every attempt, primary or hedge, that fails transiently or with the
    /// server's "do not retry" takes one token, every success gives back `token_ratio` of one
    /// (kept to three decimal places); while the count is at or below `max_tokens / 2` no hedge
    /// is sent. Shared by every service and clone of the layer, as the budget is. A permanent
    /// failure, a throttled one (one caller's quota: a 429) and weir's own rejections (an open
    /// circuit) take nothing. `max_tokens` within `1..=1000`, `token_ratio` finite and above 0
    /// (checked by `build()`). The same rule as `weir_retry::RetryBudget::grpc_throttle`; to
    /// share one token count with retry layers, use
    /// [`HedgeBuilder::shared_budget`] with such a budget instead.
    #[must_use]
    pub const fn throttle(mut self, max_tokens: u32, token_ratio: f64) -> Self {
        self.throttle = Some((max_tokens, token_ratio));
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some((max_tokens, token_ratio)) = self.throttle {
            if !(1..=1000).contains(&max_tokens) {
                return Err(ConfigError::out_of_range(
                    "hedge",
                    "budget.max_tokens",
                    "must be within 1..=1000 (gRPC's retryThrottling)",
                ));
            }
            if !(token_ratio.is_finite() && token_ratio > 0.0) {
                return Err(ConfigError::out_of_range(
                    "hedge",
                    "budget.token_ratio",
                    "must be finite and above 0 (gRPC's retryThrottling)",
                ));
            }
        }
        if self.burst.is_none() {
            return Ok(());
        }
        if !(self.ratio.is_finite() && (0.0..=1000.0).contains(&self.ratio)) {
            return Err(ConfigError::out_of_range(
                "hedge",
                "budget.ratio",
                "must be finite and within 0..=1000",
            ));
        }
        if self.burst == Some(0) {
            return Err(ConfigError::zero(
                "hedge",
                "budget.burst",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl Default for HedgeBudget {
    fn default() -> Self {
        Self::ratio(0.1)
    }
}

/// Configures a [`HedgeLayer`]; from [`HedgeLayer::builder`] or [`HedgeLayer::http`].
///
/// It holds one [`HedgeSettings`] (the plain settings a configuration file can give at once,
/// with [`settings`](Self::settings)) plus its typed parts: the budget, the replay, the
/// classifier and the observer.
///
/// | setting | default |
/// |---|---|
/// | trigger | [`delay`](Self::delay) 50 ms |
/// | [`max_attempts`](Self::max_attempts) | 2 (the primary and one hedge); at most 5 (gRFC A6) |
/// | [`budget`](Self::budget) | [`HedgeBudget::ratio(0.1)`](HedgeBudget::ratio), 1 per second, burst 10 |
/// | [`replay`](Self::replay) | [`IdempotentReplay`] (a clone; an `http::Request` only if idempotent) ([`HttpReplay`] from [`HedgeLayer::http`]) |
/// | [`classify`](Self::classify) | [`AnyError`] |
/// | [`observer`](Self::observer) | `()` |
#[derive(Debug)]
pub struct HedgeBuilder<R = IdempotentReplay, C = AnyError, O = ()> {
    name: Name,
    settings: HedgeSettings,
    budget: HedgeBudget,
    /// A retry budget hedges draw on instead of `budget` (#21: shared with retry).
    shared_budget: Option<SharedBudget>,
    replay: R,
    classify: C,
    observer: O,
    /// Where `build` registers the handle ([`registry`](HedgeBuilder::registry)).
    registry: Option<Registry>,
}

impl HedgeBuilder {
    fn new() -> Self {
        Self {
            name: Name::unnamed(),
            settings: HedgeSettings::default(),
            budget: HedgeBudget::default(),
            shared_budget: None,
            replay: IdempotentReplay::new(),
            classify: AnyError,
            observer: (),
            registry: None,
        }
    }
}

impl<R, C, O> HedgeBuilder<R, C, O> {
    /// The layer's name, carried by its events.
    #[must_use]
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none). `build` refuses a name the registry already holds for a hedge layer
    /// ([`ConfigError::is_duplicate`]).
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// A hedge after this fixed delay, and after the same delay again for each next one; zero is
    /// parallel mode (every attempt at once). Replaces a percentile trigger.
    #[must_use]
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.settings.delay = delay;
        self.settings.percentile = None;
        self
    }

    /// Parallel mode: every attempt is sent at once (`delay(Duration::ZERO)`).
    #[must_use]
    pub const fn parallel(self) -> Self {
        self.delay(Duration::ZERO)
    }

    /// A hedge once a request has taken longer than `percentile` (p95: `95.0`, within
    /// `(0, 100)`) of the primaries over the last window; defaults: window 10 s, 100 samples
    /// before it hedges at all, floor 1 ms. Replaces a fixed delay.
    #[must_use]
    pub const fn latency_percentile(mut self, percentile: f64) -> Self {
        self.settings.percentile = Some(PercentileSettings::new(percentile));
        self
    }

    /// The percentile trigger's window (10 s unless set; 100 ms to 1 h): the percentile reads
    /// the current window and the one before.
    #[must_use]
    pub const fn window(mut self, window: Duration) -> Self {
        if let Some(spec) = &mut self.settings.percentile {
            spec.window = window;
        }
        self
    }

    /// How many latencies the percentile trigger needs before it hedges at all (100 unless
    /// set; at least 1). Failure-triggered hedges are not held back.
    #[must_use]
    pub const fn min_samples(mut self, n: u32) -> Self {
        if let Some(spec) = &mut self.settings.percentile {
            spec.min_samples = n;
        }
        self
    }

    /// The percentile trigger never waits less than this (1 ms unless set).
    #[must_use]
    pub const fn min_delay(mut self, floor: Duration) -> Self {
        if let Some(spec) = &mut self.settings.percentile {
            spec.min_delay = floor;
        }
        self
    }

    /// Attempts per request, the primary included: 1 to 5 (gRFC A6's cap).
    #[must_use]
    pub const fn max_attempts(mut self, n: usize) -> Self {
        self.settings.max_attempts = n;
        self
    }

    /// Every plain setting at once (from a configuration file); replaces the trigger and
    /// `max_attempts` set so far.
    #[must_use]
    pub const fn settings(mut self, settings: HedgeSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The hedge budget.
    #[must_use]
    pub fn budget(mut self, budget: HedgeBudget) -> Self {
        self.budget = budget;
        self.shared_budget = None;
        self
    }

    /// Draws hedges from a retry budget that retry layers share
    /// ([`SharedBudget`], given to them with `RetryBuilder::shared_budget`) instead of a hedge
    /// budget of the layer's own: each request counts as a request of that budget, each hedge
    /// spends one retry of it, and every attempt that finishes records its outcome in it, so
    /// hedges and retries together stay within it and a `RetryBudget::grpc_throttle` budget
    /// throttles hedges as gRFC A6 says (failing attempts take tokens, successes give them
    /// back). Replaces [`budget`](Self::budget).
    #[must_use]
    pub fn shared_budget(mut self, budget: SharedBudget) -> Self {
        self.shared_budget = Some(budget);
        self
    }

    /// How requests are kept and sent again (weir-retry's [`Replay`](weir_retry::Replay)).
    #[must_use]
    pub fn replay<R2>(self, replay: R2) -> HedgeBuilder<R2, C, O> {
        HedgeBuilder {
            name: self.name,
            settings: self.settings,
            budget: self.budget,
            shared_budget: self.shared_budget,
            replay,
            classify: self.classify,
            observer: self.observer,
            registry: self.registry,
        }
    }

    /// What an attempt's result means: a success (or an ignored `Ok`) is an answer, a transient
    /// failure sends the next hedge at once, a permanent failure is fatal.
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> HedgeBuilder<R, C2, O> {
        HedgeBuilder {
            name: self.name,
            settings: self.settings,
            budget: self.budget,
            shared_budget: self.shared_budget,
            replay: self.replay,
            classify,
            observer: self.observer,
            registry: self.registry,
        }
    }

    /// Receives the layer's [`Event`](crate::Event)s.
    #[must_use]
    pub fn observer<O2>(self, observer: O2) -> HedgeBuilder<R, C, O2> {
        HedgeBuilder {
            name: self.name,
            settings: self.settings,
            budget: self.budget,
            shared_budget: self.shared_budget,
            replay: self.replay,
            classify: self.classify,
            observer,
            registry: self.registry,
        }
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn build(self) -> Result<HedgeLayer<R, C, O>, ConfigError> {
        self.build_with_handle().map(|(layer, _)| layer)
    }

    /// As [`build`](Self::build), with a [`HedgeHandle`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn build_with_handle(self) -> Result<(HedgeLayer<R, C, O>, HedgeHandle), ConfigError> {
        self.settings.validate()?;
        self.budget.validate()?;
        let budget = Budget::new(
            self.budget.ratio,
            self.budget.min_per_second,
            self.budget.burst,
        );
        let throttle = self
            .budget
            .throttle
            .map(|(max_tokens, token_ratio)| Throttle::new(max_tokens, token_ratio));
        let layer = HedgeLayer::from_shared(Shared::new(
            self.name,
            &self.settings,
            (budget, throttle),
            self.shared_budget,
            self.replay,
            self.classify,
            self.observer,
        ));
        let handle = layer.handle();
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(handle.clone()))?;
        }
        Ok((layer, handle))
    }
}
