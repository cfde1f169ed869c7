//! [`ChaosBody`]: the HTTP mode's response body, which passes the inner body through or fails
//! it midway.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use weir_core::BoxError;

pin_project! {
    /// The response body of a chaos layer in HTTP mode: the inner body unchanged, or (for a
    /// body fault) the inner body cut with a [`BodyFault`] error once at least the configured
    /// number of bytes went through, or (for an injected status) empty.
    ///
    /// A failing body always fails: a body shorter than the limit fails where it would have
    /// ended, and trailers after the limit are never sent.
    pub struct ChaosBody<B> {
        #[pin]
        inner: Option<B>,
        // Bytes still let through before the failure; `None`: no fault.
        fail_after: Option<u64>,
        done: bool,
    }
}

impl<B> ChaosBody<B> {
    /// The inner body, passed through.
    pub(crate) const fn pass(inner: B) -> Self {
        Self {
            inner: Some(inner),
            fail_after: None,
            done: false,
        }
    }

    /// The inner body, failing after `after` bytes.
    pub(crate) const fn failing(inner: B, after: u64) -> Self {
        Self {
            inner: Some(inner),
            fail_after: Some(after),
            done: false,
        }
    }

    /// No body (an injected status response).
    pub(crate) const fn empty() -> Self {
        Self {
            inner: None,
            fail_after: None,
            done: true,
        }
    }

    /// Whether this body will fail.
    #[must_use]
    pub const fn is_failing(&self) -> bool {
        self.fail_after.is_some()
    }
}

impl<B> Body for ChaosBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let Some(left) = this.fail_after else {
            return inner.poll_frame(cx).map_err(Into::into);
        };
        if *left == 0 {
            *this.done = true;
            return Poll::Ready(Some(Err(BodyFault(()).into())));
        }
        match ready!(inner.poll_frame(cx)) {
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => {
                    let len = data.remaining() as u64;
                    *left = left.saturating_sub(len);
                    Poll::Ready(Some(Ok(frame)))
                }
                // Trailers: the body is cut before them.
                None => {
                    *this.done = true;
                    Poll::Ready(Some(Err(BodyFault(()).into())))
                }
            },
            Some(Err(e)) => {
                *this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            // Shorter than the limit: it fails where it would have ended.
            None => {
                *this.done = true;
                Poll::Ready(Some(Err(BodyFault(()).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        match (&self.inner, self.fail_after) {
            (None, _) => true,
            (Some(_), Some(_)) => false,
            (Some(inner), None) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, self.fail_after) {
            (None, _) => SizeHint::with_exact(0),
            // A cut body's length is not what the inner body says.
            (Some(_), Some(_)) => SizeHint::default(),
            (Some(inner), None) => inner.size_hint(),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ChaosBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosBody")
            .field("inner", &self.inner)
            .field("fail_after", &self.fail_after)
            .finish_non_exhaustive()
    }
}

/// The error a failing [`ChaosBody`] ends with: injected by a chaos layer's body fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyFault(());

impl fmt::Display for BodyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body failed by fault injection (weir-chaos)")
    }
}

impl StdError for BodyFault {}
