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
    /// use weir_core::body::GuardedBody;
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

/// How a response body ended, as an [`OnBodyEnd`] guard is told.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum BodyEnd<'a> {
    /// The body ended with these trailers (a gRPC call's `grpc-status` is here).
    Trailers(&'a http::HeaderMap),
    /// The body ended without trailers.
    Eos,
    /// The body failed (a reset stream, a broken connection).
    Error,
}

/// A guard an [`EndBody`] tells, once, how the body ended; dropped without being told when the
/// body is dropped unfinished (the reader gave up: nothing is known).
pub trait OnBodyEnd {
    /// The body ended so.
    fn on_end(self, end: BodyEnd<'_>);
}

pin_project! {
    /// An HTTP body that tells a guard how it ended ([`OnBodyEnd`]): its trailers, its plain end
    /// or its failure. What a circuit breaker uses to classify a gRPC call by the `grpc-status`
    /// of its trailers rather than by its head, which always says 200.
    ///
    /// The guard is told once: at the trailers frame, at the end of the stream (also when a
    /// frame leaves the inner body at its end), or at an error; dropped unfinished, the body
    /// drops the guard untold.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use weir_core::body::{BodyEnd, EndBody, OnBodyEnd};
    ///
    /// struct Seen(Arc<Mutex<Option<bool>>>);
    /// impl OnBodyEnd for Seen {
    ///     fn on_end(self, end: BodyEnd<'_>) {
    ///         *self.0.lock().unwrap() = Some(matches!(end, BodyEnd::Eos));
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let seen = Arc::new(Mutex::new(None));
    /// let body = EndBody::new(Full::new(Bytes::from("hi")), Seen(Arc::clone(&seen)));
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
    /// assert_eq!(*seen.lock().unwrap(), Some(true)); // ended without trailers
    /// # }
    /// ```
    pub struct EndBody<B, G> {
        #[pin]
        inner: B,
        guard: Option<G>,
    }
}

impl<B, G> EndBody<B, G> {
    /// Wraps `inner`; `guard` is told how it ends. An inner body that is already at its end
    /// tells it at once ([`BodyEnd::Eos`]).
    // Inline: out of line, the response it is mapped into was passed to it through a copy.
    #[inline]
    pub fn new(inner: B, guard: G) -> Self
    where
        B: Body,
        G: OnBodyEnd,
    {
        if inner.is_end_stream() {
            guard.on_end(BodyEnd::Eos);
            return Self { inner, guard: None };
        }
        Self {
            inner,
            guard: Some(guard),
        }
    }

    /// Wraps `inner` with no guard: a body whose call was settled already.
    pub const fn settled(inner: B) -> Self {
        Self { inner, guard: None }
    }

    /// The guard is still waiting for the end.
    #[must_use]
    pub const fn is_waiting(&self) -> bool {
        self.guard.is_some()
    }
}

impl<B: Body, G: OnBodyEnd> Body for EndBody<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        if this.guard.is_some() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        if let Some(guard) = this.guard.take() {
                            guard.on_end(BodyEnd::Trailers(trailers));
                        }
                    } else if this.inner.is_end_stream()
                        && let Some(guard) = this.guard.take()
                    {
                        guard.on_end(BodyEnd::Eos);
                    }
                }
                Poll::Ready(None) => {
                    if let Some(guard) = this.guard.take() {
                        guard.on_end(BodyEnd::Eos);
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    if let Some(guard) = this.guard.take() {
                        guard.on_end(BodyEnd::Error);
                    }
                }
                Poll::Pending => {}
            }
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

impl<B: fmt::Debug, G> fmt::Debug for EndBody<B, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndBody")
            .field("inner", &self.inner)
            .field("waiting", &self.guard.is_some())
            .finish()
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

    /// What an `EndBody` told its guard, shared with the test.
    #[derive(Clone, Default)]
    struct Told(Arc<std::sync::Mutex<Option<String>>>);

    impl OnBodyEnd for Told {
        fn on_end(self, end: BodyEnd<'_>) {
            let text = match end {
                BodyEnd::Trailers(t) => format!("trailers {:?}", t.get("grpc-status")),
                BodyEnd::Eos => "eos".into(),
                BodyEnd::Error => "error".into(),
            };
            *self.0.lock().expect("not poisoned") = Some(text);
        }
    }

    /// A gRPC-like body: one message, then trailers.
    struct WithTrailers(Option<Frame<Bytes>>, Option<http::HeaderMap>);

    impl Body for WithTrailers {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            if let Some(data) = self.0.take() {
                return Poll::Ready(Some(Ok(data)));
            }
            Poll::Ready(self.1.take().map(|t| Ok(Frame::trailers(t))))
        }
    }

    /// #16.5: the guard hears the trailers (where gRPC puts its status), once, at their frame.
    #[tokio::test]
    async fn end_body_tells_the_guard_the_trailers() {
        let told = Told::default();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
        let mut body = EndBody::new(
            WithTrailers(Some(Frame::data(Bytes::from("m"))), Some(trailers)),
            told.clone(),
        );
        assert!(body.frame().await.expect("a frame").expect("ok").is_data());
        assert!(told.0.lock().unwrap().is_none(), "not ended yet");
        assert!(
            body.frame()
                .await
                .expect("a frame")
                .expect("ok")
                .is_trailers()
        );
        assert_eq!(
            told.0.lock().unwrap().as_deref(),
            Some("trailers Some(\"14\")")
        );
        assert!(!body.is_waiting());
    }

    #[tokio::test]
    async fn end_body_tells_an_error_and_stays_silent_when_dropped() {
        let told = Told::default();
        let (tx, inner) = channel();
        let mut body = EndBody::new(inner, told.clone());
        tx.send(Err(io::Error::other("reset"))).expect("open");
        assert!(body.frame().await.expect("a frame").is_err());
        assert_eq!(told.0.lock().unwrap().as_deref(), Some("error"));

        let told = Told::default();
        let (_tx, inner) = channel();
        drop(EndBody::new(inner, told.clone()));
        assert!(
            told.0.lock().unwrap().is_none(),
            "dropped unfinished: untold"
        );

        let told = Told::default();
        let _ = EndBody::new(Empty::<Bytes>::new(), told.clone());
        assert_eq!(told.0.lock().unwrap().as_deref(), Some("eos"));
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
