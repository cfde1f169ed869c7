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
    /// through (the happy path: no box, no timer; the inner future and a tag), or, for a
    /// request a fault was injected into, one box holding the inner call held for added latency
    /// or with a failing body, an injected answer (an error, a status), or a stall.
    pub struct ResponseFuture<F, Req, P>
    where
        F: Future,
    {
        #[pin]
        state: State<F>,
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
        // Boxed: only a request with an injected fault gets here (an enabled layer's fault,
        // which allocates its timer or its answer anyway), so the disabled future stays the
        // inner future and a tag.
        Faulted {
            faulted: FaultedBox<F>,
        },
    }
}

/// The box of a request with an injected fault, dropped out of line: the future's drop glue is
/// then a test of the tag and, for the pass-through state, the inner future's drop, small enough
/// to be inlined where the caller drops the future.
struct FaultedBox<F: Future>(Option<Pin<Box<Faulted<F>>>>);

impl<F: Future> FaultedBox<F> {
    fn get(&mut self) -> Pin<&mut Faulted<F>> {
        self.0
            .as_mut()
            .expect("a faulted future holds its box")
            .as_mut()
    }
}

impl<F: Future> Drop for FaultedBox<F> {
    #[inline]
    fn drop(&mut self) {
        if let Some(faulted) = self.0.take() {
            drop_faulted(faulted);
        }
    }
}

/// Drops a fault's state (its inner future, its timer, its held answer).
#[inline(never)]
fn drop_faulted<F: Future>(faulted: Pin<Box<Faulted<F>>>) {
    drop(faulted);
}

pin_project! {
    /// The state of a request with an injected fault.
    struct Faulted<F>
    where
        F: Future,
    {
        #[pin]
        state: Fault<F>,
        // A body fault: the response body fails after this many bytes.
        fail_after: Option<u64>,
    }
}

pin_project! {
    #[project = FaultProj]
    enum Fault<F>
    where
        F: Future,
    {
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
            _mode: PhantomData,
        }
    }

    /// A fault's state, boxed.
    fn faulted(state: Fault<F>, fail_after: Option<u64>) -> Self {
        Self {
            state: State::Faulted {
                faulted: FaultedBox(Some(Box::pin(Faulted { state, fail_after }))),
            },
            _mode: PhantomData,
        }
    }

    /// The inner call, held for `latency`, or with a failing body; passed through when neither.
    pub(crate) fn inner(future: F, latency: Option<Duration>, fail_after: Option<u64>) -> Self {
        if latency.is_none() && fail_after.is_none() {
            return Self::pass(future);
        }
        Self::faulted(Fault::Inner { future, latency }, fail_after)
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
        Self::faulted(
            Fault::Held {
                result,
                status,
                sleep,
                forever,
            },
            None,
        )
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
        match self.project().state.project() {
            // The happy path: the inner poll, mapped; polling again after `Ready` polls the
            // inner future again, as the future contract allows.
            StateProj::Pass { future } => future
                .poll(cx)
                .map(|result| result.map(|res| P::pass(res, None))),
            StateProj::Faulted { faulted } => faulted.get().poll_faulted::<Req, P>(cx),
        }
    }
}

impl<F, Res, E> Faulted<F>
where
    F: Future<Output = Result<Res, E>>,
{
    /// A request with an injected fault: the inner call held or failing, an injected answer,
    /// a stall. Out of line, so the pass-through poll stays small.
    #[inline(never)]
    fn poll_faulted<Req, P>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<P::Response, E>>
    where
        P: Protocol<Req, Res>,
    {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                FaultProj::Inner { future, latency } => {
                    let result = ready!(future.poll(cx));
                    match latency.take() {
                        None => {
                            this.state.set(Fault::Done);
                            return Poll::Ready(result.map(|res| P::pass(res, *this.fail_after)));
                        }
                        Some(delay) => this.state.set(Fault::Held {
                            result: Some(result),
                            status: None,
                            sleep: Some(Box::pin(sleep(delay))),
                            forever: false,
                        }),
                    }
                }
                FaultProj::Held {
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
                    this.state.set(Fault::Done);
                    return Poll::Ready(answer);
                }
                FaultProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<F: Future, Req, P> fmt::Debug for ResponseFuture<F, Req, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, fail_after) = match &self.state {
            State::Pass { .. } => ("inner", None),
            State::Faulted {
                faulted: FaultedBox(Some(faulted)),
            } => (
                match &faulted.state {
                    Fault::Inner { latency: None, .. } => "inner",
                    Fault::Inner { .. } => "inner, then held",
                    Fault::Held { forever: true, .. } => "stalled",
                    Fault::Held { .. } => "held",
                    Fault::Done => "done",
                },
                faulted.fail_after,
            ),
            State::Faulted { .. } => ("done", None),
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("fail_after", &fail_after)
            .finish()
    }
}
