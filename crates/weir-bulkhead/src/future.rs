//! The bulkhead's response future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;
use weir_core::observer::TraceId;
use weir_core::{BoxError, Error, Observer};

use crate::event::Event;
use crate::permit::{Permit, Waiter};
use crate::protocol::Protocol;
use crate::shared::Rejecter;
use crate::state::RejectReason;

pin_project! {
    /// The response future of a [`Bulkhead`](crate::Bulkhead).
    ///
    /// Unlike most weir futures it is not just `ResponseFuture<F>`: a queued request has not
    /// called the inner service yet, so the future holds the readied service `S` and the request
    /// until its turn comes.
    pub struct ResponseFuture<S, Req, O, P>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req, O>,
        hold_body: bool,
        _protocol: PhantomData<fn() -> P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, O>
    where
        S: Service<Req>,
    {
        // Boxed: a queued request is the slow path (it already allocates its place in line),
        // and keeping the timer, the service and the request out of line keeps the future small
        // on the fast path.
        Waiting {
            wait: Pin<Box<Wait<S, Req, O>>>,
        },
        Running {
            #[pin]
            future: S::Future,
            permit: Option<Permit>,
        },
        Rejected {
            error: Option<Error>,
        },
    }
}

pin_project! {
    /// A request waiting in line: its place, its timer, and what it will call.
    #[project = WaitProj]
    pub(crate) struct Wait<S, Req, O> {
        waiter: Waiter,
        #[pin]
        sleep: Sleep,
        reason: RejectReason,
        // When it joined the queue, for the wait its observer is told.
        since: Instant,
        service: Option<S>,
        request: Option<Req>,
        rejecter: Rejecter<O>,
    }
}

impl<S, Req, O, P> ResponseFuture<S, Req, O, P>
where
    S: Service<Req>,
{
    pub(crate) const fn running(future: S::Future, permit: Permit, hold_body: bool) -> Self {
        Self {
            state: State::Running {
                future,
                permit: Some(permit),
            },
            hold_body,
            _protocol: PhantomData,
        }
    }

    pub(crate) const fn rejected(error: Error) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            hold_body: false,
            _protocol: PhantomData,
        }
    }

    /// A queued request's future: `wait` comes from [`Wait::boxed`].
    pub(crate) const fn waiting(wait: Pin<Box<Wait<S, Req, O>>>, hold_body: bool) -> Self {
        Self {
            state: State::Waiting { wait },
            hold_body,
            _protocol: PhantomData,
        }
    }
}

impl<S, Req, O> Wait<S, Req, O> {
    /// A request's wait in line, boxed: only a queued call gets here (no permit was free), and
    /// one box per wait keeps the future small on the happy path, where no permit is awaited.
    pub(crate) fn boxed(
        waiter: Waiter,
        (since, until): (Instant, Instant),
        reason: RejectReason,
        service: S,
        request: Req,
        rejecter: Rejecter<O>,
    ) -> Pin<Box<Self>> {
        Box::pin(Self {
            waiter,
            sleep: sleep_until(until),
            reason,
            since,
            service: Some(service),
            request: Some(request),
            rejecter,
        })
    }
}

impl<S, Req, O, P> Future for ResponseFuture<S, Req, O, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    O: for<'a> Observer<Event<'a>>,
    P: Protocol<Req, S::Response>,
{
    type Output = Result<P::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting { .. } => {
                    ready!(poll_wait::<S, Req, O, P>(this.state.as_mut(), cx))
                }
                StateProj::Running { future, permit } => {
                    let result = ready!(future.poll(cx));
                    let permit = permit.take().expect("polled after completion");
                    return Poll::Ready(match result {
                        Ok(response) => Ok(P::finish(response, permit, *this.hold_body)),
                        Err(error) => {
                            drop(permit);
                            Err(error.into())
                        }
                    });
                }
                StateProj::Rejected { error } => {
                    let error = error.take().expect("polled after completion");
                    return Poll::Ready(Err(error.into()));
                }
            }
        }
    }
}

/// Polls a queued request's wait: `Ready` once it has moved on (to `Running` with its permit,
/// or to `Rejected`). Out of line: the happy path never waits, and its `poll` stays short
/// enough to be inlined into the caller's.
#[cold]
#[inline(never)]
fn poll_wait<S, Req, O, P>(mut state: Pin<&mut State<S, Req, O>>, cx: &mut Context<'_>) -> Poll<()>
where
    S: Service<Req>,
    O: for<'a> Observer<Event<'a>>,
    P: weir_core::protocol::Protocol<Req>,
{
    // The request's trace id, read only for a refusal's event.
    let trace_id = |request: Option<&Req>| {
        request
            .and_then(|request| P::headers(request))
            .and_then(TraceId::from_headers)
    };
    let StateProj::Waiting { wait } = state.as_mut().project() else {
        return Poll::Ready(());
    };
    let WaitProj {
        waiter,
        sleep,
        reason,
        since,
        service,
        request,
        rejecter,
    } = wait.as_mut().project();
    // A permit handed over in the same instant the wait ran out still counts.
    if let Poll::Ready(permit) = waiter.poll_permit(cx) {
        let error = match (permit, service.take(), request.take()) {
            (Some(permit), Some(mut service), Some(request)) => {
                rejecter.admitted(since.elapsed());
                let future = service.call(request);
                state.set(State::Running {
                    future,
                    permit: Some(permit),
                });
                return Poll::Ready(());
            }
            (_, _, request) => rejecter.reject(
                RejectReason::QueueFull,
                since.elapsed(),
                trace_id(request.as_ref()),
            ),
        };
        state.set(State::Rejected { error: Some(error) });
        return Poll::Ready(());
    }
    ready!(sleep.poll(cx));
    let error = rejecter.reject(*reason, since.elapsed(), trace_id(request.as_ref()));
    state.set(State::Rejected { error: Some(error) });
    Poll::Ready(())
}

impl<S, Req, O, P> fmt::Debug for ResponseFuture<S, Req, O, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting",
            State::Running { .. } => "running",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
