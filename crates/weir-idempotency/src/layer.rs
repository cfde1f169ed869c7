//! `IdempotencyLayer`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::Name;
use weir_core::key::Global;

use crate::body::Wrapped;
use crate::handle::IdempotencyHandle;
use crate::service::Idempotency;
use crate::settings::IdempotencySettings;
use crate::shared::Shared;
use crate::store::MemoryStore;

/// Applies [`Idempotency`]: a request with an `Idempotency-Key` runs once; repeats get the
/// stored response.
///
/// The store and the counters are created when the layer is built and shared by every service
/// it makes and every clone (axum calls `layer()` once per route: one layer, one store).
/// `M` is how its services' responses carry their bodies ([`BodyMode`](crate::BodyMode)).
pub struct IdempotencyLayer<St = MemoryStore, X = Global, O = (), M = Wrapped> {
    shared: Arc<Shared<St, X, O>>,
    mode: PhantomData<fn() -> M>,
}

impl IdempotencyLayer {
    /// `POST` and `PATCH` with a key run once per key for 24 hours, in a [`MemoryStore`] of the
    /// default bounds, every client in one scope (keys must then be unique across clients:
    /// scope them with [`IdempotencyBuilder::client_key`](crate::IdempotencyBuilder::client_key)).
    /// It takes no setting, so it never fails and never panics (the rule of every `new` in weir).
    #[must_use]
    pub fn new() -> Self {
        Self::from_shared(Shared::new(
            Name::default(),
            IdempotencySettings::default(),
            MemoryStore::default(),
            Global,
            (),
        ))
    }
}

impl Default for IdempotencyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<St, X, O, M> IdempotencyLayer<St, X, O, M> {
    pub(crate) fn from_shared(shared: Shared<St, X, O>) -> Self {
        Self {
            shared: Arc::new(shared),
            mode: PhantomData,
        }
    }

    /// A handle on this layer's counts.
    #[must_use]
    pub fn handle(&self) -> IdempotencyHandle {
        IdempotencyHandle::new(Arc::clone(&self.shared.counters), self.shared.name.clone())
    }

    /// The layer's settings.
    #[must_use]
    pub fn settings(&self) -> &IdempotencySettings {
        &self.shared.settings
    }
}

impl<S, St, X, O, M> Layer<S> for IdempotencyLayer<St, X, O, M> {
    type Service = Idempotency<S, St, X, O, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::new(inner, Arc::clone(&self.shared))
    }
}

impl<St, X, O, M> Clone for IdempotencyLayer<St, X, O, M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            mode: PhantomData,
        }
    }
}

impl<St, X, O, M> fmt::Debug for IdempotencyLayer<St, X, O, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("shared", &self.shared)
            .finish()
    }
}
