//! `ChaosBuilder`, `ChaosLayer::builder()` and `ChaosLayer::http()`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use weir_core::inspect::Registry;
use weir_core::protocol::{Http, Plain};
use weir_core::wire::GrpcCode;
use weir_core::{ConfigError, Name};

use crate::fault::{AnyClient, NoBehaviour, NoError, OnlyKeys};
use crate::handle::ChaosHandle;
use crate::layer::ChaosLayer;
use crate::settings::{ChaosSettings, Latency};
use crate::shared::{Parts, Shared};

impl ChaosLayer {
    /// A builder in plain mode (any request and response type): errors, latency, stalls
    /// (forever: a plain request has no deadline) and the custom behaviour.
    #[must_use]
    pub fn builder() -> ChaosBuilder {
        ChaosBuilder {
            name: Name::unnamed(),
            settings: ChaosSettings::default(),
            error: NoError,
            behaviour: NoBehaviour,
            keys: AnyClient,
            observer: (),
            http: false,
            has_error: false,
            has_behaviour: false,
            registry: None,
            _mode: PhantomData,
        }
    }

    /// A builder in HTTP mode (`http::Request` / `http::Response`, as axum, hyper and tonic
    /// use): also status and gRPC code answers, failing bodies, a route prefix, the fault
    /// header (when allowed), and stalls that end at the request's
    /// [`Deadline`](weir_core::Deadline). The response body becomes a
    /// [`ChaosBody`](crate::ChaosBody).
    #[must_use]
    pub fn http() -> ChaosBuilder<Http> {
        let b = Self::builder();
        ChaosBuilder {
            name: b.name,
            settings: b.settings,
            error: b.error,
            behaviour: b.behaviour,
            keys: b.keys,
            observer: b.observer,
            http: true,
            has_error: false,
            has_behaviour: false,
            registry: b.registry,
            _mode: PhantomData,
        }
    }
}

/// Configures a [`ChaosLayer`]; from [`ChaosLayer::builder`] (plain mode) or
/// [`ChaosLayer::http`] (HTTP mode).
///
/// It holds one [`ChaosSettings`] (the plain settings a configuration file can give at once,
/// with [`settings`](Self::settings)) plus its typed parts: the error to inject, the custom
/// behaviour, the client keys and the observer.
///
/// | setting | default |
/// |---|---|
/// | enabled | yes ([`disabled`](Self::disabled) to start off) |
/// | every probability | 0 |
/// | [`seed`](Self::seed) | from the process |
/// | [`latency`](Self::latency) distribution | a fixed 100 ms |
/// | [`status`](Self::status) / [`grpc_code`](Self::grpc_code) | 503 / `UNAVAILABLE` |
/// | [`failing_body`](Self::failing_body) | fails before the first byte |
/// | [`fault_header`](Self::fault_header) | **off** |
/// | [`route_prefix`](Self::route_prefix), [`only_keys`](Self::only_keys), [`window`](Self::window) | every request, always |
/// | [`observer`](Self::observer) | `()` |
#[derive(Debug)]
pub struct ChaosBuilder<P = Plain, E = NoError, B = NoBehaviour, K = AnyClient, O = ()> {
    name: Name,
    settings: ChaosSettings,
    error: E,
    behaviour: B,
    keys: K,
    observer: O,
    http: bool,
    has_error: bool,
    has_behaviour: bool,
    /// Where `build` registers the handle ([`registry`](ChaosBuilder::registry)).
    registry: Option<Registry>,
    _mode: PhantomData<fn() -> P>,
}

impl<P, E, B, K, O> ChaosBuilder<P, E, B, K, O> {
    /// The layer's name, carried by its events.
    #[must_use]
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none), with the admin actions `enable` and `disable`. `build` refuses a name the
    /// registry already holds for a chaos layer ([`ConfigError::is_duplicate`]).
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Seeds the random source: the same seed and the same requests, made in the same order,
    /// get the same faults and the same latencies (one task, or the simulator). Unseeded, the
    /// source is seeded from the process.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// Builds the layer switched off: nothing is injected until
    /// [`ChaosHandle::enable`](crate::ChaosHandle::enable).
    #[must_use]
    pub const fn disabled(mut self) -> Self {
        self.settings.enabled = false;
        self
    }

    /// With `probability`, answers with the error `make` returns instead of calling the inner
    /// service: `|| weir_core::Error::overloaded()` (a weir error kind, for a `BoxError`
    /// service), or any `Fn() -> X` where the inner service's error is `From<X>`.
    #[must_use]
    pub fn error<F>(self, probability: f64, make: F) -> ChaosBuilder<P, F, B, K, O> {
        let mut settings = self.settings;
        settings.error = probability;
        ChaosBuilder {
            name: self.name,
            settings,
            error: make,
            behaviour: self.behaviour,
            keys: self.keys,
            observer: self.observer,
            http: self.http,
            has_error: true,
            has_behaviour: self.has_behaviour,
            registry: self.registry,
            _mode: PhantomData,
        }
    }

    /// With `probability`, adds a delay drawn from `latency` to the call, whatever its outcome
    /// (rolled on its own: it adds to any other fault).
    #[must_use]
    pub const fn latency(mut self, probability: f64, latency: Latency) -> Self {
        self.settings.latency = probability;
        self.settings.latency_distribution = latency;
        self
    }

    /// With `probability`, the call never answers: the inner service is not called, and the
    /// future stays pending until the request's [`Deadline`](weir_core::Deadline) (HTTP mode;
    /// it then answers 504, or `DEADLINE_EXCEEDED` to a gRPC request), or until the caller
    /// drops it when the request has none (always, in plain mode). The layers outside are
    /// what must give up: a timeout, a hedge.
    #[must_use]
    pub const fn stall(mut self, probability: f64) -> Self {
        self.settings.stall = probability;
        self
    }

    /// With `probability`, runs `behaviour` on the request before the inner service is called
    /// (Polly's behaviour strategy): any `Fn(&mut Req)`.
    #[must_use]
    pub fn behaviour<F>(self, probability: f64, behaviour: F) -> ChaosBuilder<P, E, F, K, O> {
        let mut settings = self.settings;
        settings.behaviour = probability;
        ChaosBuilder {
            name: self.name,
            settings,
            error: self.error,
            behaviour,
            keys: self.keys,
            observer: self.observer,
            http: self.http,
            has_error: self.has_error,
            has_behaviour: true,
            registry: self.registry,
            _mode: PhantomData,
        }
    }

    /// Faults only for the clients whose key, by `extractor` (any
    /// [`KeyExtractor`](weir_core::KeyExtractor)), is one of `keys`: a canary tenant, a test
    /// API key. A request without a key gets none.
    #[must_use]
    pub fn only_keys<K2, X>(
        self,
        extractor: K2,
        keys: impl IntoIterator<Item = X>,
    ) -> ChaosBuilder<P, E, B, OnlyKeys<K2, X>, O> {
        ChaosBuilder {
            name: self.name,
            settings: self.settings,
            error: self.error,
            behaviour: self.behaviour,
            keys: OnlyKeys::new(extractor, keys.into_iter().collect()),
            observer: self.observer,
            http: self.http,
            has_error: self.has_error,
            has_behaviour: self.has_behaviour,
            registry: self.registry,
            _mode: PhantomData,
        }
    }

    /// Faults only from `start` to `end` after the layer is built (a game day's hour).
    #[must_use]
    pub const fn window(mut self, start: Duration, end: Duration) -> Self {
        self.settings.window_start = start;
        self.settings.window_end = Some(end);
        self
    }

    /// Receives the layer's [`Event`](crate::Event)s.
    #[must_use]
    pub fn observer<O2>(self, observer: O2) -> ChaosBuilder<P, E, B, K, O2> {
        ChaosBuilder {
            name: self.name,
            settings: self.settings,
            error: self.error,
            behaviour: self.behaviour,
            keys: self.keys,
            observer,
            http: self.http,
            has_error: self.has_error,
            has_behaviour: self.has_behaviour,
            registry: self.registry,
            _mode: PhantomData,
        }
    }

    /// Every plain setting at once (from a configuration file); replaces those set so far.
    #[must_use]
    pub fn settings(mut self, settings: ChaosSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn build(self) -> Result<ChaosLayer<P, E, B, K, O>, ConfigError> {
        self.build_with_handle().map(|(layer, _)| layer)
    }

    /// As [`build`](Self::build), with a [`ChaosHandle`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn build_with_handle(
        self,
    ) -> Result<(ChaosLayer<P, E, B, K, O>, ChaosHandle), ConfigError> {
        self.settings.validate()?;
        self.settings
            .check_parts(self.http, self.has_error, self.has_behaviour)?;
        let parts = Parts {
            http: self.http,
            error: self.has_error,
            behaviour: self.has_behaviour,
        };
        let layer = ChaosLayer::from_shared(Shared::new(
            self.name,
            &self.settings,
            parts,
            self.error,
            self.behaviour,
            self.keys,
            self.observer,
        ));
        let handle = layer.handle();
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(handle.clone()))?;
        }
        Ok((layer, handle))
    }
}

impl<E, B, K, O> ChaosBuilder<Http, E, B, K, O> {
    /// With `probability`, answers `status` instead of calling the inner service (an empty
    /// body); a gRPC request gets a trailers-only response with the
    /// [`grpc_code`](Self::grpc_code) instead.
    #[must_use]
    pub const fn status(mut self, probability: f64, status: StatusCode) -> Self {
        self.settings.status = probability;
        self.settings.status_code = status.as_u16();
        self
    }

    /// The gRPC code a status fault answers a gRPC request with (`UNAVAILABLE` unless set).
    #[must_use]
    pub const fn grpc_code(mut self, code: GrpcCode) -> Self {
        self.settings.grpc_code = code.as_u8();
        self
    }

    /// With `probability`, the response body fails (a [`BodyFault`](crate::BodyFault) error)
    /// once at least `after_bytes` bytes went through: a connection reset mid-download.
    #[must_use]
    pub const fn failing_body(mut self, probability: f64, after_bytes: u64) -> Self {
        self.settings.body = probability;
        self.settings.body_after = after_bytes;
        self
    }

    /// Faults only for requests whose path is `prefix` or under it (`/api` selects `/api` and
    /// `/api/x`, not `/apix`).
    #[must_use]
    pub fn route_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.route_prefix = Some(prefix.into());
        self
    }

    /// Lets a request's [`FAULT_HEADER`](crate::FAULT_HEADER) (`x-weir-fault`) ask for faults,
    /// which it then gets instead of the rolled ones (still only within the window, the route
    /// prefix and the client keys). **Off by default**: a client must not be able to inject
    /// faults into production. Turn it on in test and staging deployments, or with
    /// [`only_keys`](Self::only_keys) for a test client.
    #[must_use]
    pub const fn fault_header(mut self, allowed: bool) -> Self {
        self.settings.header = allowed;
        self
    }
}
