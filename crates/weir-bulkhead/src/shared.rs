//! The state every service of one bulkhead layer shares: its permits and its settings, and who
//! words a refusal.

use std::sync::Arc;
use std::time::Duration;

use weir_core::observer::TraceId;
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

    /// Counts and reports a rejection on arrival (of a request with `trace_id`), and makes its
    /// error.
    pub(crate) fn reject(&self, reason: RejectReason, trace_id: Option<TraceId>) -> Error
    where
        O: for<'a> Observer<Event<'a>>,
    {
        self.reject_after(reason, None, trace_id)
    }

    /// Counts and reports a rejection (after `waited` in the queue, if it waited), and makes its
    /// error.
    pub(crate) fn reject_after(
        &self,
        reason: RejectReason,
        waited: Option<Duration>,
        trace_id: Option<TraceId>,
    ) -> Error
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
            waited,
            trace_id,
        });
        Error::bulkhead_full()
            .with_layer(self.name.clone())
            .with_retry_after(self.tuning.policy().retry_after)
    }
}

/// How a queued request's wait ended, for its [`Rejecter`] to report.
pub(crate) enum AfterWait {
    /// It got its permit after this long.
    Admitted(Duration),
    /// It was refused for this reason after this long.
    Refused(RejectReason, Duration),
}

/// Who counts, reports and words the end of a queued request's wait (a refusal, or the permit
/// it waited for): the layer's bulkhead, or a partition (which names its key; boxed once per
/// queued request, the slow path).
pub(crate) enum Rejecter<O> {
    Layer(Arc<Shared<O>>),
    Partition(Arc<dyn Fn(AfterWait, Option<TraceId>) -> Option<Error> + Send + Sync>),
}

impl<O> Rejecter<O>
where
    O: for<'a> Observer<Event<'a>>,
{
    /// Reports and words a refusal after `waited` in the queue, of a request with `trace_id`.
    pub(crate) fn reject(
        &self,
        reason: RejectReason,
        waited: Duration,
        trace_id: Option<TraceId>,
    ) -> Error {
        match self {
            Self::Layer(shared) => shared.reject_after(reason, Some(waited), trace_id),
            Self::Partition(report) => report(AfterWait::Refused(reason, waited), trace_id)
                .unwrap_or_else(Error::bulkhead_full),
        }
    }

    /// Reports that a queued request got its permit after `waited`.
    pub(crate) fn admitted(&self, waited: Duration) {
        match self {
            Self::Layer(shared) => shared.observer.on_event(&Event::Dequeued {
                layer: &shared.name,
                partition: None,
                waited,
            }),
            Self::Partition(report) => {
                report(AfterWait::Admitted(waited), None);
            }
        }
    }
}
