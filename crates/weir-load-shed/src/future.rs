//! The load shedder's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use weir_core::{BoxError, Error};

use crate::shared::{InFlight, Outcome};

pin_project! {
    /// The response future of a [`LoadShed`](crate::LoadShed): a refusal, or the inner future
    /// with the in-flight slot it holds.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            future: F,
            token: Option<InFlight>,
        },
        Rejected {
            error: Option<Error>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) const fn running(future: F, token: InFlight) -> Self {
        Self {
            state: State::Running {
                future,
                token: Some(token),
            },
        }
    }

    pub(crate) const fn rejected(error: Error) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
        }
    }
}

/// A timeout or a refusal for load from further down is the loss signal; other errors say
/// nothing about load and are ignored.
fn outcome_of<T, E: 'static>(result: &Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(error) => match Error::find_in(error) {
            Some(weir) if weir.is_timeout() || weir.is_overloaded() || weir.is_bulkhead_full() => {
                Outcome::Dropped
            }
            _ => Outcome::Ignored,
        },
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running { future, token } => {
                let result = ready!(future.poll(cx));
                if let Some(token) = token.take() {
                    token.finish(outcome_of(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Rejected { error } => {
                let error = error.take().expect("polled after completion");
                Poll::Ready(Err(error.into()))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Running { .. } => "running",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
