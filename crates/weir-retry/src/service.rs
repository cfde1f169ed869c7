//! `Retry`: the service.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;
use weir_core::{Classify, Observer};

use weir_core::classify::AnyError;
use weir_core::protocol::Plain;

use crate::event::Event;
use crate::future::ResponseFuture;
use crate::protocol::Protocol;
use crate::replay::{IdempotentReplay, Replay};
use crate::scope::BudgetScope;
use crate::shared::{BoundLanes, Policies, Shared};
use crate::state::Progress;

/// Retries the inner service's transient failures; made by [`RetryLayer`](crate::RetryLayer).
///
/// `poll_ready` readies the inner service. `call` sends the first attempt to it at once when
/// the request is ready at once ([`Replay::prepare_now`]; [`IdempotentReplay`] and
/// [`CloneRequest`](crate::CloneRequest) are) and gives the
/// response future a reference to the layer's state; otherwise it moves the readied service
/// into the future (leaving a clone behind), which sends the request once it is prepared. When
/// an attempt fails transiently, the future sleeps, readies a service and sends the replayed
/// request.
///
/// **Which service a retry goes to.** A clone of the inner service *as the layer wrapped it*,
/// made when the first retry is due (tower's `Retry` clones the service on every call instead;
/// the clones are equivalent, as every clone of a service is a fresh, unreadied instance). So a
/// call costs one reference count, not a clone of the whole stack below; and a change made
/// through [`get_mut`](Self::get_mut) reaches first attempts only.
pub struct Retry<S, R = IdempotentReplay, C = AnyError, O = (), P = Plain, K = ()> {
    inner: S,
    lanes: Arc<BoundLanes<S, R, C, O, P, K>>,
}

impl<S, R, C, O, P, K> Retry<S, R, C, O, P, K> {
    pub(crate) const fn new(inner: S, lanes: Arc<BoundLanes<S, R, C, O, P, K>>) -> Self {
        Self { inner, lanes }
    }

    weir_core::inner_accessors!(inner: S);
}

impl<S: Clone, R, C, O, P, K> Clone for Retry<S, R, C, O, P, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            lanes: Arc::clone(&self.lanes),
        }
    }
}

impl<S: fmt::Debug, R, C, O, P, K> fmt::Debug for Retry<S, R, C, O, P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("name", &self.lanes.name)
            .finish_non_exhaustive()
    }
}

impl<S, Req, R, C, O, P, K> Service<Req> for Retry<S, R, C, O, P, K>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
    P: Protocol<C, S::Response>,
    K: BudgetScope<Req>,
{
    type Response = P::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, R, C, O, P, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    // Always inlined, so the response future (the first attempt's in it) is written straight
    // into the caller's state: out of line, it is assembled in a temporary and copied.
    // `#[inline]` alone left it out of line under a breaker (`weir::ClientStack`'s
    // breaker-outside order; the figure is in benches/README.md, weir-retry).
    #[inline(always)]
    fn call(&mut self, request: Req) -> Self::Future {
        let bound = self.lanes.pick();
        let shared: &Shared<R, C, O, P, K> = bound;
        let budget = shared.scope.select(&request, &shared.budget);
        K::budget(&budget, &shared.budget).deposit();
        // One word: the policy version this request keeps, and whether it reads the clock.
        // Read after the deposit, next to where the future is built: read first, it was kept
        // on the stack across the deposit (#25's cost, benches/README.md).
        let policy = shared.core.policies.current();
        let now = Policies::needs_clock(policy).then(Instant::now);
        match shared.replay.prepare_now(request) {
            // The request is ready (a clone): the first attempt goes to the readied instance
            // now, and the future keeps a clone, readied before each retry (tower's `Retry`).
            Ok((request, copy)) => {
                let deadline = shared.replay.deadline(&request).map(|d| d.instant());
                // The attempt's start, only for an observer that wants latencies (`()` and a
                // closure do not: no clock read).
                let sent = shared.observer.wants_latency().then(Instant::now);
                let future = self.inner.call(request);
                ResponseFuture::calling(
                    future,
                    Arc::clone(bound),
                    copy,
                    deadline,
                    sent,
                    Progress::under(now, policy),
                    budget,
                )
            }
            // The request takes time to prepare (a body to read): the readied instance goes
            // into the future, which calls it once the request is ready; the clone left behind
            // is readied by the next `poll_ready`.
            Err(prepare) => {
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                ResponseFuture::new(
                    service,
                    Arc::clone(bound),
                    prepare,
                    Progress::under(now, policy),
                    budget,
                )
            }
        }
    }
}
