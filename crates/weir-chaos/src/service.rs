//! `Chaos`: the service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::StatusCode;
use tower_service::Service;
use weir_core::Observer;
use weir_core::observer::TraceId;
use weir_core::wire::GrpcCode;

use crate::event::Event;
use crate::fault::{Behaviour, MakeError, Select};
use crate::future::ResponseFuture;
use crate::protocol::Protocol;
use crate::shared::Shared;
use crate::state::Fault;

/// Injects faults into the calls to the inner service; made by
/// [`ChaosLayer`](crate::ChaosLayer).
///
/// - `poll_ready` readies the inner service; its errors pass through.
/// - `call` reads one atomic: when the layer is disabled the inner service is called and its
///   future handed back as it is. When enabled, the request is checked against the window, the
///   route prefix and the client keys, then either its fault header (if the layer allows it)
///   or the seeded random source decides: added latency (rolled on its own), and at most one of
///   an error, a status, a stall, a failing body or the custom behaviour.
/// - An error, a status or a stall answers without calling the inner service (its readiness is
///   kept for the next call, as tower's `Filter` does); latency holds the inner service's answer,
///   whatever it is, for the added time; a body fault cuts the answer's body; the behaviour runs
///   on the request, which then goes to the inner service.
pub struct Chaos<S, P, E, B, K, O> {
    inner: S,
    // One `Arc`, not two: a layer above may clone the services below it on every call (tower's
    // `Retry`; weir-retry did until #18), and each
    // `Arc` a clone holds is a shared count written and dropped from every thread (a second
    // one for the switch cost 160 ns a call on two threads in `ClientStack`). The disabled
    // path's check reads the switch through it: this pointer, then the switch's.
    shared: Arc<Shared<E, B, K, O>>,
    _mode: PhantomData<fn() -> P>,
}

impl<S, P, E, B, K, O> Chaos<S, P, E, B, K, O> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<E, B, K, O>>) -> Self {
        Self {
            inner,
            shared,
            _mode: PhantomData,
        }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S, P, E, B, K, O, Req> Service<Req> for Chaos<S, P, E, B, K, O>
where
    S: Service<Req>,
    P: Protocol<Req, S::Response>,
    E: MakeError<S::Error>,
    B: Behaviour<Req>,
    K: Select<Req>,
    O: for<'a> Observer<Event<'a>>,
{
    type Response = P::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Req, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        if !self.shared.control.is_enabled() {
            return ResponseFuture::pass(self.inner.call(req));
        }
        self.call_enabled(req)
    }
}

impl<S, P, E, B, K, O> Chaos<S, P, E, B, K, O> {
    /// The enabled path, kept out of `call` so the disabled one stays small.
    #[inline(never)]
    fn call_enabled<Req>(&mut self, mut req: Req) -> ResponseFuture<S::Future, Req, P>
    where
        S: Service<Req>,
        P: Protocol<Req, S::Response>,
        E: MakeError<S::Error>,
        B: Behaviour<Req>,
        K: Select<Req>,
        O: for<'a> Observer<Event<'a>>,
    {
        let shared = &*self.shared;
        let (plan, by_header) = shared.plan::<Req, P>(&req, P::path(&req));
        if plan.is_clean() {
            return ResponseFuture::pass(self.inner.call(req));
        }
        let grpc = P::is_grpc(&req);
        let fault = plan.fault.filter(|fault| match fault {
            // Nothing to inject with: no error configured, a status or a body in plain mode.
            Fault::Error => shared.error.is_set(),
            Fault::Status | Fault::Body => P::HTTP,
            Fault::Behaviour => shared.behaviour.is_set(),
            _ => true,
        });
        if plan.latency.is_some() || fault.is_some() {
            // The request's trace id (HTTP mode), read only for an injected fault's events.
            let trace_id = P::headers(&req).and_then(TraceId::from_headers);
            if plan.latency.is_some() {
                shared.injected(Fault::Latency, by_header, trace_id);
            }
            if let Some(fault) = fault {
                shared.injected(fault, by_header, trace_id);
            }
        }
        match fault {
            Some(Fault::Error) => match shared.error.make() {
                Some(error) => ResponseFuture::error(Err(error), plan.latency),
                None => ResponseFuture::inner(self.inner.call(req), plan.latency, None),
            },
            Some(Fault::Status) => {
                let status = plan
                    .status
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(shared.status);
                let code = grpc.then(|| plan.grpc.unwrap_or(shared.grpc));
                ResponseFuture::status((status, code), plan.latency)
            }
            Some(Fault::Stall) => {
                let deadline = P::deadline(&req).map(weir_core::Deadline::instant);
                let at_deadline = (
                    StatusCode::GATEWAY_TIMEOUT,
                    grpc.then_some(GrpcCode::DeadlineExceeded),
                );
                ResponseFuture::stall(deadline, at_deadline)
            }
            Some(Fault::Body) => {
                let after = plan.body_after.unwrap_or(shared.body_after);
                ResponseFuture::inner(self.inner.call(req), plan.latency, Some(after))
            }
            Some(Fault::Behaviour) => {
                shared.behaviour.run(&mut req);
                ResponseFuture::inner(self.inner.call(req), plan.latency, None)
            }
            Some(Fault::Latency) | None => {
                ResponseFuture::inner(self.inner.call(req), plan.latency, None)
            }
        }
    }
}

impl<S: Clone, P, E, B, K, O> Clone for Chaos<S, P, E, B, K, O> {
    /// Shares the layer's state: one `Arc` count.
    #[inline]
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, P, E, B, K, O> fmt::Debug for Chaos<S, P, E, B, K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}
