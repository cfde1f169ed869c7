//! The state shared by every service a fallback layer makes and every clone: the sources, the
//! classifier, the observer, the flag and the counters the handle reads.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use weir_core::observer::TraceId;
use weir_core::{Name, Observer, Outcome};

use crate::event::Event;
use crate::protocol::Protocol;
use crate::source::{Alternative, Cause, Prepare, Switch, Value};
use crate::state::{Order, Reason, Source};

/// The sources of a fallback layer, in the order they were configured, the switch, and the
/// [`Protocol`]; built by [`FallbackBuilder`](crate::FallbackBuilder).
#[derive(Clone, Debug)]
pub struct Sources<V, A, P, W> {
    pub(crate) value: V,
    pub(crate) alternative: A,
    pub(crate) protocol: P,
    pub(crate) switch: W,
    pub(crate) order: Order,
}

impl<V, A, P, W, Req> Prepare<Req> for Sources<V, A, P, W>
where
    A: Prepare<Req>,
{
    type Request = A::Request;
    type Keep = A::Keep;
    type Future = A::Future;

    #[inline]
    fn prepare(&self, req: Req) -> Result<(A::Request, A::Keep), A::Future> {
        self.alternative.prepare(req)
    }
}

/// How a set of [`Sources`] serves one request: what it keeps from the request, and how each
/// source answers. Implemented by [`Sources`]; the service's bounds name it. Its [`Prepare`]
/// side makes the primary's request (the alternative service's).
pub trait Plan<Req, Res, E>: Prepare<Req> {
    /// What the value source and the last good store read of a request before it is prepared.
    type Head;
    /// What is kept from a request before it goes to the primary.
    type Kept;
    /// The alternative service's call.
    type Alternative: std::future::Future<Output = Option<Res>>;
    /// The layer's response type.
    type Response;

    /// Whether the switch sends this request to the fallback first.
    fn switched(&self, req: &Req) -> bool;
    /// Reads what the value source and the last good store need from the request, and its
    /// trace id when `trace` (the observer wants it; HTTP mode only).
    fn head(&self, req: &Req, trace: bool) -> Self::Head;
    /// The trace id kept of the request, for an event.
    fn trace_id(&self, kept: &Self::Kept) -> Option<TraceId>;
    /// Everything kept: the head and what the alternative kept.
    fn kept(&self, head: Self::Head, keep: Self::Keep) -> Self::Kept;
    /// The source at `position` in the configured order.
    fn source(&self, position: usize) -> Option<Source>;
    /// The value source's answer.
    fn value(&self, cause: Cause<'_, Res, E>, kept: &Self::Kept) -> Option<Res>;
    /// Starts the alternative service's call.
    fn alternative(&self, kept: &mut Self::Kept) -> Option<Self::Alternative>;
    /// The last good answer for the request, marked.
    fn last_good(&self, kept: &Self::Kept, outcome: Outcome) -> Option<Self::Response>;
    /// A response the classifier accepted.
    fn success(&self, response: Res, kept: Self::Kept) -> Self::Response;
    /// A failed response handed back unreplaced.
    fn pass(&self, response: Res) -> Self::Response;
    /// A fallback answer, marked.
    fn answer(&self, response: Res, source: Source, outcome: Outcome) -> Self::Response;
}

impl<V, A, P, W, Req, Res, E> Plan<Req, Res, E> for Sources<V, A, P, W>
where
    V: Value<Req, Res, E>,
    A: Alternative<Req, Res>,
    P: Protocol<Req, Res>,
    W: Switch<Req>,
{
    type Head = (V::Parts, Option<P::Key>, P::Trace);
    type Kept = (V::Parts, A::Keep, Option<P::Key>, P::Trace);
    type Alternative = <A as Alternative<Req, Res>>::Future;
    type Response = P::Response;

    #[inline]
    fn switched(&self, req: &Req) -> bool {
        self.switch.switch(req)
    }

    #[inline]
    fn head(&self, req: &Req, trace: bool) -> Self::Head {
        (
            self.value.capture(req),
            self.protocol.key(req),
            self.protocol.trace(req, trace),
        )
    }

    fn trace_id(&self, kept: &Self::Kept) -> Option<TraceId> {
        P::trace_id(&kept.3)
    }

    #[inline]
    fn kept(&self, head: Self::Head, keep: A::Keep) -> Self::Kept {
        (head.0, keep, head.1, head.2)
    }

    fn source(&self, position: usize) -> Option<Source> {
        self.order.get(position)
    }

    fn value(&self, cause: Cause<'_, Res, E>, kept: &Self::Kept) -> Option<Res> {
        self.value.value(cause, &kept.0)
    }

    fn alternative(&self, kept: &mut Self::Kept) -> Option<Self::Alternative> {
        self.alternative.call(&mut kept.1)
    }

    fn last_good(&self, kept: &Self::Kept, outcome: Outcome) -> Option<P::Response> {
        kept.2
            .as_ref()
            .and_then(|key| self.protocol.last_good(key, outcome))
    }

    #[inline]
    fn success(&self, response: Res, kept: Self::Kept) -> P::Response {
        self.protocol.success(response, kept.2)
    }

    fn pass(&self, response: Res) -> P::Response {
        self.protocol.pass(response)
    }

    fn answer(&self, response: Res, source: Source, outcome: Outcome) -> P::Response {
        self.protocol.answer(response, source, outcome)
    }
}

/// Everything a layer's services share.
pub(crate) struct Shared<Src, C, O> {
    pub(crate) name: Name,
    pub(crate) sources: Src,
    pub(crate) classifier: C,
    pub(crate) observer: O,
    /// The flag and the counters, apart so the handle needs no type parameters.
    pub(crate) control: Arc<Control>,
}

/// The handle's flag and the counters it reads; the counters move only when the fallback runs.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Every request to the fallback first.
    pub(crate) forced: AtomicBool,
    pub(crate) answered: [AtomicU64; 3],
    pub(crate) exhausted: AtomicU64,
    pub(crate) switched: AtomicU64,
}

impl<Src, C, O> Shared<Src, C, O> {
    pub(crate) fn new(name: Name, sources: Src, classifier: C, observer: O) -> Self {
        Self {
            name,
            sources,
            classifier,
            observer,
            control: Arc::new(Control::default()),
        }
    }

    /// Whether the handle's flag is up.
    #[inline]
    pub(crate) fn is_forced(&self) -> bool {
        self.control.forced.load(Relaxed)
    }

    /// Counts and reports a fallback answer from `source` (of a request with `trace_id`).
    pub(crate) fn answered<E: 'static>(
        &self,
        source: Source,
        reason: Reason,
        error: Option<&E>,
        trace_id: Option<TraceId>,
    ) where
        O: for<'a> Observer<Event<'a>>,
    {
        self.control.answered[source.index()].fetch_add(1, Relaxed);
        self.observer.on_event(&Event::Answered {
            layer: &self.name,
            source,
            reason,
            error: error.map(|e| e as &dyn std::any::Any),
            trace_id,
        });
    }

    /// Counts and reports every source declining (a request with `trace_id`).
    pub(crate) fn exhausted<E: 'static>(
        &self,
        reason: Reason,
        error: Option<&E>,
        trace_id: Option<TraceId>,
    ) where
        O: for<'a> Observer<Event<'a>>,
    {
        self.control.exhausted.fetch_add(1, Relaxed);
        self.observer.on_event(&Event::Exhausted {
            layer: &self.name,
            reason,
            error: error.map(|e| e as &dyn std::any::Any),
            trace_id,
        });
    }
}

impl<Src, C, O> fmt::Debug for Shared<Src, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("forced", &self.is_forced())
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}
