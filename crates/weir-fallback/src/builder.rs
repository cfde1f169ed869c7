//! `FallbackBuilder` and `FallbackLayer::builder()`.

use std::fmt;
use std::sync::Arc;

use weir_core::inspect::Registry;
use weir_core::protocol::{Http, Plain};
use weir_core::{ConfigError, Name, classify::AnyError, degrade::LoadLevel};

use crate::handle::FallbackHandle;
use crate::last_good::LastGood;
use crate::layer::FallbackLayer;
use crate::shared::{Shared, Sources};
use crate::source::{
    AltFrom, AltReplay, AltService, AtLoad, FromCause, FromParts, Never, NoService, NoValue,
};
use crate::state::{Order, Source};

/// Configures a [`FallbackLayer`]; from [`FallbackLayer::builder`].
///
/// Sources are tried in the order they are added (adding one again replaces it in its first
/// place); the first that answers wins. Defaults: no source (`build()` refuses that), the
/// [`AnyError`] classifier, [`Plain`] responses, no switch, no observer.
#[must_use]
pub struct FallbackBuilder<V = NoValue, A = NoService, P = Plain, W = Never, C = AnyError, O = ()> {
    name: Name,
    value: V,
    alternative: A,
    protocol: P,
    switch: W,
    classifier: C,
    observer: O,
    order: Order,
    /// The first rule a setting broke, reported by `build()`.
    problem: Option<ConfigError>,
    /// Where `build` registers the handle ([`registry`](FallbackBuilder::registry)).
    registry: Option<Registry>,
}

impl FallbackLayer {
    /// A builder with no source yet.
    pub fn builder() -> FallbackBuilder {
        FallbackBuilder::new()
    }
}

impl FallbackBuilder {
    fn new() -> Self {
        Self {
            name: Name::default(),
            value: NoValue,
            alternative: NoService,
            protocol: Plain,
            switch: Never,
            classifier: AnyError,
            observer: (),
            order: Order::default(),
            problem: None,
            registry: None,
        }
    }
}

impl<V, A, P, W, C, O> FallbackBuilder<V, A, P, W, C, O> {
    /// Names this layer in events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none). `build` refuses a name the registry already holds for a fallback layer
    /// ([`ConfigError::is_duplicate`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// A value source: `value(cause)` answers, or returns `None` to let the next source try.
    /// Reads nothing of the request, so it costs nothing on the happy path.
    pub fn value<F>(self, value: F) -> FallbackBuilder<FromCause<F>, A, P, W, C, O> {
        let order = self.order.with(Source::Value);
        FallbackBuilder {
            name: self.name,
            value: FromCause(value),
            alternative: self.alternative,
            protocol: self.protocol,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// A value source that reads the request: `capture(&req)` copies what it needs before the
    /// request goes to the primary (on every call: copy only what is cheap, such as the `Uri`),
    /// and `value(cause, &parts)` answers or returns `None`.
    pub fn value_from<X, F>(
        self,
        capture: X,
        value: F,
    ) -> FallbackBuilder<FromParts<X, F>, A, P, W, C, O> {
        let order = self.order.with(Source::Value);
        FallbackBuilder {
            name: self.name,
            value: FromParts(capture, value),
            alternative: self.alternative,
            protocol: self.protocol,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// An alternative service (a second upstream, a read replica, a static file service) that
    /// gets a copy of the request (`Req: Clone`, kept on every call) when the primary fails. Its
    /// response is the answer; its error, or a response the classifier calls a failure, lets
    /// the next source try.
    pub fn service<A2>(self, service: A2) -> FallbackBuilder<V, AltService<A2>, P, W, C, O> {
        let order = self.order.with(Source::Service);
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: AltService(service),
            protocol: self.protocol,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// An alternative service for requests that are not `Clone`: `capture(&req)` copies what
    /// the alternative needs before the request goes to the primary (on every call: copy only
    /// what is cheap, such as the `Uri`), and `rebuild(parts)` makes the alternative's request
    /// from it when the primary fails.
    pub fn service_from<A2, X, F>(
        self,
        service: A2,
        capture: X,
        rebuild: F,
    ) -> FallbackBuilder<V, AltFrom<A2, X, F>, P, W, C, O> {
        let order = self.order.with(Source::Service);
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: AltFrom {
                service,
                capture,
                rebuild,
            },
            protocol: self.protocol,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// An alternative service that gets the request as weir-retry's `replay` keeps it for a
    /// retry: with [`HttpReplay`](weir_retry::HttpReplay), an `http::Request<B>` of any body
    /// (a POST's stream, no `Clone` needed) has its body read into memory before the primary is
    /// called, up to the replay's limit (64 KiB unless set), and both the primary and the
    /// alternative receive `http::Request<ReplayBody<B>>` (so the primary's type is the one a
    /// retry's inner service has).
    ///
    /// The replay decides which requests are kept: `HttpReplay::new()` keeps the idempotent
    /// methods and those with an `Idempotency-Key`; `.non_idempotent(true)` every method but
    /// CONNECT (a POST whose primary failed may have been done: only when the alternative
    /// tolerates that). A request not kept (its body over the limit, its method refused) is sent
    /// to the primary once, streaming, and when that fails the alternative is skipped: the next
    /// source tries, or the primary's own error is returned.
    pub fn service_replay<A2, R>(
        self,
        service: A2,
        replay: R,
    ) -> FallbackBuilder<V, AltReplay<A2, R>, P, W, C, O> {
        let order = self.order.with(Source::Service);
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: AltReplay { service, replay },
            protocol: self.protocol,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// Decides what a result means: every result it does not call a success falls back, except
    /// a response it ignores. [`weir_core::classify::HttpStatus`] or [`weir_core::classify::GrpcStatus`] for
    /// responses, a closure for anything else.
    pub fn classify<C2>(self, classifier: C2) -> FallbackBuilder<V, A, P, W, C2, O> {
        let order = self.order;
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: self.alternative,
            protocol: self.protocol,
            switch: self.switch,
            classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// Receives an [`Event`](crate::Event) for every fallback answer and every fallback no
    /// source answered.
    pub fn observer<O2>(self, observer: O2) -> FallbackBuilder<V, A, P, W, C, O2> {
        let order = self.order;
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: self.alternative,
            protocol: self.protocol,
            switch: self.switch,
            classifier: self.classifier,
            observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// Sends to the fallback first every request `switch` says so of (any `Fn(&Req) -> bool`).
    pub fn switch<W2>(self, switch: W2) -> FallbackBuilder<V, A, P, W2, C, O> {
        let order = self.order;
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: self.alternative,
            protocol: self.protocol,
            switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }

    /// Sends to the fallback first every HTTP request whose [`LoadLevel`] (from the load
    /// shedder's `LoadLevelLayer`, outside this one) is at least `level`.
    pub fn at_load(self, level: LoadLevel) -> FallbackBuilder<V, A, P, AtLoad, C, O> {
        self.switch(AtLoad(level))
    }

    /// The last good answer source (stale-if-error, HTTP only): successful answers kept per
    /// key and served, with `Age`, when the primary fails. See [`LastGood`] for what is kept.
    pub fn last_good<X>(
        self,
        last_good: LastGood<X>,
    ) -> FallbackBuilder<V, A, LastGood<X>, W, C, O> {
        let order = self.order.with(Source::LastGood);
        let problem = self.problem.or_else(|| last_good.bounds().validate().err());
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: self.alternative,
            protocol: last_good,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem,
            registry: self.registry,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        if self.order.is_empty() {
            return Err(ConfigError::missing(
                "fallback",
                "source",
                "at least one is required (`value`, `value_from`, `service` or `last_good`)",
            ));
        }
        Ok(())
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a setting breaks a rule (no source at all); with a
    /// [`registry`](Self::registry), a duplicate `name`.
    pub fn build(self) -> Result<FallbackLayer<Sources<V, A, P, W>, C, O>, ConfigError> {
        self.validate()?;
        let sources = Sources {
            value: self.value,
            alternative: self.alternative,
            protocol: self.protocol,
            switch: self.switch,
            order: self.order,
        };
        let layer = FallbackLayer::from_shared(Shared::new(
            self.name,
            sources,
            self.classifier,
            self.observer,
        ));
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(layer.handle()))?;
        }
        Ok(layer)
    }

    /// Builds the layer and a handle on its flag and counts.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_handle(
        self,
    ) -> Result<(FallbackLayer<Sources<V, A, P, W>, C, O>, FallbackHandle), ConfigError> {
        let layer = self.build()?;
        let handle = layer.handle();
        Ok((layer, handle))
    }
}

impl<V, A, W, C, O> FallbackBuilder<V, A, Plain, W, C, O> {
    /// For HTTP and gRPC: marks every fallback answer with the
    /// [`FALLBACK_HEADER`](crate::FALLBACK_HEADER) and a [`weir_core::degrade::Degraded`] extension, so
    /// clients can tell and weir's classifiers outside count the original failure.
    pub fn http(self) -> FallbackBuilder<V, A, Http, W, C, O> {
        let order = self.order;
        FallbackBuilder {
            name: self.name,
            value: self.value,
            alternative: self.alternative,
            protocol: Http,
            switch: self.switch,
            classifier: self.classifier,
            observer: self.observer,
            order,
            problem: self.problem,
            registry: self.registry,
        }
    }
}

impl<V, A, P, W, C, O> fmt::Debug for FallbackBuilder<V, A, P, W, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackBuilder")
            .field("name", &self.name)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}
