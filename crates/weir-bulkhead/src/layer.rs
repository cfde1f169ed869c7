//! `BulkheadLayer`, its presets, and the state every service it makes shares.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::{Error, Name, Observer};

use crate::builder::BulkheadBuilder;
use crate::event::Event;
use crate::handle::BulkheadHandle;
use crate::permit::Core;
use crate::protocol::{Http, Plain};
use crate::service::Bulkhead;
use crate::state::RejectReason;

/// Applies a [`Bulkhead`]: at most `max_concurrent` calls at once, a bounded FIFO queue with a
/// maximum wait, rejection with `weir_core::Error::bulkhead_full()`.
///
/// The permits are created when the layer is built and shared by every service it makes and
/// every clone (axum calls `layer()` once per route: they all share one bulkhead).
pub struct BulkheadLayer<O = (), P = Plain> {
    shared: Arc<Shared<O>>,
    _protocol: PhantomData<fn() -> P>,
}

impl BulkheadLayer {
    /// At most `max_concurrent` calls at once, no queue, [`Plain`] mode. A `max_concurrent` of
    /// 0 is taken as 1 (use the builder to have it refused as a `ConfigError`).
    #[must_use]
    pub fn new(max_concurrent: usize) -> Self {
        Self::builder()
            .max_concurrent(max_concurrent.clamp(1, crate::builder::MAX_PERMITS))
            .build()
            .expect("a clamped max_concurrent with the defaults is a valid configuration")
    }

    /// A builder with the defaults (100 concurrent calls, no queue, `Retry-After: 1s`).
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::new()
    }

    /// At most `max_concurrent` calls at once; up to `max_queue` more wait, in order, at most
    /// `max_wait` each.
    pub fn queueing(
        max_concurrent: usize,
        max_queue: usize,
        max_wait: Duration,
    ) -> BulkheadBuilder {
        Self::builder()
            .max_concurrent(max_concurrent)
            .max_queue(max_queue)
            .max_wait(max_wait)
    }

    /// One bulkhead per key that `extractor` reads from a request (a tenant header, a
    /// downstream name), with named partitions and an optional shared pool.
    pub fn partitioned<X, K>(extractor: X) -> crate::partition::PartitionedBuilder<X, K> {
        crate::partition::PartitionedBuilder::new(extractor)
    }

    /// For an HTTP server or client: at most `max_concurrent` calls at once, each permit held
    /// until its response body ends, the queue wait bounded by the request's deadline.
    pub fn http(max_concurrent: usize) -> BulkheadBuilder<(), Http> {
        Self::builder().max_concurrent(max_concurrent).http()
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
        BulkheadHandle::new(Arc::clone(&self.shared.core))
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
            .field("max_queue", &self.shared.max_queue)
            .field("max_wait", &self.shared.max_wait)
            .finish_non_exhaustive()
    }
}

/// Built once per layer, shared by every service and clone.
pub(crate) struct Shared<O> {
    pub(crate) core: Arc<Core>,
    pub(crate) name: Name,
    pub(crate) max_queue: usize,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) retry_after: Duration,
    pub(crate) backpressure: bool,
    pub(crate) hold_body: bool,
    pub(crate) observer: O,
}

impl<O> Shared<O> {
    /// Counts and reports a rejection, and makes its error.
    pub(crate) fn reject(&self, reason: RejectReason) -> Error
    where
        O: for<'a> Observer<Event<'a>>,
    {
        self.core.count_rejection();
        let available = self.core.available().min(self.core.max());
        self.observer.on_event(&Event::Rejected {
            layer: &self.name,
            partition: None,
            reason,
            in_flight: self.core.max() - available,
            queued: self.core.queued(),
        });
        Error::bulkhead_full()
            .with_layer(self.name.clone())
            .with_retry_after(self.retry_after)
    }
}
