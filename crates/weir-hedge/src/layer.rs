//! `HedgeLayer`.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::AnyError;
use weir_retry::IdempotentReplay;

use crate::handle::HedgeHandle;
use crate::service::Hedge;
use crate::shared::Shared;

/// Applies [`Hedge`] to a service. Every service it makes, and every clone, shares one budget,
/// one latency histogram and one set of counters. Made by [`HedgeLayer::new`] or
/// [`HedgeLayer::builder`].
pub struct HedgeLayer<R = IdempotentReplay, C = AnyError, O = ()> {
    pub(crate) shared: Arc<Shared<R, C, O>>,
}

impl<R, C, O> HedgeLayer<R, C, O> {
    /// A handle over the layer's shared state.
    #[must_use]
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle::new(Arc::clone(&self.shared.core))
    }
}

impl<R, C, O> Clone for HedgeLayer<R, C, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R, C, O> fmt::Debug for HedgeLayer<R, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.shared.name)
            .field("max_attempts", &self.shared.max_attempts)
            .field("trigger", &self.shared.trigger)
            .finish_non_exhaustive()
    }
}

impl<S, R, C, O> Layer<S> for HedgeLayer<R, C, O> {
    type Service = Hedge<S, R, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(inner, Arc::clone(&self.shared))
    }
}
