//! `IdempotencyBuilder` and `IdempotencyLayer::builder()`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use weir_core::inspect::Registry;
use weir_core::key::Global;
use weir_core::{ConfigError, Name};

use crate::body::{HandlerBody, Wrapped};
use crate::handle::IdempotencyHandle;
use crate::layer::IdempotencyLayer;
use crate::settings::{IdempotencySettings, Required};
use crate::shared::Shared;
use crate::store::MemoryStore;

/// Configures an [`IdempotencyLayer`]; from [`IdempotencyLayer::builder`].
///
/// Defaults: `POST` and `PATCH`, no key required, a 24 h TTL, a 30 s lease, keys up to 255
/// bytes, request bodies up to 2 MiB, responses kept up to 256 KiB, 2xx and 4xx kept (not 408,
/// 425, 429) and 5xx not, a [`MemoryStore`], every client in one scope ([`Global`]), no
/// observer.
#[must_use]
pub struct IdempotencyBuilder<St = MemoryStore, X = Global, O = (), M = Wrapped> {
    name: Name,
    settings: IdempotencySettings,
    store: St,
    extractor: X,
    observer: O,
    /// Where `build` registers the handle ([`registry`](IdempotencyBuilder::registry)).
    registry: Option<Registry>,
    mode: PhantomData<fn() -> M>,
}

impl IdempotencyLayer {
    /// A builder with the defaults.
    pub fn builder() -> IdempotencyBuilder {
        IdempotencyBuilder {
            name: Name::default(),
            settings: IdempotencySettings::default(),
            store: MemoryStore::default(),
            extractor: Global,
            observer: (),
            registry: None,
            mode: PhantomData,
        }
    }
}

impl<St, X, O, M> IdempotencyBuilder<St, X, O, M> {
    /// Names this layer in events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none). `build` refuses a name the registry already holds for an idempotency layer
    /// ([`ConfigError::is_duplicate`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Every plain setting at once (from a configuration file); `build()` checks them.
    pub fn settings(mut self, settings: IdempotencySettings) -> Self {
        self.settings = settings;
        self
    }

    /// The methods the layer applies to (default `POST` and `PATCH`; `build()` refuses none).
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.settings.methods = methods.into_iter().collect();
        self
    }

    /// Requires a key on every request of a covered method (400 without one).
    pub fn required(mut self) -> Self {
        self.settings.required = Required::Always;
        self
    }

    /// Requires a key on requests of a covered method whose path starts with one of `prefixes`
    /// (400 without one).
    pub fn required_on<P: Into<String>>(mut self, prefixes: impl IntoIterator<Item = P>) -> Self {
        self.settings.required = Required::Paths(prefixes.into_iter().map(Into::into).collect());
        self
    }

    /// How long a response is kept and replayed (default 24 h; more than zero).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// How long a claim lasts unless renewed (default 30 s; at most the TTL). The layer renews
    /// it every third of it while the handler runs: only a claim whose instance crashed expires,
    /// and a repeat waits at most this long for it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease;
        self
    }

    /// The longest key accepted, in bytes (default 255; 1 to 4096).
    pub fn max_key_len(mut self, n: usize) -> Self {
        self.settings.max_key_len = n;
        self
    }

    /// The longest request body accepted with a key (default 2 MiB): the body is read whole
    /// before the handler runs, to fingerprint it. A longer one is answered 413.
    pub fn max_request_bytes(mut self, n: usize) -> Self {
        self.settings.max_request_bytes = n;
        self
    }

    /// The longest response body kept (default 256 KiB). A longer one is passed through and
    /// its key marked done and not replayable.
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.settings.max_response_bytes = n;
        self
    }

    /// The `Retry-After` of a 409 and of a 503 (default 1 s).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.settings.retry_after = after;
        self
    }

    /// Whether 4xx responses are kept and replayed (default `true`; never 408, 425, 429).
    pub fn store_client_errors(mut self, store: bool) -> Self {
        self.settings.store_client_errors = store;
        self
    }

    /// Whether 5xx responses are kept and replayed (default `false`: a failed attempt releases
    /// its key, so a retry can run).
    pub fn store_server_errors(mut self, store: bool) -> Self {
        self.settings.store_server_errors = store;
        self
    }

    /// Where claims and responses live: a [`MemoryStore`] of other bounds, or (feature
    /// `redis`) a `RedisStore` shared by a fleet.
    pub fn store<St2>(self, store: St2) -> IdempotencyBuilder<St2, X, O, M> {
        IdempotencyBuilder {
            name: self.name,
            settings: self.settings,
            store,
            extractor: self.extractor,
            observer: self.observer,
            registry: self.registry,
            mode: PhantomData,
        }
    }

    /// Scopes keys by client: a key is looked up under the client's key too, so one client
    /// never gets another's response (`ApiKey::new()`, `PeerIp::new()`, a closure over the
    /// authenticated user). A request the extractor finds no key for is in one scope of its own.
    pub fn client_key<X2>(self, extractor: X2) -> IdempotencyBuilder<St, X2, O, M> {
        IdempotencyBuilder {
            name: self.name,
            settings: self.settings,
            store: self.store,
            extractor,
            observer: self.observer,
            registry: self.registry,
            mode: PhantomData,
        }
    }

    /// Receives an [`Event`](crate::Event) for every replay and every answer the layer gives
    /// in the handler's place.
    pub fn observer<O2>(self, observer: O2) -> IdempotencyBuilder<St, X, O2, M> {
        IdempotencyBuilder {
            name: self.name,
            settings: self.settings,
            store: self.store,
            extractor: self.extractor,
            observer,
            registry: self.registry,
            mode: PhantomData,
        }
    }

    /// Responds with the handler's own body type (the layer's services answer `Response<B>`
    /// for a handler's `Response<B>`, where `B: From<Bytes>`: axum's `Body`, `Full<Bytes>`)
    /// instead of an [`IdempotencyBody`](crate::IdempotencyBody) around it. A request the
    /// layer does not cover gets the handler's response as it is, not re-wrapped (and axum,
    /// which boxes every other body type into its `Body`, does not allocate for it); the
    /// layer's own answers and replays are built with `B::from(bytes)`.
    ///
    /// What it costs: a response of a kept status is read and kept only when its size hint
    /// bounds it within [`max_response_bytes`](Self::max_response_bytes) (axum's bodies from
    /// `String`, `Json`, `Bytes` do); one of unknown or larger size (a stream) is passed on
    /// untouched and its key marked done and not replayable, as a response over the limit is.
    /// A body longer than its hint said is read whole and passed on, not kept; trailers are
    /// dropped (and the response not kept); a body that fails while read is answered `500`.
    pub fn handler_body(self) -> IdempotencyBuilder<St, X, O, HandlerBody> {
        IdempotencyBuilder {
            name: self.name,
            settings: self.settings,
            store: self.store,
            extractor: self.extractor,
            observer: self.observer,
            registry: self.registry,
            mode: PhantomData,
        }
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a setting breaks a rule ([`IdempotencySettings::validate`]); with a
    /// [`registry`](Self::registry), a duplicate `name`.
    pub fn build(self) -> Result<IdempotencyLayer<St, X, O, M>, ConfigError> {
        self.settings.validate()?;
        let layer = IdempotencyLayer::from_shared(Shared::new(
            self.name,
            self.settings,
            self.store,
            self.extractor,
            self.observer,
        ));
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(layer.handle()))?;
        }
        Ok(layer)
    }

    /// Builds the layer and a handle on its counts.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_handle(
        self,
    ) -> Result<(IdempotencyLayer<St, X, O, M>, IdempotencyHandle), ConfigError> {
        let layer = self.build()?;
        let handle = layer.handle();
        Ok((layer, handle))
    }
}

impl<St, X, O, M> fmt::Debug for IdempotencyBuilder<St, X, O, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyBuilder")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
