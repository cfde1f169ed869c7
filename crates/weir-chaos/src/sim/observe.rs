//! The simulation's observer: what the stack's own layers report (retries, rejections, breaker
//! transitions, queue waits), stamped with the virtual time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::{Event, Observer};

/// At most this many state changes are kept with their details; the rest are only counted.
const MAX_TRANSITIONS: usize = 10_000;

/// A state change a layer of the simulated stack reported (a circuit breaker opening, closing,
/// going half-open), at its virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// When, from the start of the run.
    pub at: Duration,
    /// The pattern that reported it (`"circuit_breaker"`).
    pub pattern: &'static str,
    /// The configured name of the layer.
    pub layer: String,
    /// The event as its `Debug` prints it (from, to, and why).
    pub detail: String,
}

/// What the observer has seen so far.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Events by `(pattern, kind)`.
    pub(crate) counts: BTreeMap<(&'static str, &'static str), u64>,
    /// The first [`MAX_TRANSITIONS`] state changes.
    pub(crate) transitions: Vec<Transition>,
    /// State changes per tick (every one, kept or not).
    pub(crate) changes_per_tick: Vec<u64>,
    /// Queue waits (microseconds) per tick the wait began in: every event that carried a
    /// [`wait`](weir_core::observer::Fields::wait).
    pub(crate) waits_per_tick: Vec<Vec<u64>>,
}

/// An observer to give the simulated stack's layers (every weir layer's `observer(..)`, or
/// `ClientStack::builder().observer(..)`): it counts their events by pattern and kind, keeps
/// their state changes with the virtual time, and collects the queue waits they report, for the
/// [`Report`](super::Report) ([`events`](super::Report::events),
/// [`transitions`](super::Report::transitions), [`queued`](super::Report::queued),
/// [`queue_wait`](super::Report::queue_wait)). Handed to the stack builder by
/// [`Simulation::run_observed`](super::Simulation::run_observed); clones share what they saw.
///
/// A queue wait is any event whose [`fields`](weir_core::Event::fields) carry a
/// [`wait`](weir_core::observer::Fields::wait), whatever its layer: the bulkhead's `dequeued`
/// (a queued request got its permit) and its `rejected` after a wait (`max_wait`, a deadline).
/// Each is counted in the tick its wait began (the event's time less the wait), as a request's
/// latency is counted in the tick it was sent.
#[derive(Clone)]
pub struct SimObserver {
    start: Instant,
    tick: Duration,
    seen: Arc<Mutex<Seen>>,
}

impl SimObserver {
    pub(crate) fn new(start: Instant, tick: Duration) -> Self {
        Self {
            start,
            tick,
            seen: Arc::default(),
        }
    }

    /// Takes what was seen, leaving nothing.
    pub(crate) fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for SimObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimObserver")
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

impl<E: Event + ?Sized> Observer<E> for SimObserver {
    fn on_event(&self, event: &E) {
        let at = Instant::now().saturating_duration_since(self.start);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        *seen
            .counts
            .entry((event.pattern(), event.kind()))
            .or_default() += 1;
        if let Some(wait) = event.fields().wait {
            let began = at.saturating_sub(wait);
            let tick = (began.as_nanos() / self.tick.as_nanos().max(1)) as usize;
            if seen.waits_per_tick.len() <= tick {
                seen.waits_per_tick.resize_with(tick + 1, Vec::new);
            }
            seen.waits_per_tick[tick].push(wait.as_micros() as u64);
        }
        if event.kind() == "state_change" {
            let tick = (at.as_nanos() / self.tick.as_nanos().max(1)) as usize;
            if seen.changes_per_tick.len() <= tick {
                seen.changes_per_tick.resize(tick + 1, 0);
            }
            seen.changes_per_tick[tick] += 1;
            if seen.transitions.len() < MAX_TRANSITIONS {
                seen.transitions.push(Transition {
                    at,
                    pattern: event.pattern(),
                    layer: event.layer().to_string(),
                    detail: format!("{event:?}"),
                });
            }
        }
    }
}
