//! The state every service of one bulkhead layer shares: its permits and its settings, and who
//! words a refusal.

use std::sync::Arc;

use weir_core::{Error, Name, Observer};

use crate::event::Event;
use crate::permit::Core;
use crate::settings::BulkheadSettings;
use crate::state::RejectReason;
use crate::tuning::{Policy, Tuning};

/// Built once per layer, shared by every service and clone.
pub(crate) struct Shared<O> {
    pub(crate) core: Arc<Core>,
    pub(crate) name: Name,
    /// The queue's length, the longest wait and the `Retry-After`, which a handle may change.
    pub(crate) tuning: Arc<Tuning>,
    pub(crate) backpressure: bool,
    pub(crate) hold_body: bool,
    pub(crate) observer: O,
}

impl<O> Shared<O> {
    /// The state of a bulkhead with these (valid) settings.
    pub(crate) fn new(settings: BulkheadSettings, observer: O) -> Self {
        let policy = Policy {
            max_queue: settings.max_queue,
            max_wait: settings.max_wait,
            retry_after: settings.retry_after,
        };
        let tuning = Tuning::new(
            policy,
            settings.name.clone(),
            settings.backpressure,
            settings.release_at_head,
        );
        Self {
            core: Core::new(settings.max_concurrent),
            name: settings.name,
            tuning: Arc::new(tuning),
            backpressure: settings.backpressure,
            hold_body: !settings.release_at_head,
            observer,
        }
    }

    /// Counts and reports a rejection, and makes its error.
    pub(crate) fn reject(&self, reason: RejectReason) -> Error
    where
        O: for<'a> Observer<Event<'a>>,
    {
        self.core.count_rejection();
        self.observer.on_event(&Event::Rejected {
            layer: &self.name,
            partition: None,
            reason,
            in_flight: self.core.in_flight(),
            queued: self.core.queued(),
        });
        Error::bulkhead_full()
            .with_layer(self.name.clone())
            .with_retry_after(self.tuning.policy().retry_after)
    }
}

/// Who counts, reports and words the refusal of a request that waited in vain: the layer's
/// bulkhead, or a partition (which names its key; boxed once per queued request, the slow path).
pub(crate) enum Rejecter<O> {
    Layer(Arc<Shared<O>>),
    Partition(Arc<dyn Fn(RejectReason) -> Error + Send + Sync>),
}

impl<O> Rejecter<O>
where
    O: for<'a> Observer<Event<'a>>,
{
    pub(crate) fn reject(&self, reason: RejectReason) -> Error {
        match self {
            Self::Layer(shared) => shared.reject(reason),
            Self::Partition(reject) => reject(reason),
        }
    }
}
