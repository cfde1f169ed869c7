//! [`ResponseFuture`]: the future of a rate-limited call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};
use tower_service::Service;
use weir_core::{BoxError, RateLimitInfo};

use crate::layer::{Next, Reservation};
use crate::protocol::Protocol;
use crate::store::Decision;

type Then = Box<dyn FnOnce(Result<Decision, BoxError>) -> Next + Send>;

pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit): the inner call, an early
    /// refusal, or (in wait mode, or with a store that answers later) a wait before the call.
    ///
    /// Dropping it while it waits gives the reserved room back to the limiter.
    pub struct ResponseFuture<F, S, Req, D, P> {
        #[pin]
        state: State<F, S, Req, D>,
        protocol: P,
        // Boxed: only HTTP responses with rate-limit fields carry it, and writing them
        // allocates anyway; the future of every other call stays small.
        info: Option<Box<RateLimitInfo>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, D> {
        Deciding {
            #[pin]
            decision: D,
            then: Option<Then>,
            pending: Option<(S, Req)>,
        },
        // The reservation lives in this state only: the futures of calls that never wait
        // have nothing more to check when dropped.
        Waiting {
            sleep: Pin<Box<Sleep>>,
            pending: Option<(S, Req)>,
            reservation: Reservation,
        },
        Calling {
            #[pin]
            future: F,
        },
        Rejected {
            error: Option<BoxError>,
        },
    }
}

impl<F, S, Req, D, P> ResponseFuture<F, S, Req, D, P> {
    pub(crate) const fn calling(future: F, protocol: P, info: Option<Box<RateLimitInfo>>) -> Self {
        Self {
            state: State::Calling { future },
            protocol,
            info,
        }
    }

    pub(crate) const fn rejected(error: BoxError, protocol: P) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            protocol,
            info: None,
        }
    }

    pub(crate) fn waiting(
        wait: Duration,
        svc: S,
        req: Req,
        protocol: P,
        info: Option<Box<RateLimitInfo>>,
        reservation: Reservation,
    ) -> Self {
        Self {
            state: State::Waiting {
                // Wait mode only, when the request must wait its turn: an admitted request never
                // builds a timer.
                sleep: Box::pin(sleep(wait)),
                pending: Some((svc, req)),
                reservation,
            },
            protocol,
            info,
        }
    }

    pub(crate) fn deciding(decision: D, then: Then, svc: S, req: Req, protocol: P) -> Self {
        Self {
            state: State::Deciding {
                decision,
                then: Some(then),
                pending: Some((svc, req)),
            },
            protocol,
            info: None,
        }
    }
}

impl<F, S, Req, D, P, Res, E> Future for ResponseFuture<F, S, Req, D, P>
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
                StateProj::Deciding {
                    decision,
                    then,
                    pending,
                } => {
                    let decided = ready!(decision.poll(cx));
                    let then = then.take().expect("polled after completion");
                    let (mut svc, req) = pending.take().expect("polled after completion");
                    match then(decided) {
                        Next::Call(info) => {
                            *this.info = info;
                            let future = svc.call(req);
                            this.state.set(State::Calling { future });
                        }
                        Next::Wait(wait, info, reservation) => {
                            *this.info = info;
                            this.state.set(State::Waiting {
                                sleep: Box::pin(sleep(wait)),
                                pending: Some((svc, req)),
                                reservation,
                            });
                        }
                        Next::Reject(error) => {
                            this.state.set(State::Rejected { error: None });
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                StateProj::Waiting {
                    sleep,
                    pending,
                    reservation,
                } => {
                    ready!(sleep.as_mut().poll(cx));
                    reservation.disarm();
                    let (mut svc, req) = pending.take().expect("polled after completion");
                    let future = svc.call(req);
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let mut result = ready!(future.poll(cx)).map_err(Into::into);
                    if let (Ok(res), Some(info)) = (&mut result, this.info.as_ref()) {
                        this.protocol.on_admitted(res, info);
                    }
                    return Poll::Ready(result);
                }
                StateProj::Rejected { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}

impl<F, S, Req, D, P> fmt::Debug for ResponseFuture<F, S, Req, D, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Deciding { .. } => "deciding",
            State::Waiting { .. } => "waiting",
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
