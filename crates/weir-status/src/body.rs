//! The response body: a buffer (the page, the JSON, an action's answer) or the server-sent-events
//! stream, one snapshot per tick for as long as the client reads.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Interval, MissedTickBehavior};
use weir_core::inspect::Registry;

use crate::json;

/// The body of every answer of a [`StatusService`](crate::StatusService): a whole buffer, or the
/// endless `text/event-stream` of `GET /status/events`, which ends when the client goes away
/// (the server drops the body) and never fails.
pub struct StatusBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Events(Events),
}

struct Events {
    registry: Registry,
    actions_enabled: bool,
    every: Duration,
    /// Made on the first poll (inside the server's runtime), not when the answer is built.
    interval: Option<Interval>,
}

impl StatusBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    pub(crate) const fn events(registry: Registry, actions_enabled: bool, every: Duration) -> Self {
        Self {
            kind: Kind::Events(Events {
                registry,
                actions_enabled,
                every,
                interval: None,
            }),
        }
    }
}

impl Events {
    fn frame(&self) -> Bytes {
        let json = json::document(&self.registry, self.actions_enabled);
        let mut event = String::with_capacity(json.len() + 8);
        event.push_str("data: ");
        // The JSON has no line breaks (strings escape them), so it is one `data:` line.
        event.push_str(&json);
        event.push_str("\n\n");
        Bytes::from(event)
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let interval = self.interval.get_or_insert_with(|| {
            let mut interval = tokio::time::interval(self.every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
            interval
        });
        interval.poll_tick(cx).map(drop)
    }
}

impl Body for StatusBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Events(events) => {
                if events.interval.is_none() && tokio::runtime::Handle::try_current().is_err() {
                    // No Tokio runtime (a body polled by hand outside one): one snapshot, then
                    // the end, rather than the panic a timer would raise.
                    let frame = events.frame();
                    this.kind = Kind::Full(None);
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                match events.poll_tick(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => Poll::Ready(Some(Ok(Frame::data(events.frame())))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Events(_) => SizeHint::default(),
        }
    }
}

impl fmt::Debug for StatusBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f
                .debug_struct("StatusBody")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Events(events) => f
                .debug_struct("StatusBody")
                .field("events_every", &events.every)
                .finish(),
        }
    }
}
