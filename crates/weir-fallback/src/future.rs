//! The fallback's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;
use weir_core::lanes::Lane;
use weir_core::{Classify, Observer, Outcome};

use crate::event::Event;
use crate::shared::{Plan, Shared};
use crate::source::{Cause, Prepare};
use crate::state::{Reason, Source};

/// The request the primary receives.
type Inner<Src, Req> = <Src as Prepare<Req>>::Request;

pin_project! {
    /// The response future of a [`Fallback`](crate::Fallback): the primary's call and, when it
    /// fails (or the request was switched), the sources tried in order. On the happy path it is
    /// the inner future and what the sources keep from the request, nothing more: no box, no lock.
    pub struct ResponseFuture<S, Req, Src, C, O>
    where
        Src: Prepare<Req>,
        S: Service<Inner<Src, Req>>,
        Src: Plan<Req, S::Response, S::Error>,
    {
        #[pin]
        state: State<S, Req, Src>,
        // The shared state through this thread's lane (`weir_core::lanes`).
        shared: Arc<Lane<Shared<Src, C, O>>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, Src>
    where
        Src: Prepare<Req>,
        S: Service<Inner<Src, Req>>,
        Src: Plan<Req, S::Response, S::Error>,
    {
        // The request being prepared for the alternative (its body read), with the readied
        // primary and what was read of the request; `reason` when it was switched.
        Preparing {
            #[pin]
            future: <Src as Prepare<Req>>::Future,
            inner: Option<S>,
            head: Option<Src::Head>,
            reason: Option<Reason>,
        },
        // The primary's call; `fallback` is false for the call made after every source declined
        // a switched request (its failure is handed back as it is).
        Primary {
            #[pin]
            future: S::Future,
            kept: Option<Src::Kept>,
            fallback: bool,
        },
        // A switched request before any source was tried.
        Switched {
            original: Option<Original<S, Inner<Src, Req>>>,
            kept: Option<Src::Kept>,
        },
        // The alternative service's call; `next` is the position of the source after it.
        Alternative {
            #[pin]
            future: Src::Alternative,
            original: Option<Original<S, Inner<Src, Req>>>,
            kept: Option<Src::Kept>,
            next: usize,
        },
        Done,
    }
}

/// What the fallback stands in for.
enum Original<S: Service<Req>, Req> {
    /// The primary's failed result and its outcome.
    Failed {
        result: Result<S::Response, S::Error>,
        outcome: Outcome,
    },
    /// A request sent to the fallback first, with the readied primary to call if no source
    /// answers.
    Switched { reason: Reason, inner: S, req: Req },
}

impl<S: Service<Req>, Req> Original<S, Req> {
    fn cause(&self) -> Cause<'_, S::Response, S::Error> {
        match self {
            Self::Failed { result: Ok(r), .. } => Cause::Response(r),
            Self::Failed { result: Err(e), .. } => Cause::Error(e),
            Self::Switched { reason, .. } => Cause::Switched(*reason),
        }
    }

    /// The outcome a fallback answer records: the primary's, or none for a call never made.
    const fn outcome(&self) -> Outcome {
        match self {
            Self::Failed { outcome, .. } => *outcome,
            Self::Switched { .. } => Outcome::Ignored,
        }
    }

    fn error(&self) -> Option<&S::Error> {
        match self {
            Self::Failed { result: Err(e), .. } => Some(e),
            _ => None,
        }
    }
}

impl<S, Req, Src, C, O> ResponseFuture<S, Req, Src, C, O>
where
    Src: Prepare<Req>,
    S: Service<Inner<Src, Req>>,
    Src: Plan<Req, S::Response, S::Error>,
{
    #[inline]
    pub(crate) const fn primary(
        future: S::Future,
        kept: Src::Kept,
        shared: Arc<Lane<Shared<Src, C, O>>>,
    ) -> Self {
        Self {
            state: State::Primary {
                future,
                kept: Some(kept),
                fallback: true,
            },
            shared,
        }
    }

    #[cold]
    pub(crate) fn preparing(
        inner: S,
        future: <Src as Prepare<Req>>::Future,
        head: Src::Head,
        reason: Option<Reason>,
        shared: Arc<Lane<Shared<Src, C, O>>>,
    ) -> Self {
        Self {
            state: State::Preparing {
                future,
                inner: Some(inner),
                head: Some(head),
                reason,
            },
            shared,
        }
    }

    #[cold]
    pub(crate) fn switched(
        inner: S,
        req: Inner<Src, Req>,
        kept: Src::Kept,
        reason: Reason,
        shared: Arc<Lane<Shared<Src, C, O>>>,
    ) -> Self {
        Self {
            state: switched_state(inner, req, kept, reason, &shared),
            shared,
        }
    }
}

/// A switched request's state, counted.
fn switched_state<S, Req, Src, C, O>(
    inner: S,
    req: Inner<Src, Req>,
    kept: Src::Kept,
    reason: Reason,
    shared: &Shared<Src, C, O>,
) -> State<S, Req, Src>
where
    Src: Prepare<Req>,
    S: Service<Inner<Src, Req>>,
    Src: Plan<Req, S::Response, S::Error>,
{
    shared.control.switched.fetch_add(1, Relaxed);
    State::Switched {
        original: Some(Original::Switched { reason, inner, req }),
        kept: Some(kept),
    }
}

/// What to do next after trying the sources from some position on.
enum Step<R, A> {
    Answer(R),
    Alternative(A, usize),
    Exhausted,
}

/// Tries the sources from `from` on, in order, until one answers or the alternative service must
/// be awaited. Cold: only a failure or a switched request gets here.
#[cold]
fn step<S, Req, Src, C, O>(
    shared: &Shared<Src, C, O>,
    original: &Original<S, Inner<Src, Req>>,
    kept: &mut Src::Kept,
    from: usize,
) -> Step<Src::Response, Src::Alternative>
where
    Src: Prepare<Req>,
    S: Service<Inner<Src, Req>>,
    S::Error: 'static,
    Src: Plan<Req, S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
{
    let sources = &shared.sources;
    let outcome = original.outcome();
    let reason = original.cause().reason();
    let mut position = from;
    while let Some(source) = sources.source(position) {
        position += 1;
        let answer = match source {
            Source::Value => sources
                .value(original.cause(), kept)
                .map(|r| sources.answer(r, Source::Value, outcome)),
            Source::LastGood => sources.last_good(kept, outcome),
            Source::Service => match sources.alternative(kept) {
                Some(future) => return Step::Alternative(future, position),
                None => None,
            },
        };
        if let Some(answer) = answer {
            shared.answered(source, reason, original.error(), sources.trace_id(kept));
            return Step::Answer(answer);
        }
    }
    shared.exhausted(reason, original.error(), sources.trace_id(kept));
    Step::Exhausted
}

impl<S, Req, Src, C, O> Future for ResponseFuture<S, Req, Src, C, O>
where
    Src: Prepare<Req>,
    S: Service<Inner<Src, Req>>,
    S::Error: 'static,
    Src: Plan<Req, S::Response, S::Error>,
    C: Classify<S::Response, S::Error>,
    O: for<'a> Observer<Event<'a>>,
{
    type Output = Result<Src::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared: &Shared<Src, C, O> = this.shared;
        loop {
            let (original, mut kept, from) = match this.state.as_mut().project() {
                StateProj::Preparing {
                    future,
                    inner,
                    head,
                    reason,
                } => {
                    let (req, keep) = ready!(future.poll(cx));
                    let mut inner = inner.take().expect("polled after completion");
                    let head = head.take().expect("polled after completion");
                    let kept = shared.sources.kept(head, keep);
                    let next = match *reason {
                        None => State::Primary {
                            future: inner.call(req),
                            kept: Some(kept),
                            fallback: true,
                        },
                        Some(reason) => switched_state(inner, req, kept, reason, shared),
                    };
                    this.state.set(next);
                    continue;
                }
                StateProj::Primary {
                    future,
                    kept,
                    fallback,
                } => {
                    let result = ready!(future.poll(cx));
                    let kept = kept.take().expect("polled after completion");
                    let outcome = shared.classifier.classify(&result);
                    // Every `Err` that is not called a success falls back, including weir's own
                    // rejections (an open circuit, a rate limit, a full bulkhead, an overload),
                    // which classifiers ignore; a response falls back only as a failure.
                    // (Not again for a switched request every source already declined.)
                    let falls_back = *fallback
                        && match &result {
                            Ok(_) => outcome.is_failure(),
                            Err(_) => !outcome.is_success(),
                        };
                    if !falls_back {
                        this.state.set(State::Done);
                        return Poll::Ready(match result {
                            Ok(r) if outcome.is_success() => Ok(shared.sources.success(r, kept)),
                            Ok(r) => Ok(shared.sources.pass(r)),
                            Err(e) => Err(e),
                        });
                    }
                    (Original::Failed { result, outcome }, kept, 0)
                }
                StateProj::Switched { original, kept } => (
                    original.take().expect("polled after completion"),
                    kept.take().expect("polled after completion"),
                    0,
                ),
                StateProj::Alternative {
                    future,
                    original,
                    kept,
                    next,
                } => {
                    let answer = ready!(future.poll(cx));
                    let original = original.take().expect("polled after completion");
                    // The alternative's response is classified as the primary's was: a failure
                    // (a 503, a gRPC `UNAVAILABLE` in a trailers-only answer) declines, and the
                    // next source tries.
                    let answer = answer.and_then(|answer| {
                        let result: Result<_, S::Error> = Ok(answer);
                        let failed = shared.classifier.classify(&result).is_failure();
                        result.ok().filter(|_| !failed)
                    });
                    if let Some(answer) = answer {
                        let trace_id = kept.as_ref().and_then(|kept| shared.sources.trace_id(kept));
                        this.state.set(State::Done);
                        let reason = original.cause().reason();
                        shared.answered(Source::Service, reason, original.error(), trace_id);
                        let outcome = original.outcome();
                        return Poll::Ready(Ok(shared.sources.answer(
                            answer,
                            Source::Service,
                            outcome,
                        )));
                    }
                    let kept = kept.take().expect("polled after completion");
                    (original, kept, *next)
                }
                StateProj::Done => panic!("polled after completion"),
            };
            match step(shared, &original, &mut kept, from) {
                Step::Answer(answer) => {
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(answer));
                }
                Step::Alternative(future, next) => this.state.set(State::Alternative {
                    future,
                    original: Some(original),
                    kept: Some(kept),
                    next,
                }),
                Step::Exhausted => match original {
                    Original::Failed { result, .. } => {
                        this.state.set(State::Done);
                        return Poll::Ready(result.map(|r| shared.sources.pass(r)));
                    }
                    // No source answered a switched request: the primary is called after all.
                    Original::Switched { mut inner, req, .. } => this.state.set(State::Primary {
                        future: inner.call(req),
                        kept: Some(kept),
                        fallback: false,
                    }),
                },
            }
        }
    }
}

impl<S, Req, Src, C, O> fmt::Debug for ResponseFuture<S, Req, Src, C, O>
where
    Src: Prepare<Req>,
    S: Service<Inner<Src, Req>>,
    Src: Plan<Req, S::Response, S::Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Preparing { .. } => "preparing",
            State::Primary { .. } => "primary",
            State::Switched { .. } => "switched",
            State::Alternative { .. } => "alternative",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
