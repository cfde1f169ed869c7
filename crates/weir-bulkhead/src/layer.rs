//! `BulkheadLayer`: its infallible `new`, its handle, and `impl Layer`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::protocol::Plain;

use crate::handle::BulkheadHandle;
use crate::service::Bulkhead;
use crate::settings::{BulkheadSettings, MAX_PERMITS};
use crate::shared::Shared;

/// Applies a [`Bulkhead`]: at most `max_concurrent` calls at once, a bounded FIFO queue with a
/// maximum wait, rejection with `weir_core::Error::bulkhead_full()`.
///
/// The permits are created when the layer is built and shared by every service it makes and
/// every clone (axum calls `layer()` once per route: they all share one bulkhead). `P` is the
/// mode, `weir_core::protocol::Plain` (the default) or `weir_core::protocol::Http`.
pub struct BulkheadLayer<O = (), P = Plain> {
    shared: Arc<Shared<O>>,
    _protocol: PhantomData<fn() -> P>,
}

impl BulkheadLayer {
    /// At most `max_concurrent` calls at once, no queue, `Plain` mode. A `max_concurrent` of 0
    /// is raised to 1, and one above [`MAX_PERMITS`] lowered to it (the rule of every `new` in
    /// weir).
    #[must_use]
    pub fn new(max_concurrent: usize) -> Self {
        let settings = BulkheadSettings::new(max_concurrent.clamp(1, MAX_PERMITS));
        Self::from_shared(Shared::new(settings, ()))
    }
}

impl<O, P> BulkheadLayer<O, P> {
    pub(crate) fn from_shared(shared: Shared<O>) -> Self {
        Self {
            shared: Arc::new(shared),
            _protocol: PhantomData,
        }
    }

    /// A handle reading this bulkhead's figures.
    #[must_use]
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle::new(
            Arc::clone(&self.shared.core),
            self.shared.name.clone(),
            Arc::clone(&self.shared.tuning),
        )
    }
}

impl<S, O, P> Layer<S> for BulkheadLayer<O, P> {
    type Service = Bulkhead<S, O, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, Arc::clone(&self.shared))
    }
}

impl<O, P> Clone for BulkheadLayer<O, P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _protocol: PhantomData,
        }
    }
}

impl<O, P> fmt::Debug for BulkheadLayer<O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("name", &self.shared.name)
            .field("stats", &self.handle().stats())
            .field("max_queue", &self.shared.tuning.policy().max_queue)
            .field("max_wait", &self.shared.tuning.policy().max_wait)
            .finish_non_exhaustive()
    }
}
