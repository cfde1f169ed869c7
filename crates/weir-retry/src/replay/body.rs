//! [`ReplayBody`]: the body of a request sent through [`HttpReplay`](super::HttpReplay)(super::HttpReplay).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use weir_core::BoxError;

/// The body of a request sent through [`HttpReplay`](super::HttpReplay): the buffered body (the same bytes on every
/// attempt), or, for a request sent once, what was read of the original body followed by the
/// rest of it.
pub struct ReplayBody<B> {
    pub(super) kind: BodyKind<B>,
}

pub(super) enum BodyKind<B> {
    Full {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    Streaming {
        read: Option<Bytes>,
        rest: B,
    },
    /// The original body failed while being read: what was read, then its error.
    Failed {
        read: Option<Bytes>,
        error: Option<BodyError>,
    },
}

impl<B> ReplayBody<B> {
    pub(super) fn full(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: BodyKind::Full {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    pub(super) fn streaming(read: Bytes, rest: B) -> Self {
        Self {
            kind: BodyKind::Streaming {
                read: (!read.is_empty()).then_some(read),
                rest,
            },
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Full { data, .. } => f
                .debug_struct("ReplayBody::Full")
                .field("remaining", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            BodyKind::Streaming { read, .. } => f
                .debug_struct("ReplayBody::Streaming")
                .field("read", &read.as_ref().map_or(0, Bytes::len))
                .finish_non_exhaustive(),
            BodyKind::Failed { error, .. } => f
                .debug_struct("ReplayBody::Failed")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

/// The error of a [`ReplayBody`]: the original body's error, for a body sent once. A concrete
/// type rather than a `BoxError`, so an async block that reads a `ReplayBody` stays `Send` (a
/// `BoxError` here trips a rustc limitation with higher-ranked lifetimes in axum handlers).
#[derive(Debug)]
pub struct BodyError {
    pub(super) inner: BoxError,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            BodyKind::Full { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            BodyKind::Streaming { read, rest } => {
                if let Some(read) = read.take() {
                    return Poll::Ready(Some(Ok(Frame::data(read))));
                }
                let frame = ready!(Pin::new(rest).poll_frame(cx));
                Poll::Ready(frame.map(|frame| match frame {
                    Ok(frame) => Ok(frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))),
                    Err(err) => Err(BodyError { inner: err.into() }),
                }))
            }
            BodyKind::Failed { read, error } => Poll::Ready(
                read.take()
                    .map(|read| Ok(Frame::data(read)))
                    .or_else(|| error.take().map(Err)),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Full { data, trailers } => data.is_none() && trailers.is_none(),
            BodyKind::Streaming { read, rest } => read.is_none() && rest.is_end_stream(),
            BodyKind::Failed { read, error } => read.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            BodyKind::Streaming { read, rest } => {
                let read = read.as_ref().map_or(0, |d| d.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
            BodyKind::Failed { read, .. } => {
                let mut hint = SizeHint::new();
                hint.set_lower(read.as_ref().map_or(0, |d| d.len() as u64));
                hint
            }
        }
    }
}
