//! [`IdempotencyBody`]: the response body of an idempotency layer.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of an [`Idempotency`](crate::Idempotency) service: the handler's body
    /// untouched (a request the layer does not cover, or whose response is not kept), a whole
    /// body (a replay, a kept response, the layer's own answers), or a response too large to
    /// keep: the part read so far, then the rest as it streams.
    pub struct IdempotencyBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Inner {
            #[pin]
            body: B,
        },
        Full {
            data: Option<Bytes>,
        },
        Prefix {
            // Boxed: only a response too large to keep gets here, and the handler's own body
            // (`Inner`, every request the layer does not cover) stays as small as it was.
            prefix: Box<Prefix<B>>,
        },
    }
}

/// A response too large to keep: the part read, then the rest as it streams.
struct Prefix<B: Body> {
    frames: VecDeque<Frame<Bytes>>,
    error: Option<B::Error>,
    rest: Option<Pin<Box<B>>>,
}

impl<B: Body> IdempotencyBody<B> {
    pub(crate) const fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn prefix(
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            // Boxed: only a response too large to keep takes this path (a keyed request's,
            // never a plain one's), and it keeps the body type small for every other answer.
            kind: Kind::Prefix {
                prefix: Box::new(Prefix {
                    frames,
                    error,
                    rest,
                }),
            },
        }
    }
}

/// How the responses of an [`Idempotency`](crate::Idempotency) service carry their bodies: the
/// layer's last type parameter, [`Wrapped`] unless the builder chose
/// [`handler_body`](crate::IdempotencyBuilder::handler_body). Sealed: the two modes are the
/// crate's.
pub trait BodyMode<B: Body>: sealed::Sealed {
    /// The body type of the service's responses.
    type Body: Body<Data = Bytes>;
    /// Whether a response too large to keep can be passed on as it streams (the part read,
    /// then the rest); a mode that cannot reads it whole.
    #[doc(hidden)]
    const STREAMS: bool;
    /// The handler's own body, untouched (a request the layer does not cover, or whose
    /// response it does not keep).
    #[doc(hidden)]
    fn handler(body: B) -> Self::Body;
    /// A body of these bytes (a replay, a kept response, the layer's own answers).
    #[doc(hidden)]
    fn whole(bytes: Bytes) -> Self::Body;
    /// A response not kept: the frames read, then `error` or the `rest` of the handler's body
    /// (never given an error or a rest unless [`STREAMS`](Self::STREAMS)).
    #[doc(hidden)]
    fn prefix(
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self::Body;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Wrapped {}
    impl Sealed for super::HandlerBody {}
}

/// The default [`BodyMode`]: responses carry an [`IdempotencyBody`], which holds the handler's
/// body of any type, or the layer's own bytes, or a response too large to keep as it streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wrapped;

impl<B: Body<Data = Bytes>> BodyMode<B> for Wrapped {
    type Body = IdempotencyBody<B>;
    const STREAMS: bool = true;

    #[inline(always)]
    fn handler(body: B) -> Self::Body {
        IdempotencyBody::inner(body)
    }

    fn whole(bytes: Bytes) -> Self::Body {
        IdempotencyBody::full(bytes)
    }

    fn prefix(
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self::Body {
        IdempotencyBody::prefix(frames, error, rest)
    }
}

/// The [`BodyMode`] of [`handler_body`](crate::IdempotencyBuilder::handler_body): responses
/// carry the handler's own body type `B`, which the layer builds from bytes (`B: From<Bytes>`:
/// axum's `Body`, `Full<Bytes>`). A request the layer does not cover gets the handler's
/// response as it is, not re-wrapped; a response too large to keep is read whole.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandlerBody;

impl<B: Body<Data = Bytes> + From<Bytes>> BodyMode<B> for HandlerBody {
    type Body = B;
    const STREAMS: bool = false;

    #[inline(always)]
    fn handler(body: B) -> B {
        body
    }

    fn whole(bytes: Bytes) -> B {
        B::from(bytes)
    }

    fn prefix(
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> B {
        debug_assert!(error.is_none() && rest.is_none(), "a mode that reads whole");
        let mut data = frames.into_iter().filter_map(|f| f.into_data().ok());
        let Some(first) = data.next() else {
            return B::from(Bytes::new());
        };
        let Some(second) = data.next() else {
            return B::from(first);
        };
        let mut all = bytes::BytesMut::from(&first[..]);
        all.extend_from_slice(&second);
        for chunk in data {
            all.extend_from_slice(&chunk);
        }
        B::from(all.freeze())
    }
}

impl<B> Body for IdempotencyBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Prefix { prefix } => {
                let Prefix {
                    frames,
                    error,
                    rest,
                } = &mut **prefix;
                if let Some(frame) = frames.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = error.take() {
                    *rest = None;
                    return Poll::Ready(Some(Err(error)));
                }
                match rest {
                    Some(body) => body.as_mut().poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
            Kind::Prefix { prefix } => {
                let Prefix {
                    frames,
                    error,
                    rest,
                } = &**prefix;
                frames.is_empty()
                    && error.is_none()
                    && rest.as_ref().is_none_or(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Prefix { prefix } => {
                let Prefix { frames, rest, .. } = &**prefix;
                let read: u64 = frames
                    .iter()
                    .filter_map(Frame::data_ref)
                    .map(|d| d.len() as u64)
                    .sum();
                let mut hint = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
                hint.set_lower(hint.lower() + read);
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper + read);
                }
                hint
            }
        }
    }
}

impl<B: Body> fmt::Debug for IdempotencyBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Full { .. } => "full",
            Kind::Prefix { .. } => "prefix",
        };
        f.debug_struct("IdempotencyBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}
