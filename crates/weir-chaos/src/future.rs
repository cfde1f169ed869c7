//! The chaos layer's response future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::StatusCode;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use weir_core::wire::GrpcCode;

use crate::protocol::Protocol;

/// An injected answer that is not the inner service's: a status, or a gRPC code to a gRPC
/// request.
pub(crate) type Status = (StatusCode, Option<GrpcCode>);

pin_project! {
    /// The response future of a [`Chaos`](crate::Chaos) service: the inner call, passed
    /// through (the happy path: no box, no timer), or the inner call held for added latency, or
    /// an injected answer (an error, a status), or a stall.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<F, Req, P>
    where
        F: Future,
    {
        #[pin]
        state: State<F>,
        // A body fault: the response body fails after this many bytes.
        fail_after: Option<u64>,
        _mode: PhantomData<fn(Req) -> P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F>
    where
        F: Future,
    {
        // The inner call, passed through untouched: the disabled and unselected path. Its poll
        // is the inner poll and `P::pass`; no state change, no other field read.
        Pass {
            #[pin]
            future: F,
        },
        // The inner call; its result is then held for `latency`, if any.
        Inner {
            #[pin]
            future: F,
            latency: Option<Duration>,
        },
        // An answer waiting for its timer: the inner result held for added latency, an
        // injected error or status (after added latency, if any), or a stall (its deadline, or
        // forever when `sleep` is `None` and `forever` is set).
        Held {
            result: Option<F::Output>,
            status: Option<Status>,
            // Boxed: a timer exists only when a fault with latency or a stall fires, never on the
            // disabled or unselected path, which keeps the future small for every other request.
            sleep: Option<Pin<Box<Sleep>>>,
            forever: bool,
        },
        Done,
    }
}

impl<F: Future, Req, P> ResponseFuture<F, Req, P> {
    /// The inner call, passed through untouched.
    #[inline]
    pub(crate) const fn pass(future: F) -> Self {
        Self {
            state: State::Pass { future },
            fail_after: None,
            _mode: PhantomData,
        }
    }

    /// The inner call, held for `latency`, or with a failing body.
    pub(crate) const fn inner(
        future: F,
        latency: Option<Duration>,
        fail_after: Option<u64>,
    ) -> Self {
        Self {
            state: State::Inner { future, latency },
            fail_after,
            _mode: PhantomData,
        }
    }

    /// An injected error, after `latency`.
    pub(crate) fn error(error: F::Output, latency: Option<Duration>) -> Self {
        Self::held(
            Some(error),
            None,
            latency.map(|d| Box::pin(sleep(d))),
            false,
        )
    }

    /// An injected status, after `latency`.
    pub(crate) fn status(status: Status, latency: Option<Duration>) -> Self {
        Self::held(
            None,
            Some(status),
            latency.map(|d| Box::pin(sleep(d))),
            false,
        )
    }

    /// A stall: until `deadline`, then `at_deadline`; forever without a deadline.
    pub(crate) fn stall(deadline: Option<Instant>, at_deadline: Status) -> Self {
        match deadline {
            Some(at) => Self::held(
                None,
                Some(at_deadline),
                Some(Box::pin(sleep_until(at))),
                false,
            ),
            None => Self::held(None, None, None, true),
        }
    }

    fn held(
        result: Option<F::Output>,
        status: Option<Status>,
        sleep: Option<Pin<Box<Sleep>>>,
        forever: bool,
    ) -> Self {
        Self {
            state: State::Held {
                result,
                status,
                sleep,
                forever,
            },
            fail_after: None,
            _mode: PhantomData,
        }
    }
}

impl<F, Req, P, Res, E> Future for ResponseFuture<F, Req, P>
where
    F: Future<Output = Result<Res, E>>,
    P: Protocol<Req, Res>,
{
    type Output = Result<P::Response, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let StateProj::Pass { future } = this.state.as_mut().project() {
            // The happy path: the inner poll, mapped; polling again after `Ready` polls the
            // inner future again, as the future contract allows.
            return future
                .poll(cx)
                .map(|result| result.map(|res| P::pass(res, None)));
        }
        this.poll_faulted(cx)
    }
}

impl<F, Req, P, Res, E> ResponseFutureProj<'_, F, Req, P>
where
    F: Future<Output = Result<Res, E>>,
    P: Protocol<Req, Res>,
{
    /// Every state but [`State::Pass`]: the inner call held or failing, an injected answer, a
    /// stall. Out of line, so the pass-through poll stays small.
    #[inline(never)]
    fn poll_faulted(&mut self, cx: &mut Context<'_>) -> Poll<Result<P::Response, E>> {
        let this = self;
        loop {
            match this.state.as_mut().project() {
                StateProj::Pass { .. } => unreachable!("the pass-through state is polled inline"),
                StateProj::Inner { future, latency } => {
                    let result = ready!(future.poll(cx));
                    match latency.take() {
                        None => {
                            this.state.set(State::Done);
                            return Poll::Ready(result.map(|res| P::pass(res, *this.fail_after)));
                        }
                        Some(delay) => this.state.set(State::Held {
                            result: Some(result),
                            status: None,
                            sleep: Some(Box::pin(sleep(delay))),
                            forever: false,
                        }),
                    }
                }
                StateProj::Held {
                    result,
                    status,
                    sleep,
                    forever,
                } => {
                    if *forever {
                        return Poll::Pending;
                    }
                    if let Some(sleep) = sleep {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    let answer = match (result.take(), status.take()) {
                        (Some(result), _) => result.map(|res| P::pass(res, *this.fail_after)),
                        (None, Some((status, grpc))) => Ok(P::status(status, grpc)
                            .expect("a status is injected in HTTP mode only")),
                        (None, None) => unreachable!("a held answer is taken once"),
                    };
                    this.state.set(State::Done);
                    return Poll::Ready(answer);
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<F: Future, Req, P> fmt::Debug for ResponseFuture<F, Req, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Pass { .. } => "inner",
            State::Inner { latency: None, .. } => "inner",
            State::Inner { .. } => "inner, then held",
            State::Held { forever: true, .. } => "stalled",
            State::Held { .. } => "held",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("fail_after", &self.fail_after)
            .finish()
    }
}
