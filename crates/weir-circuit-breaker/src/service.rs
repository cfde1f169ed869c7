//! The `CircuitBreaker` service: admission in `poll_ready`, the call in `call`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;
use weir_core::observer::TraceId;
use weir_core::protocol::Plain;
use weir_core::{BoxError, Error, KeyExtractor, Observer, classify::AnyError, key::Resolved};

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::shared::{Guard, KeyedBreaker, KeyedState, Lanes};
use crate::state::{Admit, Permit, State};
use crate::trailers::{Head, Protocol};

/// What `poll_ready` decided for the next call.
enum Admission<C, O> {
    /// A permit that gives nothing back when dropped (closed, forced closed, metrics-only,
    /// disabled): its guard, and the lane reference it holds, are taken in `call`.
    Admitted(Permit),
    /// A half-open probe, guarded from the start: a service dropped before `call` gives its
    /// slot back.
    Probe(Guard<C, O>),
}

impl<C, O> fmt::Debug for Admission<C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admitted(permit) => f.debug_tuple("Admitted").field(permit).finish(),
            Self::Probe(guard) => f.debug_tuple("Probe").field(guard).finish(),
        }
    }
}

/// A refusal decided by `poll_ready`, with its error: `call` reports it (its event carries the
/// request's trace id) and returns the error. Boxed, so the service keeps one word for it (the
/// word the error took before #19): the closed path's service does not grow, and its drop
/// glue stays a test and an out-of-line call.
#[derive(Debug)]
struct Refusal {
    state: State,
    retry_after: Option<Duration>,
    error: Error,
}

/// The refusal a service holds between `poll_ready` and `call`, if any. Dropped out of line,
/// and only when it holds one: a service's drop glue (a clone dropped by an outer layer or a
/// server's connection)
/// tests one word in memory, as it did for the error it held before #19, instead of loading
/// the box to free it inline.
#[derive(Debug, Default)]
struct Held(Option<Box<Refusal>>);

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        if self.0.is_some() {
            drop_refusal(&mut self.0);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_refusal(refusal: &mut Option<Box<Refusal>>) {
    refusal.take();
}

/// What reads the trace id of `req` in protocol `R`'s mode (an HTTP request's `traceparent`),
/// called only for a refusal. A plain request is not even referred to (`HTTP` is known at
/// compile time), so it may stay in a register.
#[inline(always)]
fn trace_id<R: weir_core::protocol::Protocol<Req>, Req>(
    req: &Req,
) -> impl FnOnce() -> Option<TraceId> + Copy + '_ {
    let headers = if R::HTTP { R::headers(req) } else { None };
    move || headers.and_then(TraceId::from_headers)
}

/// Admits one call against the layer's breaker, or rejects it; `Pending` only in backpressure
/// mode, while the circuit is open (`sleep` is boxed once per service and reset).
#[inline]
fn admit<C, O>(
    lanes: &Lanes<C, O>,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Admission<C, O>, Box<Refusal>>>
where
    O: for<'a> Observer<Event<'a>>,
{
    let shared = &*lanes.shared;
    let breaker = &shared.breaker;
    let key = None;
    loop {
        let (admit, notice) = breaker.admit(|| shared.now());
        shared.notify(notice, key);
        match admit {
            Admit::Permit(permit) if permit.is_probe() => {
                return Poll::Ready(Ok(Admission::Probe(Guard::new(lanes, None, Some(permit)))));
            }
            Admit::Permit(permit) => return Poll::Ready(Ok(Admission::Admitted(permit))),
            Admit::Reject {
                state: State::Open,
                retry_after: Some(wait),
            } if shared.backpressure.load(Ordering::Relaxed) => {
                breaker.waited();
                let deadline = Instant::now() + wait;
                // Backpressure mode only: one `Sleep` per service, boxed once and reset.
                let sleep = sleep.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
                sleep.as_mut().reset(deadline);
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            Admit::Reject { state, retry_after } => {
                // Boxed on the refusal path only (an admitted call never gets here): see
                // `Refusal`, one word in the service between `poll_ready` and `call`.
                return Poll::Ready(Err(Box::new(Refusal {
                    state,
                    retry_after,
                    error: shared.rejection_error(retry_after),
                })));
            }
        }
    }
}

/// A circuit breaker around a service `S`: see the [crate docs](crate).
///
/// `C` classifies results ([`AnyError`] by default), `O` observes events (`()` by default), `P`
/// says when an outcome is recorded ([`Head`] by default; [`Trailers`](crate::Trailers) at the
/// end of the response body), `R` what the breaker reads in a request: nothing
/// ([`Plain`], the default) or, for `http::Request`, the `traceparent` header of a refused one
/// (`weir_core::protocol::Http`, [`CircuitBreakerLayer::http`](crate::CircuitBreakerLayer::http)).
pub struct CircuitBreaker<S, C = AnyError, O = (), P = Head, R = Plain> {
    inner: S,
    lanes: Arc<Lanes<C, O>>,
    /// What `poll_ready` decided for the next call, taken by `call`: at most one of the three
    /// is set. Three fields rather than one enum, so that the closed path writes and reads one
    /// word (`permit`) and never drops a guard or an error.
    ///
    /// Admitted, with a permit that gives nothing back when dropped (closed, forced closed,
    /// metrics-only, disabled): its guard, and the lane reference it holds, are taken in `call`.
    permit: Option<Permit>,
    /// Admitted as a half-open probe, guarded from the start: a service dropped before `call`
    /// gives its slot back.
    probe: Option<Guard<C, O>>,
    /// Rejected: reported and worded by `call`.
    rejection: Held,
    sleep: Option<Pin<Box<Sleep>>>,
    _protocol: PhantomData<fn() -> (P, R)>,
}

impl<S, C, O, P, R> CircuitBreaker<S, C, O, P, R> {
    pub(crate) const fn new(inner: S, lanes: Arc<Lanes<C, O>>) -> Self {
        Self {
            inner,
            lanes,
            permit: None,
            probe: None,
            rejection: Held(None),
            sleep: None,
            _protocol: PhantomData,
        }
    }

    // `into_inner` gives a permit reserved by `poll_ready` back (the service is dropped).
    weir_core::inner_accessors!(inner: S);
}

impl<S: Clone, C, O, P, R> Clone for CircuitBreaker<S, C, O, P, R> {
    /// Shares the breaker; the clone is not ready.
    // Inlined: a layer above may clone the service below it on every call (tower's `Retry`;
    // weir-retry did until #18: `weir::ClientStack`'s default order cloned this breaker with its bulkhead and attempt timeout, 216 bytes). Out of line,
    // the clone is returned through memory and the retry future around it is built in a
    // temporary and copied, 8 `memcpy` calls a call (1 094 instructions per call against 885).
    #[inline]
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.lanes))
    }
}

impl<S: fmt::Debug, C, O, P, R> fmt::Debug for CircuitBreaker<S, C, O, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("layer", &self.lanes.shared.name)
            .field("state", &self.lanes.shared.breaker.state())
            .field("permit", &self.permit)
            .field("probe", &self.probe)
            .field("rejection", &self.rejection)
            .finish_non_exhaustive()
    }
}

impl<S, C, O, P, R, Req> Service<Req> for CircuitBreaker<S, C, O, P, R>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Protocol<C, S::Response, S::Error>,
    R: weir_core::protocol::Protocol<Req>,
    O: for<'a> Observer<Event<'a>>,
{
    type Response = P::Response<O>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, O, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() {
            // The closed path: nothing held, one load, a permit. Anything else (a probe or a
            // rejection held, a circuit not closed) is decided out of line.
            let counted = if self.probe.is_none() && self.rejection.0.is_none() {
                self.lanes.shared.breaker.admit_counted()
            } else {
                None
            };
            match counted {
                Some(permit) => self.permit = Some(permit),
                None => {
                    if self.poll_admit(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if self.rejection.0.is_some() {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Always inlined: when the inner `call` is large (retry inside, as in `weir::ClientStack`'s
    // breaker-outside order), the compiler otherwise keeps this one out of line, and the
    // caller then receives the future in a temporary and copies it (the figure is in
    // benches/README.md, weir-circuit-breaker).
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // The guard starts (reads the clock, with slow-call tracking) before the inner call.
        let guard = match self.permit.take() {
            // The closed path, if the circuit has not moved since `poll_ready` (#16.8: a service
            // readied while closed and called after the circuit opened must not reach the
            // upstream): one more load of the state word.
            Some(permit) if self.lanes.shared.breaker.still_counted(permit) => {
                Guard::started_now(&self.lanes, None, Some(permit))
            }
            // A stale permit (the circuit moved), a probe or a rejection: out of line (and the
            // request's trace id read there only for a refusal's event).
            stale => match self.take_held(stale.is_some(), trace_id::<R, Req>(&req)) {
                Ok(guard) => guard,
                Err(error) => return ResponseFuture::rejected(error),
            },
        };
        // One place builds an admitted future, whichever way its guard came: the future is
        // written once, field by field.
        ResponseFuture::admitted(self.inner.call(req), guard)
    }
}

impl<S, C, O, P, R> CircuitBreaker<S, C, O, P, R> {
    /// `poll_ready` when the closed path did not admit: keeps a probe already held, otherwise
    /// decides afresh (a rejection is decided again on every poll: the circuit may have moved
    /// on) and holds the permit, the probe or the rejection. `Pending` only in backpressure mode.
    #[inline(never)]
    fn poll_admit(&mut self, cx: &mut Context<'_>) -> Poll<()>
    where
        O: for<'a> Observer<Event<'a>>,
    {
        if self.probe.is_some() {
            return Poll::Ready(());
        }
        self.rejection.0 = None;
        match admit(&self.lanes, &mut self.sleep, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(error)) => self.rejection.0 = Some(error),
            Poll::Ready(Ok(Admission::Admitted(permit))) => self.permit = Some(permit),
            Poll::Ready(Ok(Admission::Probe(guard))) => {
                // `probe` is `None` here: nothing to drop.
                self.probe.get_or_insert(guard);
            }
        }
        Poll::Ready(())
    }

    /// `call` when the circuit moved between `poll_ready` and `call`: the call is admitted or
    /// refused afresh, at once (`call` cannot wait, so in backpressure mode too an open circuit
    /// refuses here). `trace_id` reads the request's trace id, for a refusal only.
    #[cold]
    #[inline(never)]
    fn readmit(&mut self, trace_id: impl FnOnce() -> Option<TraceId>) -> Result<Guard<C, O>, Error>
    where
        O: for<'a> Observer<Event<'a>>,
    {
        let mut guard = decide(&self.lanes, None, trace_id)?;
        guard.start();
        Ok(guard)
    }

    /// `call` without a current closed-path permit: a stale one (`stale`: decided afresh), the
    /// probe held, started (or decided afresh if the circuit moved since it was taken), or the
    /// rejection, reported now with the request's trace id (`trace_id`, called only for a
    /// refusal).
    #[inline(never)]
    fn take_held(
        &mut self,
        stale: bool,
        trace_id: impl FnOnce() -> Option<TraceId>,
    ) -> Result<Guard<C, O>, Error>
    where
        O: for<'a> Observer<Event<'a>>,
    {
        if stale {
            return self.readmit(trace_id);
        }
        match self.probe.take() {
            Some(guard) if !guard.is_current() => {
                // Dropping the guard gives its probe slot back (to a period that is over).
                drop(guard);
                self.readmit(trace_id)
            }
            Some(mut guard) => {
                guard.start();
                Ok(guard)
            }
            None => {
                let Refusal {
                    state,
                    retry_after,
                    error,
                } = *self
                    .rejection
                    .0
                    .take()
                    .expect("poll_ready must be called first");
                self.lanes
                    .shared
                    .report_rejection(state, retry_after, None, trace_id());
                Err(error)
            }
        }
    }
}

/// Admits one call against `breaker` at once (no backpressure), or says why not (with the
/// request's trace id, which `trace_id` reads only then).
fn decide<C, O>(
    lanes: &Lanes<C, O>,
    keyed: Option<Arc<KeyedBreaker>>,
    trace_id: impl FnOnce() -> Option<TraceId>,
) -> Result<Guard<C, O>, Error>
where
    O: for<'a> Observer<Event<'a>>,
{
    let shared = &*lanes.shared;
    let breaker = keyed.as_ref().map_or(&shared.breaker, |k| &k.breaker);
    let key = keyed.as_ref().map(|k| &*k.key);
    let (admit, notice) = breaker.admit(|| shared.now());
    shared.notify(notice, key);
    match admit {
        Admit::Permit(permit) => Ok(Guard::new(lanes, keyed, Some(permit))),
        Admit::Reject { state, retry_after } => {
            Err(shared.rejection(state, retry_after, key, trace_id()))
        }
    }
}

/// A keyed circuit breaker: one breaker per key (a host, a tenant, ...); see
/// [`CircuitBreakerBuilder::keyed`](crate::CircuitBreakerBuilder::keyed).
///
/// `poll_ready` readies the inner service; the key is read in `call`, so the admission is decided
/// there. A rejection is still immediate: the returned future fails at once, without calling the
/// inner service.
///
/// `R` is what it reads in a request, as for [`CircuitBreaker`]: nothing ([`Plain`]) or an HTTP
/// request's `traceparent`, for a refusal's event (`weir_core::protocol::Http`).
pub struct KeyedCircuitBreaker<S, E, C = AnyError, O = (), P = Head, R = Plain> {
    inner: S,
    state: Arc<KeyedState<E, C, O>>,
    _protocol: PhantomData<fn() -> (P, R)>,
}

impl<S, E, C, O, P, R> KeyedCircuitBreaker<S, E, C, O, P, R> {
    pub(crate) const fn new(inner: S, state: Arc<KeyedState<E, C, O>>) -> Self {
        Self {
            inner,
            state,
            _protocol: PhantomData,
        }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S: Clone, E, C, O, P, R> Clone for KeyedCircuitBreaker<S, E, C, O, P, R> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.state))
    }
}

impl<S: fmt::Debug, E, C, O, P, R> fmt::Debug for KeyedCircuitBreaker<S, E, C, O, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("layer", &self.state.shared.name)
            .field("keys", &self.state.len())
            .finish_non_exhaustive()
    }
}

impl<S, E, C, O, P, R, Req> Service<Req> for KeyedCircuitBreaker<S, E, C, O, P, R>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    E: KeyExtractor<Req>,
    P: Protocol<C, S::Response, S::Error>,
    R: weir_core::protocol::Protocol<Req>,
    O: for<'a> Observer<Event<'a>>,
{
    type Response = P::Response<O>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, O, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let lanes = &self.state.lanes;
        // The request's trace id, read only for a refusal's event.
        let trace_id = trace_id::<R, Req>(&req);
        let decided = match self.state.breaker_for(&req) {
            Resolved::Key(breaker) => decide(lanes, Some(breaker), trace_id),
            Resolved::Shared => decide(lanes, None, trace_id),
            Resolved::Bypass => Ok(Guard::new(lanes, None, None)),
            Resolved::Reject => Err(lanes.shared.rejection(State::Open, None, None, trace_id())),
        };
        match decided {
            Ok(mut guard) => {
                guard.start();
                ResponseFuture::admitted(self.inner.call(req), guard)
            }
            Err(error) => ResponseFuture::rejected(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};
    use std::task::Waker;

    use tower_layer::Layer;

    use super::*;
    use crate::CircuitBreakerLayer;

    #[derive(Clone)]
    struct Echo;

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = Infallible;
        type Future = Ready<Result<u32, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: u32) -> Self::Future {
            ready(Ok(req))
        }
    }

    /// The closed path writes no reference count that every thread writes: a call's future
    /// holds this thread's lane, never the shared state itself, and gives it back when done.
    #[test]
    fn a_closed_call_holds_this_threads_lane_not_the_shared_state() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut svc = CircuitBreakerLayer::new().layer(Echo);
        let shared = Arc::strong_count(&svc.lanes.shared);
        let lane = svc.lanes.pick();
        assert!(Arc::ptr_eq(&lane, &svc.lanes.pick()), "one lane per thread");
        let held = Arc::strong_count(&lane);
        for i in 0..200 {
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            let mut future = std::pin::pin!(svc.call(i));
            assert_eq!(Arc::strong_count(&svc.lanes.shared), shared);
            assert_eq!(Arc::strong_count(&lane), held + 1);
            assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(n)) if n == i));
        }
        assert_eq!(Arc::strong_count(&lane), held);
        assert_eq!(Arc::strong_count(&svc.lanes.shared), shared);
    }
}
