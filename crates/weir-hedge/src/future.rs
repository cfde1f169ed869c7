//! `ResponseFuture`: one request through its primary and hedges.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;
use weir_core::lanes::Lane;
use weir_core::{Classify, Error, Observer, Outcome, wire::ServerHint};
use weir_retry::Replay;

use crate::event::{Event, Reason};
use crate::shared::{Core, Local, MAX_HEDGES, Shared};

pin_project! {
    /// The future of [`Hedge`](crate::Hedge): the primary attempt, the hedges sent after it, and
    /// the timer between them.
    ///
    /// The primary lives inline; each hedge is boxed when it is sent (the hedge path only: the
    /// attempts must be pinned apart and `unsafe` is forbidden, so a fixed array of pinned
    /// futures cannot be written). When an answer is taken, or a fatal failure returned, every
    /// other attempt is dropped before `poll` returns; dropping this future drops them all.
    /// Nothing is ever spawned.
    pub struct ResponseFuture<S, Req, R, C, O>
    where
        R: Replay<Req>,
        S: Service<R::Request>,
    {
        #[pin]
        primary: Attempt<S::Future, R::Prepare>,
        // `Idle` until the first poll that does not end the request at once: the immediate
        // path writes, reads and drops one tag for all of the hedging state.
        #[pin]
        hedging: Hedging<S::Future, S::Response, S::Error>,
        // Whether hedges may still be sent, and the instance they go to once the first is.
        service: Sender<S>,
        copy: Option<R::Copy>,
        local: Arc<Lane<Local<S, R, C, O>>>,
        started: u8,
        deadline: Option<Instant>,
        due: Option<Reason>,
        schedule: bool,
        _request: PhantomData<fn(Req)>,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum Attempt<F, P> {
        // The request is being prepared (an HTTP body read); the primary is sent after.
        Preparing { #[pin] prepare: P },
        Running { #[pin] future: F },
        Done,
    }
}

pin_project! {
    #[project = HedgingProj]
    enum Hedging<F, T, E> {
        Idle,
        Active {
            #[pin]
            timer: Timer,
            hedges: [Option<Pin<Box<Sent<F>>>>; MAX_HEDGES],
            // The primary's non-fatal failure: returned if every attempt fails.
            primary_failure: Option<Result<T, E>>,
            // A failure of `poll_ready` before a hedge, kept in case nothing else answers.
            ready_failure: Option<E>,
            // The primary's first pending poll (the percentile trigger records its latency
            // from there, and so does an observer that wants latencies): read only once it is
            // pending, so an immediate answer reads no clock.
            start: Option<Instant>,
        },
    }
}

pin_project! {
    /// A hedge in flight and when it was sent (the clock read that sending takes anyway), for
    /// its latency. Boxed with the hedge, so the response future does not carry it.
    struct Sent<F> {
        #[pin]
        future: F,
        at: Instant,
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        Off,
        Armed { #[pin] sleep: Sleep },
    }
}

/// The instance of the inner service hedges go to, readied before each one.
enum Sender<S> {
    /// No more hedges for this request.
    Off,
    /// Hedges may be sent; none has been (no clone made yet).
    Lazy,
    /// The instance of the hedges sent so far.
    Ready(S),
}

impl<S> Sender<S> {
    const fn is_on(&self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// What one attempt's result means for the request.
enum Verdict {
    /// Take it.
    Answer,
    /// Cancel everything and return it.
    Fatal,
    /// Send the next hedge at once (or after the server's `wait`; with `stop`, send no more)
    /// and wait for the others.
    NonFatal { stop: bool, wait: Option<Duration> },
}

/// The outcome of one attempt: the classifier's, except that an attempt refused by an open
/// circuit breaker inside (a weir [`Error`] of kind circuit open, anywhere in the error's
/// chain) is always [`Outcome::Ignored`], whatever the classifier says: the upstream was not
/// called, so it is a non-fatal failure of that attempt, the next hedge goes at once (as .NET's
/// standard hedging handler treats an open circuit), and no budget counts it against the
/// upstream. Costs nothing on an `Ok`.
#[inline]
fn outcome_of<Res, E: 'static, C: Classify<Res, E>>(
    classify: &C,
    result: &Result<Res, E>,
) -> Outcome {
    let outcome = classify.classify(result);
    match result {
        Err(err)
            if outcome != Outcome::Ignored
                && Error::find_in(err).is_some_and(Error::is_circuit_open) =>
        {
            Outcome::Ignored
        }
        _ => outcome,
    }
}

fn verdict<Res, E>(outcome: Outcome, result: &Result<Res, E>) -> Verdict {
    match outcome {
        Outcome::Success => Verdict::Answer,
        // An ignored `Ok` is an answer; an ignored `Err` is one of weir's own rejections (an
        // open breaker inside, a full bulkhead): another attempt may fare better, as .NET's
        // standard hedging handler treats an open circuit.
        Outcome::Ignored if result.is_ok() => Verdict::Answer,
        Outcome::Ignored => Verdict::NonFatal {
            stop: false,
            wait: None,
        },
        Outcome::Failure(failure) if !failure.is_transient() => Verdict::Fatal,
        // gRFC A6: a pushback "do not retry" stops hedging; a pushback delay holds the next
        // hedge back by that much (any `Retry-After` is read the same way).
        Outcome::Failure(failure) => match failure.hint() {
            Some(ServerHint::DoNotRetry) => Verdict::NonFatal {
                stop: true,
                wait: None,
            },
            Some(ServerHint::RetryAfter(wait)) if !wait.is_zero() => Verdict::NonFatal {
                stop: false,
                wait: Some(wait),
            },
            _ => Verdict::NonFatal {
                stop: false,
                wait: None,
            },
        },
    }
}

impl<S, Req, R, C, O> ResponseFuture<S, Req, R, C, O>
where
    R: Replay<Req>,
    S: Service<R::Request>,
{
    /// A future whose primary is in flight already; hedges may follow when `copy` is kept.
    #[inline]
    pub(crate) fn running(
        future: S::Future,
        copy: Option<R::Copy>,
        local: Arc<Lane<Local<S, R, C, O>>>,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            primary: Attempt::Running { future },
            hedging: Hedging::Idle,
            service: if copy.is_some() {
                Sender::Lazy
            } else {
                Sender::Off
            },
            copy,
            local,
            started: 1,
            deadline,
            due: None,
            schedule: true,
            _request: PhantomData,
        }
    }

    /// A future that prepares the request (reads an HTTP body) and then calls `service`, which
    /// was readied by `poll_ready`.
    pub(crate) fn preparing(
        service: S,
        local: Arc<Lane<Local<S, R, C, O>>>,
        prepare: R::Prepare,
    ) -> Self {
        Self {
            primary: Attempt::Preparing { prepare },
            hedging: Hedging::Idle,
            service: Sender::Ready(service),
            copy: None,
            local,
            started: 0,
            deadline: None,
            due: None,
            schedule: true,
            _request: PhantomData,
        }
    }
}

impl<S, Req, R, C, O> Future for ResponseFuture<S, Req, R, C, O>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    S::Error: 'static,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The immediate path, kept small and inline: only the primary in flight, nothing due,
        // no timer armed, not yet pending (so no clock read): the hedging state is idle. An answer (or a fatal failure)
        // returns here; anything else goes on in `poll_hedging`, with the primary's poll.
        let this = self.as_mut().project();
        if matches!(*this.hedging, Hedging::Idle) {
            let mut primary = this.primary;
            if let AttemptProj::Running { future } = primary.as_mut().project() {
                let first = future.poll(cx);
                if let Poll::Ready(result) = &first {
                    let shared: &Shared<R, C, O> = this.local;
                    let outcome = outcome_of(&shared.classify, result);
                    if matches!(verdict(outcome, result), Verdict::Answer | Verdict::Fatal) {
                        primary.set(Attempt::Done);
                        // Nothing without the percentile trigger (its histogram is `None`).
                        shared.core.record_at_once(this.local.index());
                        shared.core.record_outcome(outcome);
                        return first;
                    }
                }
                return self.poll_hedging(cx, Some(first));
            }
        }
        self.poll_hedging(cx, None)
    }
}

impl<S, Req, R, C, O> ResponseFuture<S, Req, R, C, O>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    S::Error: 'static,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
{
    /// Everything but the immediate path: preparing the request, the hedges, the timer.
    /// `first`: the primary's poll already made by `poll` (not repeated), if any.
    #[inline(never)]
    fn poll_hedging(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut first: Option<Poll<Result<S::Response, S::Error>>>,
    ) -> Poll<Result<S::Response, S::Error>> {
        let mut this = self.project();
        if let AttemptProj::Preparing { prepare } = this.primary.as_mut().project() {
            let Poll::Ready((request, copy)) = prepare.poll(cx) else {
                return Poll::Pending;
            };
            let shared: &Shared<R, C, O> = this.local;
            *this.deadline = shared.replay.deadline(&request).map(|d| d.instant());
            let Sender::Ready(mut service) = mem::replace(this.service, Sender::Off) else {
                unreachable!("the readied service is in the future until the request is prepared");
            };
            let future = service.call(request);
            this.primary.set(Attempt::Running { future });
            *this.started = 1;
            if copy.is_some() && shared.max_attempts > 1 {
                // The hedges go to this instance (readied again before each).
                *this.service = Sender::Ready(service);
                *this.copy = copy;
            }
        }
        let shared: &Shared<R, C, O> = this.local;
        if matches!(*this.hedging, Hedging::Idle) {
            this.hedging.set(Hedging::Active {
                timer: Timer::Off,
                hedges: [const { None }; MAX_HEDGES],
                primary_failure: None,
                ready_failure: None,
                start: None,
            });
        }
        let HedgingProj::Active {
            mut timer,
            hedges,
            primary_failure,
            ready_failure,
            start,
        } = this.hedging.project()
        else {
            unreachable!("the hedging state was made active above");
        };
        loop {
            // 1. The primary.
            if let AttemptProj::Running { future } = this.primary.as_mut().project()
                && let Poll::Ready(result) = first.take().unwrap_or_else(|| future.poll(cx))
            {
                this.primary.set(Attempt::Done);
                // How long the primary took from its first pending poll (zero when it answered
                // on its first poll), if the percentile trigger or the observer wants it.
                let mut took = None;
                if let Some(start) = *start {
                    let now = Instant::now();
                    shared.core.record(start, now);
                    took = Some(now.saturating_duration_since(start));
                } else if shared.records() {
                    shared.core.record_at_once(this.local.index());
                }
                let outcome = outcome_of(&shared.classify, &result);
                shared.core.record_outcome(outcome);
                match verdict(outcome, &result) {
                    Verdict::Answer | Verdict::Fatal => {
                        // The immediate path: no hedge was sent and no timer armed, nothing
                        // to cancel (one compare each, `finish` not called).
                        if *this.started > 1 || matches!(*timer, Timer::Armed { .. }) {
                            finish(hedges, timer.as_mut(), shared, 0);
                        }
                        return Poll::Ready(result);
                    }
                    Verdict::NonFatal { stop, wait } => {
                        *primary_failure = Some(result);
                        let latency = shared
                            .observer
                            .wants_latency()
                            .then(|| took.unwrap_or(Duration::ZERO));
                        attempt_failed(shared, 1, latency, this.copy.as_ref());
                        failed(
                            this.service,
                            this.due,
                            this.schedule,
                            timer.as_mut(),
                            (stop, wait),
                            *this.deadline,
                        );
                    }
                }
            }
            // 2. The hedges.
            for index in 0..MAX_HEDGES {
                let Some(sent) = hedges[index].as_mut() else {
                    continue;
                };
                let Poll::Ready(result) = sent.as_mut().project().future.poll(cx) else {
                    continue;
                };
                let latency = shared.observer.wants_latency().then(|| sent.at.elapsed());
                hedges[index] = None;
                let attempt = index as u32 + 2;
                let outcome = outcome_of(&shared.classify, &result);
                shared.core.record_outcome(outcome);
                match verdict(outcome, &result) {
                    Verdict::Answer => {
                        let primary = cancel_primary(this.primary.as_mut(), start, shared);
                        Core::count(&shared.core.hedges_won, 1);
                        shared.observer.on_event(&Event::HedgeWon {
                            layer: &shared.name,
                            attempt,
                            latency,
                            trace_id: trace_id(shared, this.copy.as_ref()),
                        });
                        finish(hedges, timer.as_mut(), shared, primary);
                        return Poll::Ready(result);
                    }
                    Verdict::Fatal => {
                        let primary = cancel_primary(this.primary.as_mut(), start, shared);
                        finish(hedges, timer.as_mut(), shared, primary);
                        return Poll::Ready(result);
                    }
                    // A hedge's failure is dropped: the primary's is the one returned.
                    Verdict::NonFatal { stop, wait } => {
                        attempt_failed(shared, attempt, latency, this.copy.as_ref());
                        failed(
                            this.service,
                            this.due,
                            this.schedule,
                            timer.as_mut(),
                            (stop, wait),
                            *this.deadline,
                        );
                    }
                }
            }
            // 3. The timer.
            if let TimerProj::Armed { sleep } = timer.as_mut().project()
                && sleep.poll(cx).is_ready()
            {
                timer.set(Timer::Off);
                this.due.get_or_insert(Reason::Delay);
            }
            // 4. A hedge that is due.
            let can_send = this.service.is_on() && *this.started < shared.max_attempts;
            if !can_send {
                *this.due = None;
                *this.schedule = false;
                timer.set(Timer::Off);
            }
            if let Some(reason) = *this.due
                && let Some(service) = sender(this.service, this.local)
            {
                match service.poll_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(err)) => {
                        // The clone cannot take a hedge now: no more hedges for this request.
                        *ready_failure = Some(err);
                        *this.service = Sender::Off;
                        *this.due = None;
                        continue;
                    }
                    Poll::Ready(Ok(())) => {
                        *this.due = None;
                        let now = Instant::now();
                        let past_deadline = this.deadline.is_some_and(|d| now >= d);
                        if past_deadline {
                            *this.service = Sender::Off;
                            continue;
                        }
                        if !shared.core.withdraw(now) {
                            Core::count(&shared.core.budget_exhausted, 1);
                            shared.observer.on_event(&Event::BudgetExhausted {
                                layer: &shared.name,
                                trace_id: trace_id(shared, this.copy.as_ref()),
                            });
                            *this.service = Sender::Off;
                            continue;
                        }
                        let copy = this.copy.as_ref().expect("a copy is kept while hedging");
                        let request = shared.replay.replay(copy);
                        let index = usize::from(*this.started - 1);
                        // Boxed: a hedge is off the happy path (see the type's docs).
                        hedges[index] = Some(Box::pin(Sent {
                            future: service.call(request),
                            at: now,
                        }));
                        *this.started += 1;
                        Core::count(&shared.core.hedges_sent, 1);
                        shared.observer.on_event(&Event::HedgeSent {
                            layer: &shared.name,
                            attempt: u32::from(*this.started),
                            reason,
                            trace_id: shared.replay.trace_id(copy),
                        });
                        // The next delay counts from this hedge.
                        timer.set(Timer::Off);
                        *this.schedule = true;
                        continue;
                    }
                }
            }
            // 5. Nothing in flight and nothing more to send: every attempt failed.
            let in_flight = matches!(*this.primary, Attempt::Running { .. })
                || hedges.iter().any(Option::is_some);
            let waiting = this.service.is_on() && matches!(*timer, Timer::Armed { .. });
            if !in_flight && this.due.is_none() && !waiting {
                if let Some(failure) = primary_failure.take() {
                    timer.set(Timer::Off);
                    return Poll::Ready(failure);
                }
                if let Some(err) = ready_failure.take() {
                    return Poll::Ready(Err(err));
                }
            }
            // 6. Arm the timer for the next hedge. Lazily: only once an attempt is pending, so
            // a primary that answers on its first poll never reads the clock or touches the
            // timer. Arming costs a clock read and a clone of the runtime handle (an atomic
            // increment); the first poll of the `Sleep` registers it in tokio's timer wheel,
            // which takes that shard's lock (tokio's, not ours): the price of any timeout.
            if *this.schedule && this.service.is_on() && this.due.is_none() {
                *this.schedule = false;
                if let Some(delay) = shared.delay() {
                    if delay.is_zero() {
                        *this.due = Some(Reason::Delay);
                        continue;
                    }
                    let at = Instant::now() + delay;
                    if this.deadline.is_none_or(|d| at < d) {
                        timer.set(Timer::Armed {
                            sleep: sleep_until(at),
                        });
                        if let TimerProj::Armed { sleep } = timer.as_mut().project()
                            && sleep.poll(cx).is_ready()
                        {
                            timer.set(Timer::Off);
                            *this.due = Some(Reason::Delay);
                            continue;
                        }
                    }
                }
            }
            if start.is_none()
                && (shared.records() || shared.observer.wants_latency())
                && matches!(*this.primary, Attempt::Running { .. })
            {
                *start = Some(Instant::now());
            }
            return Poll::Pending;
        }
    }
}

/// The trace id of the request whose kept copy is `copy`, if it has one.
fn trace_id<Req, R: Replay<Req>, C, O>(
    shared: &Shared<R, C, O>,
    copy: Option<&R::Copy>,
) -> Option<weir_core::observer::TraceId> {
    copy.and_then(|copy| shared.replay.trace_id(copy))
}

/// Reports an attempt's non-fatal failure (attempt 1 is the primary).
fn attempt_failed<Req, R: Replay<Req>, C, O>(
    shared: &Shared<R, C, O>,
    attempt: u32,
    latency: Option<Duration>,
    copy: Option<&R::Copy>,
) where
    O: for<'a> Observer<Event<'a>>,
{
    shared.observer.on_event(&Event::AttemptFailed {
        layer: &shared.name,
        attempt,
        latency,
        trace_id: trace_id(shared, copy),
    });
}

/// The instance for the next hedge: the request's first hedge clones the layer's copy of the
/// inner service (the only clone a request makes); `None` when no more hedges may go.
fn sender<'a, S: Clone, R, C, O>(
    service: &'a mut Sender<S>,
    local: &Local<S, R, C, O>,
) -> Option<&'a mut S> {
    if matches!(service, Sender::Lazy) {
        *service = Sender::Ready(local.instance());
    }
    match service {
        Sender::Ready(service) => Some(service),
        Sender::Off | Sender::Lazy => None,
    }
}

/// An attempt failed non-fatally: the next hedge is due at once, unless the server said stop
/// (no more hedges) or asked to wait (the next hedge after that wait, the timer re-armed).
fn failed<S>(
    service: &mut Sender<S>,
    due: &mut Option<Reason>,
    schedule: &mut bool,
    mut timer: Pin<&mut Timer>,
    (stop, wait): (bool, Option<Duration>),
    deadline: Option<Instant>,
) {
    if stop {
        *service = Sender::Off;
        *due = None;
    } else if let Some(wait) = wait {
        let at = Instant::now() + wait;
        if deadline.is_some_and(|d| at >= d) {
            // The wait ends past the request's deadline: no more hedges.
            *service = Sender::Off;
        } else if service.is_on() {
            // The server's wait replaces the hedging delay for this next hedge.
            *schedule = false;
            timer.set(Timer::Armed {
                sleep: sleep_until(at),
            });
        }
    } else {
        *due = Some(Reason::Failure);
    }
}

/// Drops the primary if it is still running; 1 if it was.
fn cancel_primary<F, P, R, C, O>(
    mut primary: Pin<&mut Attempt<F, P>>,
    start: &Option<Instant>,
    shared: &Shared<R, C, O>,
) -> u32 {
    if matches!(*primary, Attempt::Running { .. }) {
        primary.set(Attempt::Done);
        // Cut short: its latency is at least this much (for the percentile trigger; an
        // observer gets no latency for a cancelled attempt).
        if let Some(start) = *start
            && shared.records()
        {
            shared.core.record(start, Instant::now());
        }
        1
    } else {
        0
    }
}

/// Drops every hedge still in flight and the timer, and reports the cancellations. Off the
/// immediate path (the caller skips it when no hedge was sent and no timer armed).
#[cold]
#[inline(never)]
fn finish<F, R, C, O>(
    hedges: &mut [Option<Pin<Box<Sent<F>>>>; MAX_HEDGES],
    mut timer: Pin<&mut Timer>,
    shared: &Shared<R, C, O>,
    mut cancelled: u32,
) where
    O: for<'a> Observer<Event<'a>>,
{
    for hedge in hedges.iter_mut() {
        if hedge.take().is_some() {
            cancelled += 1;
        }
    }
    if matches!(*timer, Timer::Armed { .. }) {
        timer.set(Timer::Off);
    }
    if cancelled > 0 {
        Core::count(&shared.core.cancelled, u64::from(cancelled));
        shared.observer.on_event(&Event::Cancelled {
            layer: &shared.name,
            attempts: cancelled,
        });
    }
}

impl<S, Req, R, C, O> fmt::Debug for ResponseFuture<S, Req, R, C, O>
where
    R: Replay<Req>,
    S: Service<R::Request>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("started", &self.started)
            .field(
                "in_flight",
                &(usize::from(matches!(self.primary, Attempt::Running { .. }))
                    + match &self.hedging {
                        Hedging::Idle => 0,
                        Hedging::Active { hedges, .. } => {
                            hedges.iter().filter(|h| h.is_some()).count()
                        }
                    }),
            )
            .finish_non_exhaustive()
    }
}
