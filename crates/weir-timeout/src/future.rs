//! `ResponseFuture`: the inner future, then (only if it is pending) a timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep, sleep_until};
use weir_core::{BoxError, Deadline, Error, Name, Observer};

use crate::event::Event;
use crate::state::{Start, Whose};

pin_project! {
    /// The future of a [`Timeout`](crate::Timeout) call.
    ///
    /// It polls the inner future first; only when that is pending does it arm a timer (stored
    /// inline: no allocation), so a response that is ready at once costs no timer at all. When
    /// the deadline passes, the inner future is dropped at once (the work is cancelled and what it
    /// held is released) and the future resolves to a [`weir_core::Error`] that `is_timeout()`.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, O = ()> {
        #[pin]
        state: State<F>,
        name: Name,
        observer: O,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            future: F,
            #[pin]
            timer: Timer,
        },
        Rejected {
            error: Option<Error>,
        },
        Done,
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        // Not armed yet: when it will start.
        Idle {
            start: Start,
        },
        Armed {
            #[pin]
            sleep: Sleep,
            whose: Whose,
        },
    }
}

impl<F, O> ResponseFuture<F, O> {
    #[inline]
    pub(crate) const fn running(future: F, start: Start, name: Name, observer: O) -> Self {
        Self {
            state: State::Running {
                future,
                timer: Timer::Idle { start },
            },
            name,
            observer,
        }
    }

    pub(crate) const fn rejected(error: Error, name: Name, observer: O) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            name,
            observer,
        }
    }
}

impl<F, O, T, E> Future for ResponseFuture<F, O>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    O: for<'a> Observer<Event<'a>>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = match this.state.as_mut().project() {
            StateProj::Running { future, mut timer } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    if let TimerProj::Idle { .. } = timer.project() {
                        // Answered before any timer was armed (the happy path): nothing to
                        // release early.
                        return Poll::Ready(result.map_err(Into::into));
                    }
                    result.map_err(Into::into)
                } else {
                    // Pending: arm the timer now, once, in place.
                    let arm = match timer.as_mut().project() {
                        TimerProj::Idle { start } => *start,
                        TimerProj::Armed { .. } => Start::Never,
                    };
                    match arm {
                        Start::Never => {}
                        Start::After(timeout) => timer.set(Timer::Armed {
                            sleep: sleep(timeout),
                            whose: Whose::Own,
                        }),
                        Start::At(deadline, whose) => timer.set(Timer::Armed {
                            sleep: sleep_until(deadline.instant()),
                            whose,
                        }),
                    }
                    let TimerProj::Armed { sleep, whose } = timer.project() else {
                        return Poll::Pending;
                    };
                    let deadline = Deadline::at(sleep.deadline());
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.observer.on_event(&Event::TimedOut {
                        layer: this.name,
                        deadline,
                    });
                    // The caller's deadline, earlier than this layer's own timeout, cut the call
                    // short: not the upstream's failure (#16.1).
                    let error = match whose {
                        Whose::Own => Error::timeout(),
                        Whose::Caller => Error::caller_deadline(),
                    };
                    Err(error.with_layer(this.name.clone()).into())
                }
            }
            StateProj::Rejected { error } => Err(error
                .take()
                .expect("ResponseFuture polled after completion")
                .into()),
            StateProj::Done => panic!("ResponseFuture polled after completion"),
        };
        // Drops the inner future (cancelling its work on a timeout) and the armed timer now, not
        // when the caller drops this future.
        this.state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F, O> fmt::Debug for ResponseFuture<F, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Running {
                timer: Timer::Idle { .. },
                ..
            } => "running",
            State::Running {
                timer: Timer::Armed { .. },
                ..
            } => "running (timer armed)",
            State::Rejected { .. } => "rejected",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("layer", &self.name)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
