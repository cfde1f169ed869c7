//! [`ResponseFuture`]: the future of a rate-limited call.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};
use tower_service::Service;
use weir_core::{BoxError, wire::RateLimitInfo};

use crate::protocol::Protocol;
use crate::shared::{Next, Reservation};
use crate::store::Decision;

/// What a late decision becomes: given the decision and the request (whose trace id a refusal's
/// event reads).
type Then<Req> = Box<dyn FnOnce(Result<Decision, BoxError>, &Req) -> Next + Send>;

pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit): the inner call, an early
    /// refusal, or (in wait mode, or with a store that answers later) a wait before the call.
    ///
    /// Dropping it while it waits gives the reserved room back to the limiter.
    ///
    /// `I` is what it keeps of an admitted response's rate-limit state until the response
    /// comes: the protocol's [`Fields`](Protocol::Fields), inline (`()` for [`AnyProtocol`],
    /// so the future of a call that writes no field carries nothing).
    ///
    /// [`AnyProtocol`]: crate::AnyProtocol
    pub struct ResponseFuture<F, S, Req, D, P, I> {
        #[pin]
        state: State<F, S, Req, D, I>,
        protocol: P,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, D, I> {
        Calling {
            #[pin]
            future: F,
            // Inline, never boxed (an admitted request allocates nothing): the protocol's
            // fields, `()` for a protocol that writes none, so the future of every call that
            // writes no field stays the inner future and two words.
            info: OutOfLine<I>,
        },
        Rejected {
            error: OutOfLine<BoxError>,
        },
        // Waiting for the store's answer or for a reserved turn: boxed, with the inner service
        // and the request it holds, so that the future of a call admitted at once (every call
        // of an in-memory limiter in reject mode) is the inner future and two words, whatever
        // the request's size, and has nothing else to drop.
        Later {
            later: OutOfLine<Pin<Box<Later<S, Req, D>>>>,
        },
    }
}

pin_project! {
    #[project = LaterProj]
    pub(crate) enum Later<S, Req, D> {
        Deciding {
            #[pin]
            decision: D,
            then: Option<Then<Req>>,
            pending: Option<(S, Req)>,
        },
        // The reservation lives in this state only: the futures of calls that never wait
        // have nothing more to check when dropped.
        Waiting {
            #[pin]
            sleep: Sleep,
            pending: Option<(S, Req)>,
            reservation: Reservation,
            info: Option<RateLimitInfo>,
        },
    }
}

/// A field of the response future dropped out of line: its drop is a null check inline and
/// the value's drop in a cold function.
///
/// A call admitted on the plain happy path (no rate-limit fields) pays one compare when its
/// future is dropped. Without it the compiler kept the future's whole drop glue (the boxed
/// info listing every policy of a tier, the refusal's error, the boxed wait) out of line: a
/// call and five saved registers on every call (the figures are in benches/README.md,
/// weir-rate-limit).
struct OutOfLine<T>(ManuallyDrop<Option<T>>);

impl<T> OutOfLine<T> {
    #[inline]
    const fn new(value: Option<T>) -> Self {
        Self(ManuallyDrop::new(value))
    }

    #[inline]
    fn as_mut(&mut self) -> Option<&mut T> {
        self.0.as_mut()
    }

    #[inline]
    fn take(&mut self) -> Option<T> {
        self.0.take()
    }

    #[inline]
    fn as_ref(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl<T> Drop for OutOfLine<T> {
    #[inline]
    fn drop(&mut self) {
        // A test and a branch inline: the `take` (a store) happens out of line, only when
        // there is something to drop; nothing at all for a value with nothing to drop (`()`).
        if std::mem::needs_drop::<T>() && self.0.is_some() {
            drop_out_of_line(&mut self.0);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_out_of_line<T>(value: &mut Option<T>) {
    drop(value.take());
}

impl<F, S, Req, D, P, I> ResponseFuture<F, S, Req, D, P, I> {
    #[inline]
    pub(crate) const fn calling(future: F, protocol: P, info: Option<I>) -> Self {
        Self {
            state: State::Calling {
                future,
                info: OutOfLine::new(info),
            },
            protocol,
        }
    }

    pub(crate) const fn rejected(error: BoxError, protocol: P) -> Self {
        Self {
            state: State::Rejected {
                error: OutOfLine::new(Some(error)),
            },
            protocol,
        }
    }

    /// A request waiting in `later` (its turn, or the store's answer).
    #[inline]
    pub(crate) const fn later(later: Pin<Box<Later<S, Req, D>>>, protocol: P) -> Self {
        Self {
            state: State::Later {
                later: OutOfLine::new(Some(later)),
            },
            protocol,
        }
    }
}

impl<S, Req, D> Later<S, Req, D> {
    /// Wait mode only, when the request must wait its turn: an admitted request never builds a
    /// timer.
    pub(crate) fn waiting(
        wait: Duration,
        svc: S,
        req: Req,
        info: Option<RateLimitInfo>,
        reservation: Reservation,
    ) -> Pin<Box<Self>> {
        Box::pin(Self::Waiting {
            sleep: sleep(wait),
            pending: Some((svc, req)),
            reservation,
            info,
        })
    }

    /// A store that answers later (Redis: a network round trip, tens of microseconds): boxed,
    /// so the in-memory path's future stays the inner future and two words; one allocation
    /// beside a round trip.
    pub(crate) fn deciding(decision: D, then: Then<Req>, svc: S, req: Req) -> Pin<Box<Self>> {
        Box::pin(Self::Deciding {
            decision,
            then: Some(then),
            pending: Some((svc, req)),
        })
    }
}

/// What polling the boxed state gave.
enum Step<F, T> {
    /// The inner service was called: poll its future.
    Call(F, Option<RateLimitInfo>),
    /// Still waiting.
    Pending,
    /// Refused by the decision the store gave later.
    Done(T),
}

impl<S, Req, D> Later<S, Req, D> {
    /// Drives a wait or a late decision until the inner service is called (or the request is
    /// refused).
    fn step<Res, E>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Step<S::Future, Result<Res, BoxError>>
    where
        S: Service<Req, Response = Res, Error = E>,
        D: Future<Output = Result<Decision, BoxError>>,
    {
        loop {
            match self.as_mut().project() {
                LaterProj::Deciding {
                    decision,
                    then,
                    pending,
                } => {
                    let Poll::Ready(decided) = decision.poll(cx) else {
                        return Step::Pending;
                    };
                    let then = then.take().expect("polled after completion");
                    let (mut svc, req) = pending.take().expect("polled after completion");
                    match then(decided, &req) {
                        Next::Call(info) => return Step::Call(svc.call(req), info),
                        Next::Wait(wait, info, reservation) => {
                            self.set(Self::Waiting {
                                sleep: sleep(wait),
                                pending: Some((svc, req)),
                                reservation,
                                info,
                            });
                        }
                        Next::Reject(error) => return Step::Done(Err(error)),
                    }
                }
                LaterProj::Waiting {
                    sleep,
                    pending,
                    reservation,
                    info,
                } => {
                    if sleep.poll(cx).is_pending() {
                        return Step::Pending;
                    }
                    reservation.disarm();
                    let info = info.take();
                    let (mut svc, req) = pending.take().expect("polled after completion");
                    return Step::Call(svc.call(req), info);
                }
            }
        }
    }
}

impl<F, S, Req, D, P, Res, E> Future for ResponseFuture<F, S, Req, D, P, P::Fields>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    S: Service<Req, Future = F, Response = Res, Error = E>,
    D: Future<Output = Result<Decision, BoxError>>,
    P: Protocol<Req, Res>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future, info } => {
                    let mut result = ready!(future.poll(cx)).map_err(Into::into);
                    if let (Ok(res), Some(info)) = (&mut result, info.as_ref()) {
                        this.protocol.on_admitted(res, info);
                    }
                    return Poll::Ready(result);
                }
                StateProj::Rejected { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
                StateProj::Later { .. } => {
                    if let Some(result) = ready!(poll_later(this.state.as_mut(), this.protocol, cx))
                    {
                        return Poll::Ready(result);
                    }
                }
            }
        }
    }
}

/// Polls a [`State::Later`]: `Ready(None)` once the inner service is called (the state is then
/// [`State::Calling`]), `Ready(Some(_))` with a refusal. Out of line, with the state changes and
/// the drop of the boxed state, so that polling the future of a call admitted at once touches
/// none of it.
#[inline(never)]
fn poll_later<F, S, Req, D, P, Res, E>(
    mut state: Pin<&mut State<F, S, Req, D, P::Fields>>,
    protocol: &P,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Res, BoxError>>>
where
    S: Service<Req, Future = F, Response = Res, Error = E>,
    D: Future<Output = Result<Decision, BoxError>>,
    P: Protocol<Req, Res>,
{
    let StateProj::Later { later } = state.as_mut().project() else {
        return Poll::Ready(None);
    };
    let later = later.as_mut().expect("polled after completion");
    match later.as_mut().step(cx) {
        Step::Call(future, info) => {
            state.set(State::Calling {
                future,
                info: OutOfLine::new(info.map(|info| protocol.keep(info))),
            });
            Poll::Ready(None)
        }
        Step::Pending => Poll::Pending,
        Step::Done(result) => {
            state.set(State::Rejected {
                error: OutOfLine::new(None),
            });
            Poll::Ready(Some(result))
        }
    }
}

impl<F, S, Req, D, P, I> fmt::Debug for ResponseFuture<F, S, Req, D, P, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Later { later } => {
                match later.0.as_ref().map(|later| later.as_ref().get_ref()) {
                    Some(Later::Deciding { .. }) => "deciding",
                    Some(Later::Waiting { .. }) => "waiting",
                    None => "done",
                }
            }
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
