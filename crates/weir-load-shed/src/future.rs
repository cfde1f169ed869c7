//! The load shedder's response future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use weir_core::protocol::Plain;
use weir_core::{BoxError, Error};

use crate::protocol::Protocol;
use crate::shared::{InFlight, Outcome};

pin_project! {
    /// The response future of a [`LoadShed`](crate::LoadShed): a refusal, or the inner future
    /// with the in-flight slot it holds. `P` is the [`Protocol`] mode, which decides whether
    /// the slot ends with this future or moves into the response body.
    pub struct ResponseFuture<F, P = Plain> {
        #[pin]
        state: State<F>,
        _protocol: PhantomData<fn() -> P>,
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

impl<F, P> ResponseFuture<F, P> {
    pub(crate) const fn running(future: F, token: InFlight) -> Self {
        Self {
            state: State::Running {
                future,
                token: Some(token),
            },
            _protocol: PhantomData,
        }
    }

    #[cold]
    pub(crate) const fn rejected(error: Error) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            _protocol: PhantomData,
        }
    }
}

/// A timeout or a refusal for load from further down is the loss signal; other errors say
/// nothing about load and are ignored, and so is a timeout of the caller's own deadline (#16.1:
/// a client sending tiny deadlines must not shrink the limit every client shares).
pub(crate) fn outcome_of_error<E: 'static>(error: &E) -> Outcome {
    match Error::find_in(error) {
        Some(weir) if weir.is_caller_deadline() => Outcome::Ignored,
        Some(weir) if weir.is_timeout() || weir.is_overloaded() || weir.is_bulkhead_full() => {
            Outcome::Dropped
        }
        _ => Outcome::Ignored,
    }
}

impl<F, T, E, P> Future for ResponseFuture<F, P>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    P: Protocol<T>,
{
    type Output = Result<P::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running { future, token } => {
                let result = ready!(future.poll(cx));
                let token = token.take().expect("polled after completion");
                Poll::Ready(match result {
                    Ok(response) => Ok(P::finish(response, token)),
                    Err(error) => {
                        token.finish(outcome_of_error(&error));
                        Err(error.into())
                    }
                })
            }
            StateProj::Rejected { error } => {
                let error = error.take().expect("polled after completion");
                Poll::Ready(Err(error.into()))
            }
        }
    }
}

impl<F, P> fmt::Debug for ResponseFuture<F, P> {
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

#[cfg(test)]
mod tests {
    use weir_core::BoxError;

    use super::*;

    /// #16.1: a timeout of the caller's own deadline is not a loss signal: a client sending tiny
    /// deadlines does not shrink the adaptive limit every client shares. The layer's own
    /// timeout still is one.
    #[test]
    fn a_callers_spent_deadline_is_ignored_not_a_drop() {
        let caller: BoxError = Error::caller_deadline().into();
        assert_eq!(outcome_of_error(&caller), Outcome::Ignored);
        let own: BoxError = Error::timeout().into();
        assert_eq!(outcome_of_error(&own), Outcome::Dropped);
        assert_eq!(outcome_of_error(&Error::overloaded()), Outcome::Dropped);
    }
}
