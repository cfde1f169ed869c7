//! A response body that holds a guard until it ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// An HTTP body that holds a guard (a bulkhead permit, an in-flight token, a timer) until the
    /// body has ended, failed or been dropped, rather than until the response head arrives.
    ///
    /// A streamed response keeps using the server's resources until its last frame is sent, so a
    /// concurrency limit that frees its permit when the head is returned lets far more work run
    /// than it admits. Wrapping the body holds the permit exactly as long as the work.
    ///
    /// The guard is dropped once: when `poll_frame` returns the end of the stream or an error,
    /// when a frame leaves the inner body at its end (`is_end_stream`), or when the body is
    /// dropped unfinished.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http_body_util::{BodyExt, Full};
    /// use weir_core::GuardedBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let permit = Arc::new(());
    /// let body = GuardedBody::new(Full::new(bytes::Bytes::from("hi")), Arc::clone(&permit));
    /// assert_eq!(Arc::strong_count(&permit), 2); // held by the body
    /// let bytes = body.collect().await.unwrap().to_bytes();
    /// assert_eq!(bytes, "hi");
    /// assert_eq!(Arc::strong_count(&permit), 1); // released at the end of the stream
    /// # }
    /// ```
    pub struct GuardedBody<B, G> {
        #[pin]
        inner: B,
        guard: Option<G>,
    }
}

impl<B, G> GuardedBody<B, G> {
    /// Wraps `inner`, holding `guard` until it ends. An inner body that is already at its end
    /// releases the guard at once.
    pub fn new(inner: B, guard: G) -> Self
    where
        B: Body,
    {
        let guard = if inner.is_end_stream() {
            None
        } else {
            Some(guard)
        };
        Self { inner, guard }
    }

    /// The guard is still held.
    #[must_use]
    pub const fn is_holding(&self) -> bool {
        self.guard.is_some()
    }

    /// The inner body; the guard is dropped.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body, G> Body for GuardedBody<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            // The inner body may know it just sent its last frame.
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug, G> fmt::Debug for GuardedBody<B, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedBody")
            .field("inner", &self.inner)
            .field("holding", &self.guard.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use tokio::sync::mpsc;

    use super::*;

    /// A streamed body the test feeds frame by frame.
    struct Channel(mpsc::UnboundedReceiver<Result<Bytes, io::Error>>);

    impl Body for Channel {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|next| next.map(|chunk| chunk.map(Frame::data)))
        }
    }

    fn channel() -> (mpsc::UnboundedSender<Result<Bytes, io::Error>>, Channel) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Channel(rx))
    }

    #[tokio::test]
    async fn guard_is_held_until_the_stream_ends() {
        let guard = Arc::new(());
        let (tx, inner) = channel();
        let mut body = GuardedBody::new(inner, Arc::clone(&guard));
        tx.send(Ok(Bytes::from("a"))).expect("open");
        let frame = body.frame().await.expect("a frame").expect("ok");
        assert_eq!(frame.into_data().expect("data"), "a");
        assert_eq!(Arc::strong_count(&guard), 2, "held while streaming");
        drop(tx);
        assert!(body.frame().await.is_none());
        assert_eq!(Arc::strong_count(&guard), 1, "released at the end");
        assert!(!body.is_holding());
    }

    #[tokio::test]
    async fn guard_is_released_on_error() {
        let guard = Arc::new(());
        let (tx, inner) = channel();
        let mut body = GuardedBody::new(inner, Arc::clone(&guard));
        tx.send(Err(io::Error::other("reset"))).expect("open");
        assert!(body.frame().await.expect("a frame").is_err());
        assert_eq!(Arc::strong_count(&guard), 1);
    }

    #[tokio::test]
    async fn guard_is_released_when_an_unfinished_body_is_dropped() {
        let guard = Arc::new(());
        let (_tx, inner) = channel();
        let body = GuardedBody::new(inner, Arc::clone(&guard));
        assert_eq!(Arc::strong_count(&guard), 2);
        drop(body);
        assert_eq!(Arc::strong_count(&guard), 1);
    }

    #[tokio::test]
    async fn a_full_body_releases_with_its_only_frame() {
        let guard = Arc::new(());
        let mut body = GuardedBody::new(Full::new(Bytes::from("x")), Arc::clone(&guard));
        assert!(body.frame().await.is_some());
        assert_eq!(
            Arc::strong_count(&guard),
            1,
            "no need to poll past the last frame"
        );
    }

    #[test]
    fn an_empty_body_never_holds() {
        let guard = Arc::new(());
        let body = GuardedBody::new(Empty::<Bytes>::new(), Arc::clone(&guard));
        assert!(!body.is_holding());
        assert_eq!(Arc::strong_count(&guard), 1);
        assert!(body.is_end_stream());
    }
}
