//! `RetryBuilder`, `RetryLayer::builder()` and the presets.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use weir_core::inspect::Registry;
use weir_core::protocol::{Http, Plain};
use weir_core::{
    ConfigError, Name, backoff::Backoff, backoff::Jitter, classify::AnyError, classify::GrpcStatus,
    classify::HttpStatus, key::Authority,
};

use crate::budget::{RetryBudget, SharedBudget};
use crate::handle::RetryHandle;
use crate::layer::RetryLayer;
use crate::replay::{Filtered, HttpReplay, IdempotentReplay};
use crate::scope::PerKey;
use crate::settings::{DEFAULT_BACKOFF, DEFAULT_MAX_SERVERS, GRPC_MAX_ATTEMPTS, RetrySettings};
use crate::shared::{Parts, Shared};

impl RetryLayer {
    /// A builder with the defaults (see [`RetryBuilder`]).
    #[must_use]
    pub fn builder() -> RetryBuilder {
        RetryBuilder::new()
    }

    /// For HTTP clients: [`HttpStatus`] (5xx, 408, 429 and connection errors are transient;
    /// `Retry-After` honoured), [`HttpReplay`] (bodies buffered up to 64 KiB; idempotent methods,
    /// POST and PATCH only with an `Idempotency-Key`).
    #[must_use]
    pub fn http() -> RetryBuilder<HttpReplay, HttpStatus> {
        RetryBuilder::new()
            .replay(HttpReplay::new())
            .classify(HttpStatus::new())
    }

    /// For gRPC clients (tonic): [`GrpcStatus`] (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
    /// `DEADLINE_EXCEEDED`, `ABORTED` are transient; `grpc-retry-pushback-ms` honoured, a
    /// negative pushback stops), [`HttpReplay`] with every method retried (gRPC calls are POSTs:
    /// only put this on idempotent methods, or narrow the classifier) and without waiting for a
    /// body still being streamed (a unary call's message is in memory and is replayed; a
    /// streaming call is sent once), and gRFC A6's backoff: `random(0, d)` (full jitter) of an
    /// exponential backoff from 100 ms, capped at 5 s. As A6 has it, `max_attempts` is at most
    /// 5: a larger value is taken as 5. Narrow the retryable codes with
    /// `GrpcStatus::new().only_retryable(&[...])` (A6's `retryableStatusCodes`). The budget
    /// hears a call's status where gRPC puts it ([`Http`], see [`RetryBuilder::trailers`]): a
    /// call whose `grpc-status` arrives in the trailers is recorded at the end of its body.
    #[must_use]
    pub fn grpc() -> RetryBuilder<HttpReplay, GrpcStatus, (), Http> {
        RetryBuilder::new()
            .replay(HttpReplay::new().non_idempotent(true).wait_for_body(false))
            .classify(GrpcStatus::new())
            .backoff(grpc_backoff())
            .cap_attempts(GRPC_MAX_ATTEMPTS)
            .trailers()
    }
}

/// gRFC A6: the delay before retry n is `random(0, min(initial x multiplier^(n-1), max))`.
const fn grpc_backoff() -> Backoff {
    DEFAULT_BACKOFF.jitter(Jitter::Full)
}

/// Configures a [`RetryLayer`]; from [`RetryLayer::builder`], [`RetryLayer::http`] or
/// [`RetryLayer::grpc`].
///
/// | setting | default |
/// |---|---|
/// | [`max_attempts`](Self::max_attempts) | 3 (the first call and 2 retries) |
/// | [`backoff`](Self::backoff) | exponential from 100 ms, ×2, capped at 5 s, full jitter |
/// | [`max_duration`](Self::max_duration) | none |
/// | [`max_server_delay`](Self::max_server_delay) | 60 s |
/// | [`budget`](Self::budget) | [`RetryBudget::ratio(0.2)`](RetryBudget::ratio), 10 per second, over 10 s; one per layer (see [`shared_budget`](Self::shared_budget), [`budget_per_server`](Self::budget_per_server)) |
/// | classifier | [`AnyError`] ([`HttpStatus`](weir_core::classify::HttpStatus) for `http()`, [`GrpcStatus`](weir_core::classify::GrpcStatus) for `grpc()`) |
/// | replay | [`IdempotentReplay`] (a clone; an `http::Request` only if idempotent; a request type of your own takes `replay(IdempotentReplay::plain())`) ([`HttpReplay`] for `http()` and `grpc()`) |
/// | protocol | [`Plain`]: outcomes recorded as responses arrive ([`Http`] for `grpc()`: at the end of the body, see [`trailers`](Self::trailers)) |
#[derive(Clone, Debug)]
pub struct RetryBuilder<R = IdempotentReplay, C = AnyError, O = (), P = Plain, K = ()> {
    settings: RetrySettings,
    /// The most `max_attempts` may be (5 for the gRPC preset, as gRFC A6 has it).
    attempts_cap: u32,
    /// A budget shared with other layers, instead of one of the layer's own.
    shared_budget: Option<SharedBudget>,
    replay: R,
    classify: C,
    observer: O,
    scope: K,
    /// Where `build` registers the handle ([`registry`](Self::registry)).
    registry: Option<Registry>,
    protocol: PhantomData<fn() -> P>,
}

impl RetryBuilder {
    pub(crate) fn new() -> Self {
        Self {
            settings: RetrySettings::new(),
            attempts_cap: u32::MAX,
            shared_budget: None,
            replay: IdempotentReplay::new(),
            classify: AnyError,
            observer: (),
            scope: (),
            registry: None,
            protocol: PhantomData,
        }
    }
}

impl<Q, C, O, P, K> RetryBuilder<IdempotentReplay<Q>, C, O, P, K> {
    /// Also retries HTTP requests that are not idempotent: POST and PATCH without an
    /// `Idempotency-Key` (never CONNECT), see [`IdempotentReplay::retry_non_idempotent`]. Only
    /// when the server tolerates duplicates: a POST whose attempt timed out may have been done.
    #[must_use]
    pub const fn retry_non_idempotent(mut self) -> Self {
        self.replay = self.replay.retry_non_idempotent(true);
        self
    }
}

impl<R, C, O, P, K> RetryBuilder<R, C, O, P, K> {
    /// The same settings with other typed parts, made from these: the one place every
    /// type-changing method goes through (the settings move in one piece).
    pub(crate) fn map_parts<R2, C2, O2, P2, K2>(
        self,
        parts: impl FnOnce(R, C, O, K) -> (R2, C2, O2, K2),
    ) -> RetryBuilder<R2, C2, O2, P2, K2> {
        let (replay, classify, observer, scope) =
            parts(self.replay, self.classify, self.observer, self.scope);
        RetryBuilder {
            settings: self.settings,
            attempts_cap: self.attempts_cap,
            shared_budget: self.shared_budget,
            replay,
            classify,
            observer,
            scope,
            registry: self.registry,
            protocol: PhantomData,
        }
    }

    /// Names the layer instance (in events).
    #[must_use]
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none). `build` refuses a name the registry already holds for a retry layer
    /// ([`ConfigError::is_duplicate`]).
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The most calls made for one request, **the first call included**: `max_attempts(3)` is
    /// one call and at most two retries; `1` never retries. Must be at least 1.
    #[must_use]
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts;
        self
    }

    /// Caps `max_attempts` at `cap`, whatever is set before or after (the gRPC preset: 5).
    pub(crate) const fn cap_attempts(mut self, cap: u32) -> Self {
        self.attempts_cap = cap;
        self
    }

    /// The most retries after the first call: `max_retries(2)` is `max_attempts(3)`.
    #[must_use]
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.settings.max_attempts = retries.saturating_add(1);
        self
    }

    /// How long to wait before each retry (see [`Backoff`]).
    #[must_use]
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// No retry starts more than `d` after the first call started.
    #[must_use]
    pub const fn max_duration(mut self, d: Duration) -> Self {
        self.settings.max_duration = Some(d);
        self
    }

    /// The longest delay a server may ask for (`Retry-After`, `grpc-retry-pushback-ms`) and still
    /// be retried: a longer one ends the retries with that answer ([`GiveUp::ServerDelay`](crate::GiveUp::ServerDelay)),
    /// since weir never retries earlier than the server asked.
    #[must_use]
    pub const fn max_server_delay(mut self, d: Duration) -> Self {
        self.settings.max_server_delay = d;
        self
    }

    /// The retry budget, shared by every service and clone of the layer. Replaces a
    /// [`shared_budget`](Self::shared_budget) set before.
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = budget;
        self.shared_budget = None;
        self
    }

    /// Draws on `budget`, a budget other layers share (another retry layer, a `weir-hedge`
    /// layer), instead of one of the layer's own: see [`SharedBudget`].
    #[must_use]
    pub fn shared_budget(mut self, budget: SharedBudget) -> Self {
        self.settings.budget = budget.budget();
        self.shared_budget = Some(budget);
        self
    }

    /// One budget per server name, as gRFC A6 keys retry throttling: the request's authority
    /// (host and port of its URI, or its `Host` header; [`Authority`]), each server's budget
    /// with the [`budget`](Self::budget)'s settings, at most
    /// [`max_servers`](Self::max_servers) of them (see [`PerKey`]). For `http::Request`s
    /// (HTTP and gRPC clients).
    #[must_use]
    pub fn budget_per_server(self) -> RetryBuilder<R, C, O, P, PerKey<Authority>> {
        self.budget_per_key(Authority)
    }

    /// One budget per key that `extractor` reads from each request (see [`PerKey`]); a request
    /// without a key uses the layer's budget.
    #[must_use]
    pub fn budget_per_key<E>(self, extractor: E) -> RetryBuilder<R, C, O, P, PerKey<E>> {
        self.map_parts(|r, c, o, _| (r, c, o, PerKey::new(extractor, DEFAULT_MAX_SERVERS)))
    }

    /// Takes a whole [`RetrySettings`] (a configuration file's, say) in place of the settings
    /// set so far. A budget given with [`shared_budget`](Self::shared_budget) is kept.
    #[must_use]
    pub fn settings(mut self, settings: RetrySettings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings as they stand.
    #[must_use]
    pub const fn get_settings(&self) -> &RetrySettings {
        &self.settings
    }

    /// Seeds the jitter's random source, for reproducible delays (tests, simulations). Seeded
    /// per layer from a cheap random value otherwise.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// Decides what is a retryable failure (see [`weir_core::Classify`]).
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> RetryBuilder<R, C2, O, P, K> {
        self.map_parts(|r, _, o, k| (r, classify, o, k))
    }

    /// Receives an [`Event`](crate::Event) on each retry and each give-up.
    #[must_use]
    pub fn observer<O2>(self, observer: O2) -> RetryBuilder<R, C, O2, P, K> {
        self.map_parts(|r, c, _, k| (r, c, observer, k))
    }

    /// How requests are kept and sent again (see [`Replay`](crate::Replay)).
    /// [`CloneRequest`](crate::CloneRequest) clones every request, HTTP or not, and so retries
    /// a POST: choose it only for requests that are never HTTP, or that may be duplicated.
    #[must_use]
    pub fn replay<R2>(self, replay: R2) -> RetryBuilder<R2, C, O, P, K> {
        self.map_parts(|_, c, o, k| (replay, c, o, k))
    }

    /// Retries only requests the predicate accepts (the predicate on the request; the one on
    /// the result is the classifier). Other requests are sent once. Combines with the replay's
    /// own rules: an HTTP POST without an `Idempotency-Key` is still sent once.
    #[must_use]
    pub fn retry_request_if<F>(self, predicate: F) -> RetryBuilder<Filtered<R, F>, C, O, P, K> {
        self.map_parts(|r, c, o, k| (Filtered::new(r, predicate), c, o, k))
    }

    /// Records the outcome of an HTTP response whose status is in its trailers (gRPC: every
    /// normal completion, and a failure after the first message) in the budget at the end of
    /// its body, by the trailers' `grpc-status`, rather than as the success its `200` head looks
    /// like ([`Http`]; the classifier must implement [`ClassifyTrailers`](weir_core::classify::ClassifyTrailers),
    /// as [`GrpcStatus`](weir_core::classify::GrpcStatus) does). Such a response is never retried (its body
    /// streams to the caller): this is about what the budget counts. The response body becomes
    /// an [`EndBody`](weir_core::body::EndBody). [`RetryLayer::grpc`] sets it.
    #[must_use]
    pub fn trailers(self) -> RetryBuilder<R, C, O, Http, K> {
        self.map_parts(|r, c, o, k| (r, c, o, k))
    }

    /// The replay, to adjust in place (for the configuration file, which can also turn
    /// [`retry_non_idempotent`](Self::retry_non_idempotent) off).
    #[cfg(feature = "serde")]
    pub(crate) const fn replay_mut(&mut self) -> &mut R {
        &mut self.replay
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule ([`RetrySettings::validate`]); with a
    /// [`registry`](Self::registry), a duplicate `name`.
    pub fn build(self) -> Result<RetryLayer<R, C, O, P, K>, ConfigError> {
        self.build_with_handle().map(|(layer, _)| layer)
    }

    /// As [`build`](Self::build), with a [`RetryHandle`] over the layer's shared state.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule ([`RetrySettings::validate`]).
    pub fn build_with_handle(
        self,
    ) -> Result<(RetryLayer<R, C, O, P, K>, RetryHandle), ConfigError> {
        self.settings.validate()?;
        let parts = Parts {
            replay: self.replay,
            classify: self.classify,
            observer: self.observer,
            scope: self.scope,
            budget: self.shared_budget,
        };
        let layer = RetryLayer::from_shared(Shared::new(self.settings, self.attempts_cap, parts));
        let handle = layer.handle();
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(handle.clone()))?;
        }
        Ok((layer, handle))
    }
}

impl<R, C, O, P, K> RetryBuilder<R, C, O, P, PerKey<K>> {
    /// The most servers (keys) with a budget of their own at once (1 000 unless set; at least
    /// 1): while that many are known, a new server shares one overflow budget until idle ones
    /// are forgotten (after 10 minutes without a request).
    #[must_use]
    pub fn max_servers(mut self, max_servers: usize) -> Self {
        self.scope = self.scope.max_servers(max_servers);
        self
    }
}

impl<C, O, P, K> RetryBuilder<HttpReplay, C, O, P, K> {
    /// Buffers request bodies up to `bytes` for replay (64 KiB unless set); larger bodies are
    /// sent once and not retried.
    #[must_use]
    pub const fn body_limit(mut self, bytes: usize) -> Self {
        self.replay = self.replay.limit(bytes);
        self
    }

    /// Whether to wait for a request body still being streamed before the first attempt (see
    /// [`HttpReplay::wait_for_body`]); `true` for `http()`, `false` for `grpc()`.
    #[must_use]
    pub const fn wait_for_body(mut self, wait: bool) -> Self {
        self.replay = self.replay.wait_for_body(wait);
        self
    }

    /// Retries POST and PATCH (every method but CONNECT) even without an `Idempotency-Key`.
    /// Only when the server tolerates duplicates.
    #[must_use]
    pub const fn retry_non_idempotent(mut self) -> Self {
        self.replay = self.replay.non_idempotent(true);
        self
    }
}
