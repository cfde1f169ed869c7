//! `ResponseFuture`: one request through its attempts.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use weir_core::{Classify, Observer, Outcome};

use weir_core::protocol::Plain;

use crate::budget::SharedBudget;
use crate::event::{Event, GiveUp};
use crate::protocol::Protocol;
use crate::replay::Replay;
use crate::scope::BudgetScope;
use crate::shared::{Bound, Shared};
use crate::state::{Decision, Progress};

pin_project! {
    /// The future of [`Retry`](crate::Retry): sends the request, and again after each transient
    /// failure, until a result is final.
    ///
    /// Unlike other weir futures it is not `ResponseFuture<F>`: like tower's own retry future it
    /// can call the inner service again (a clone made for the first retry), and holds the
    /// request's copy and the layer's shared state, so it names their types. Dropping it cancels
    /// the attempt in flight and any sleep.
    pub struct ResponseFuture<S, Req, R, C, O, P = Plain, K = ()>
    where
        R: Replay<Req>,
        S: Service<R::Request>,
        K: BudgetScope<Req>,
    {
        #[pin]
        state: State<R::Prepare, S, S::Future>,
        bound: Arc<Bound<S, R, C, O, P, K>>,
        // The budget this request draws on, when it is not the layer's (keyed per server).
        budget: K::Held,
        copy: Option<R::Copy>,
        progress: Progress,
        deadline: Option<Instant>,
        // When the attempt in flight was sent, if the observer wants latencies.
        sent: Option<Instant>,
        // Boxed once, on the first backoff, and reset after (failure path only).
        sleep: Option<Pin<Box<Sleep>>>,
        _request: PhantomData<fn(Req)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<P, S, F> {
        /// Preparing the request (reading an HTTP body into memory), with the readied service
        /// `Retry::call` moved in to send it to.
        Preparing { #[pin] prepare: P, service: S },
        /// An attempt is in flight.
        Calling { #[pin] future: F },
        /// Waiting out the backoff.
        Sleeping,
        /// Waiting for a service to be ready for the next attempt: a clone of the one the layer
        /// wrapped, made for this retry (the future holds no service while an attempt runs).
        Readying { service: S },
    }
}

impl<S, Req, R, C, O, P, K> ResponseFuture<S, Req, R, C, O, P, K>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    K: BudgetScope<Req>,
{
    pub(crate) const fn new(
        service: S,
        bound: Arc<Bound<S, R, C, O, P, K>>,
        prepare: R::Prepare,
        progress: Progress,
        budget: K::Held,
    ) -> Self {
        Self {
            state: State::Preparing { prepare, service },
            bound,
            budget,
            copy: None,
            progress,
            deadline: None,
            sent: None,
            sleep: None,
            _request: PhantomData,
        }
    }
}

impl<S, Req, R, C, O, P, K> ResponseFuture<S, Req, R, C, O, P, K>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    K: BudgetScope<Req>,
{
    /// A future whose first attempt is in flight already (sent at `sent`, if the observer
    /// wants latencies); a retry goes to a clone from `bound`, readied before each one.
    #[inline]
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of the future, moved in once; a struct would be built only to be taken apart"
    )]
    pub(crate) const fn calling(
        future: S::Future,
        bound: Arc<Bound<S, R, C, O, P, K>>,
        copy: Option<R::Copy>,
        deadline: Option<Instant>,
        sent: Option<Instant>,
        progress: Progress,
        budget: K::Held,
    ) -> Self {
        Self {
            state: State::Calling { future },
            bound,
            budget,
            copy,
            progress,
            deadline,
            sent,
            sleep: None,
            _request: PhantomData,
        }
    }
}

impl<S, Req, R, C, O, P, K> Future for ResponseFuture<S, Req, R, C, O, P, K>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
    P: Protocol<C, S::Response>,
    K: BudgetScope<Req>,
{
    type Output = Result<P::Response, S::Error>;

    // Inlined into the caller's `poll` (#18): on the happy path it is one poll of the attempt
    // and a classification; out of line its prologue, epilogue and state dispatch cost about
    // 15 of its 37 instructions. The failure path stays out of line (`send`, `decide`).
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Preparing { prepare, service } => {
                    let (request, copy) = ready!(prepare.poll(cx));
                    *this.copy = copy;
                    let shared: &Shared<R, C, O, P, K> = this.bound;
                    *this.deadline = shared.replay.deadline(&request).map(|d| d.instant());
                    *this.sent = shared.observer.wants_latency().then(Instant::now);
                    let future = send(service, request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    let shared: &Shared<R, C, O, P, K> = this.bound;
                    let budget = K::budget(this.budget, &shared.budget);
                    this.progress.attempts = this.progress.attempts.saturating_add(1);
                    let outcome = shared.classify.classify(&result);
                    // The budget is every caller's: a throttled failure (one caller's quota)
                    // does not spend it (`for_upstream`). A result that is not a failure is
                    // recorded by the protocol: now, or at the end of its body (gRPC trailers).
                    if !outcome.is_failure() {
                        return Poll::Ready(P::finish(result, outcome, budget, &shared.classify));
                    }
                    budget.record(&outcome.for_upstream());
                    match decide(
                        shared,
                        budget,
                        this.progress,
                        &outcome,
                        this.copy.is_some(),
                        *this.deadline,
                    ) {
                        Decision::Done => return Poll::Ready(P::settled(result)),
                        Decision::GiveUp(reason) => {
                            let latency = this.sent.map(|sent| sent.elapsed());
                            let attempt = (this.progress.attempts, latency);
                            give_up::<Req, _, _, _, _, _>(
                                shared,
                                attempt,
                                reason,
                                &outcome,
                                this.copy.as_ref(),
                            );
                            return Poll::Ready(P::settled(result));
                        }
                        Decision::Retry { delay, hinted } => {
                            // Release the failed response (its body, its connection) before
                            // waiting.
                            drop(result);
                            shared.core.retries.fetch_add(1, Ordering::Relaxed);
                            if let Outcome::Failure(failure) = outcome {
                                let copy = this.copy.as_ref();
                                shared.observer.on_event(&Event::Retry {
                                    layer: &shared.name,
                                    attempt: this.progress.attempts,
                                    delay,
                                    hinted,
                                    failure,
                                    latency: this.sent.map(|sent| sent.elapsed()),
                                    // Read from the kept copy now, on the retry: never on a
                                    // call that worked.
                                    trace_id: copy.and_then(|copy| shared.replay.trace_id(copy)),
                                });
                            }
                            if delay.is_zero() {
                                let service = this.bound.instance();
                                this.state.set(State::Readying { service });
                            } else {
                                let until = Instant::now() + delay;
                                match this.sleep {
                                    Some(sleep) => sleep.as_mut().reset(until),
                                    None => {
                                        *this.sleep =
                                            Some(Box::pin(tokio::time::sleep_until(until)))
                                    }
                                }
                                this.state.set(State::Sleeping);
                            }
                        }
                    }
                }
                StateProj::Sleeping => {
                    if let Some(sleep) = this.sleep {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    let service = this.bound.instance();
                    this.state.set(State::Readying { service });
                }
                StateProj::Readying { service } => {
                    ready!(service.poll_ready(cx))?;
                    let copy = this
                        .copy
                        .as_ref()
                        .expect("`decide` retries only requests with a copy");
                    let shared: &Shared<R, C, O, P, K> = this.bound;
                    let request = shared.replay.replay(copy);
                    *this.sent = shared.observer.wants_latency().then(Instant::now);
                    let future = send(service, request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

/// Sends an attempt from `poll` (a prepared request's first, or a retry). Out of line: the
/// inner service's `call` is not inlined into `poll`, whose usual work is to poll the attempt
/// `Retry::call` sent.
#[inline(never)]
fn send<S: Service<Req>, Req>(service: &mut S, request: Req) -> S::Future {
    service.call(request)
}

/// Runs the pure decision with the request's budget and the layer's random source.
fn decide<R, C, O, P, K>(
    shared: &Shared<R, C, O, P, K>,
    budget: &SharedBudget,
    progress: &mut Progress,
    outcome: &Outcome,
    replayable: bool,
    deadline: Option<Instant>,
) -> Decision {
    let now = Instant::now();
    let core = &*shared.core;
    let mut rng = &core.rng;
    // The version the request started under: a retry loop keeps its attempts and backoff.
    core.policies.get(progress.policy()).decide(
        progress,
        outcome,
        replayable,
        now,
        deadline,
        &mut rng,
        || budget.state().withdraw(now),
    )
}

/// Counts and reports a retryable failure that is not retried: after `attempts` calls, the last
/// one taking `latency` (if measured); the trace id is read from the request's `copy`, if kept.
fn give_up<Req, R, C, O, P, K>(
    shared: &Shared<R, C, O, P, K>,
    (attempts, latency): (u32, Option<std::time::Duration>),
    reason: GiveUp,
    outcome: &Outcome,
    copy: Option<&R::Copy>,
) where
    R: Replay<Req>,
    O: for<'a> Observer<Event<'a>>,
{
    shared.core.gave_up.fetch_add(1, Ordering::Relaxed);
    if reason == GiveUp::Budget {
        shared.core.budget_exhausted.fetch_add(1, Ordering::Relaxed);
    }
    if let Outcome::Failure(failure) = *outcome {
        shared.observer.on_event(&Event::GaveUp {
            layer: &shared.name,
            attempts,
            reason,
            failure,
            latency,
            trace_id: copy.and_then(|copy| shared.replay.trace_id(copy)),
        });
    }
}

impl<S, Req, R, C, O, P, K> fmt::Debug for ResponseFuture<S, Req, R, C, O, P, K>
where
    R: Replay<Req>,
    S: Service<R::Request>,
    K: BudgetScope<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Preparing { .. } => "preparing",
            State::Calling { .. } => "calling",
            State::Sleeping => "sleeping",
            State::Readying { .. } => "readying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempts", &self.progress.attempts)
            .finish_non_exhaustive()
    }
}
