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
