//! The state every service a load-shed layer makes shares, and the in-flight token.

use std::fmt;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;
use weir_core::observer::TraceId;
use weir_core::{Error, Name, Observer, wire::GrpcCode};

use crate::event::Event;
use crate::limit::{Limit, Sample};
use crate::settings::LoadShedSettings;
use crate::state::{LoadLevel, Priority, cap, level};
use crate::sync::Word;
use crate::tuning::{DurationCell, LevelCell};

/// The calls in flight and the calls that succeeded, in one word, so that a call that
/// succeeds ends with one atomic operation rather than two.
///
/// The low 32 bits count the calls in flight (a limit above `u32::MAX` is taken as
/// `u32::MAX`), the high 32 bits the successes modulo 2^32; `wraps` counts how many times the
/// high half went round, so the success count reads as 64 bits. A success adds
/// `2^32 - 1`: one success in, one call out, in a single `fetch_add` (the low half is at least 1
/// while the call holds its slot, so nothing borrows across the halves).
///
/// Generic over its atomic word (`std`'s, the default; `shuttle`'s in the model tests below).
#[derive(Debug, Default)]
pub(crate) struct Flight<W = AtomicU64> {
    word: W,
    wraps: W,
}

const LOW: u64 = 0xffff_ffff;
const SUCCESS: u64 = 1 << 32;

impl<W: Word> Flight<W> {
    /// Calls in flight now.
    #[inline]
    pub(crate) fn in_flight(&self) -> usize {
        (self.word.load(SeqCst) & LOW) as usize
    }

    /// Calls that succeeded so far (a reading taken just as the high half wraps may be off by
    /// 2^32 for that instant).
    pub(crate) fn succeeded(&self) -> u64 {
        let high = self.word.load(Relaxed) >> 32;
        (self.wraps.load(Relaxed) << 32) | high
    }

    /// Takes a slot if fewer than `cap` calls are in flight; else the calls in flight.
    #[inline]
    fn enter(&self, cap: usize) -> Result<(), usize> {
        let cap = u64::try_from(cap).unwrap_or(LOW).min(LOW);
        self.word
            .fetch_update(SeqCst, SeqCst, |word| {
                (word & LOW < cap).then_some(word + 1)
            })
            .map(drop)
            .map_err(|word| (word & LOW) as usize)
    }

    /// A call that held a slot succeeded.
    #[inline]
    fn leave_succeeded(&self) {
        let before = self.word.fetch_add(SUCCESS - 1, SeqCst);
        if before >> 32 == LOW {
            self.wraps.fetch_add(1, Relaxed);
        }
    }

    /// A call that held a slot ended otherwise.
    #[inline]
    fn leave(&self) {
        self.word.fetch_sub(1, SeqCst);
    }
}

/// The counters and the live limit: what the handle reads, free of the type parameters.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) flight: Flight,
    pub(crate) limit: AtomicUsize,
    /// Calls each priority may have in flight under the current limit (sheddable, normal,
    /// critical), recomputed when the limit moves so admission does no arithmetic.
    pub(crate) caps: [AtomicUsize; 3],
    pub(crate) shed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) ignored: AtomicU64,
    /// `elevated_at` and `critical_at`, read as one pair (a handle may change them).
    pub(crate) levels: LevelCell,
}

impl Core {
    /// Stores a new limit and the caps it gives each priority.
    pub(crate) fn set_limit(&self, limit: usize, shares: &[f64; 3]) {
        self.limit.store(limit, Relaxed);
        for (slot, share) in self.caps.iter().zip(shares) {
            slot.store(cap(limit, *share), Relaxed);
        }
    }

    pub(crate) fn level(&self) -> LoadLevel {
        let (elevated_at, critical_at) = self.levels.get();
        level(
            self.flight.in_flight(),
            self.limit.load(Relaxed),
            elevated_at,
            critical_at,
        )
    }
}

/// How an admitted call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Dropped,
    Ignored,
}

/// What an in-flight token needs of the shared state, without its type parameters.
pub(crate) trait Finish: Send + Sync + crate::tuning::Retune {
    fn core(&self) -> &Core;
    fn name(&self) -> &Name;
    fn finish(&self, outcome: Outcome, started: Option<Instant>);
}

/// The algorithm and the shares of the limit each priority may use, behind one lock.
#[derive(Debug)]
pub(crate) struct Tuned<L> {
    pub(crate) limit: L,
    pub(crate) shares: [f64; 3],
}

pub(crate) struct Shared<L, C, O> {
    pub(crate) core: Core,
    pub(crate) name: Name,
    /// The `Retry-After` of a refusal and the longest readiness wait (a handle may change
    /// them; each is one atomic word).
    pub(crate) retry_after: DurationCell,
    pub(crate) max_ready_wait: DurationCell,
    /// The algorithm and the shares the caps are computed with, changed together under this
    /// lock (a finished call's sample, or an `apply`); admission reads only the caps.
    pub(crate) algorithm: Mutex<Tuned<L>>,
    pub(crate) classifier: C,
    pub(crate) observer: O,
}

impl<L: Limit, C, O> Shared<L, C, O> {
    /// The state of a load shedder with these (valid) settings and this limit.
    pub(crate) fn new(settings: LoadShedSettings, limit: L, classifier: C, observer: O) -> Self {
        let shares = settings.share.to_array();
        let initial = limit.limit().max(1);
        let shared = Self {
            core: Core {
                flight: Flight::default(),
                limit: AtomicUsize::new(initial),
                caps: [0; 3].map(AtomicUsize::new),
                shed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                ignored: AtomicU64::new(0),
                levels: LevelCell::new(settings.levels),
            },
            name: settings.name,
            retry_after: DurationCell::new(Some(settings.retry_after)),
            max_ready_wait: DurationCell::new(settings.max_ready_wait),
            algorithm: Mutex::new(Tuned { limit, shares }),
            classifier,
            observer,
        };
        shared.core.set_limit(initial, &shares);
        shared
    }
}

impl<L, C, O> Shared<L, C, O>
where
    L: Limit,
    O: for<'a> Observer<Event<'a>>,
{
    /// Takes a slot for a call of `priority`, or gives the calls in flight that refused it.
    #[inline]
    pub(crate) fn enter(&self, priority: Priority) -> Result<(), usize> {
        let cap = self.core.caps[priority.index()].load(Relaxed);
        self.core.flight.enter(cap)
    }

    /// Refuses `req`, of `priority`, with `in_flight` calls in flight: reads its trace id (an
    /// HTTP request's `traceparent`, in protocol `P`'s mode), then counts, reports and words the
    /// refusal. The request is taken whole (it ends here), so the admitted path never lends
    /// its address out: an HTTP request is still built in place in the inner call.
    #[cold]
    #[inline(never)]
    pub(crate) fn refuse<P, Req>(&self, priority: Priority, in_flight: usize, req: Req) -> Error
    where
        P: weir_core::protocol::Protocol<Req>,
    {
        let trace_id = P::headers(&req).and_then(TraceId::from_headers);
        drop(req);
        self.shed(priority, in_flight, self.core.limit.load(Relaxed), trace_id)
    }

    /// Counts and reports a refusal (of a request with `trace_id`), and makes its error.
    fn shed(
        &self,
        priority: Priority,
        in_flight: usize,
        limit: usize,
        trace_id: Option<TraceId>,
    ) -> Error {
        self.core.shed.fetch_add(1, Relaxed);
        self.observer.on_event(&Event::Shed {
            layer: &self.name,
            priority,
            in_flight,
            limit,
            trace_id,
        });
        Error::overloaded()
            .with_layer(self.name.clone())
            .with_retry_after(self.retry_after.get().unwrap_or_default())
    }
}

impl<L, C, O> Finish for Shared<L, C, O>
where
    L: Limit,
    C: Send + Sync,
    O: for<'a> Observer<Event<'a>> + Send + Sync,
{
    fn core(&self) -> &Core {
        &self.core
    }

    fn name(&self) -> &Name {
        &self.name
    }

    fn finish(&self, outcome: Outcome, started: Option<Instant>) {
        match outcome {
            Outcome::Success => {}
            Outcome::Dropped => {
                self.core.dropped.fetch_add(1, Relaxed);
            }
            Outcome::Ignored => {
                self.core.ignored.fetch_add(1, Relaxed);
            }
        }
        if L::ADAPTIVE
            && outcome != Outcome::Ignored
            && let Some(started) = started
        {
            let rtt = started.elapsed();
            let in_flight = self.core.flight.in_flight();
            let sample = if outcome == Outcome::Dropped {
                Sample::dropped(rtt, in_flight)
            } else {
                Sample::success(rtt, in_flight)
            };
            let (from, to) = {
                let mut tuned = self
                    .algorithm
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let from = tuned.limit.limit();
                let to = tuned.limit.update(sample);
                if to != from {
                    self.core.set_limit(to, &tuned.shares);
                }
                (from, to)
            };
            if from != to {
                self.observer.on_event(&Event::LimitChanged {
                    layer: &self.name,
                    from,
                    to,
                });
            }
        }
        if outcome == Outcome::Success {
            self.core.flight.leave_succeeded();
        } else {
            self.core.flight.leave();
        }
    }
}

/// One admitted call's in-flight slot: while it lives, the call counts against the limit.
///
/// It ends the call exactly once, as one of succeeded, dropped or ignored: when the response
/// future completes, or, in [`Http`](weir_core::protocol::Http) mode, when the response body that holds it
/// (`EndBody<B, InFlight>`) ends, fails or is dropped (counted by its gRPC status, or as the
/// success its head was). Dropped before the call completed (cancelled), it counts as ignored.
pub struct InFlight {
    shared: Option<Arc<dyn Finish>>,
    started: Option<Instant>,
    /// How the call ends if this slot is dropped rather than finished.
    on_drop: Outcome,
}

impl InFlight {
    #[inline]
    pub(crate) fn new(shared: Arc<dyn Finish>, adaptive: bool) -> Self {
        Self {
            shared: Some(shared),
            // The clock is read only when a sample will be taken.
            started: adaptive.then(Instant::now),
            on_drop: Outcome::Ignored,
        }
    }

    #[inline]
    pub(crate) fn finish(mut self, outcome: Outcome) {
        if let Some(shared) = self.shared.take() {
            shared.finish(outcome, self.started);
        }
    }

    /// The call ends as `outcome` when this slot is dropped (with the response body that holds
    /// it) or its body ends without trailers: its round-trip time runs until then.
    pub(crate) const fn ends_as(mut self, outcome: Outcome) -> Self {
        self.on_drop = outcome;
        self
    }
}

impl weir_core::body::OnBodyEnd for InFlight {
    /// Trailers with a gRPC status count by it (#16.5); a plain end keeps what the head said; a
    /// failed body says nothing about load (ignored).
    // Inline, as the drop below: a response whose body is already at its end (an empty body)
    // ends its call in `EndBody::new`, on every such call; out of line, the slot's drop glue ran
    // again, out of line too, after `finish` had emptied it.
    #[inline]
    fn on_end(self, end: weir_core::body::BodyEnd<'_>) {
        let outcome = match end {
            weir_core::body::BodyEnd::Trailers(trailers) => {
                grpc_outcome(trailers).unwrap_or(self.on_drop)
            }
            weir_core::body::BodyEnd::Error => Outcome::Ignored,
            _ => self.on_drop,
        };
        self.finish(outcome);
    }
}

impl Drop for InFlight {
    #[inline]
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.finish(self.on_drop, self.started);
        }
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// The load signal of a gRPC status in `headers` (a head or trailers), if there is one. An
/// empty map (a plain HTTP response with no headers) is answered inline; the look-ups are out
/// of line.
#[inline]
pub(crate) fn grpc_outcome(headers: &http::HeaderMap) -> Option<Outcome> {
    if headers.is_empty() {
        None
    } else {
        grpc_status_outcome(headers)
    }
}

#[inline(never)]
fn grpc_status_outcome(headers: &http::HeaderMap) -> Option<Outcome> {
    let code = GrpcCode::from_bytes(headers.get("grpc-status")?.as_bytes())?;
    Some(match code {
        GrpcCode::DeadlineExceeded | GrpcCode::Unavailable => Outcome::Dropped,
        GrpcCode::ResourceExhausted if headers.contains_key("grpc-retry-pushback-ms") => {
            Outcome::Ignored
        }
        GrpcCode::ResourceExhausted => Outcome::Dropped,
        _ => Outcome::Success,
    })
}

#[cfg(test)]
mod flight_tests {
    use super::*;

    #[test]
    fn a_success_ends_the_call_and_counts_in_one_word() {
        let flight: Flight = Flight::default();
        assert_eq!(flight.enter(2), Ok(()));
        assert_eq!(flight.enter(2), Ok(()));
        assert_eq!(flight.enter(2), Err(2));
        assert_eq!(flight.in_flight(), 2);
        flight.leave_succeeded();
        assert_eq!((flight.in_flight(), flight.succeeded()), (1, 1));
        flight.leave();
        assert_eq!((flight.in_flight(), flight.succeeded()), (0, 1));
        assert_eq!(flight.enter(0), Err(0));
    }

    #[test]
    fn the_success_count_goes_past_32_bits() {
        // One call in flight, 2^32 - 1 successes so far: the next success wraps the high half.
        let flight = Flight {
            word: AtomicU64::new((LOW << 32) | 1),
            wraps: AtomicU64::new(0),
        };
        assert_eq!(flight.succeeded(), LOW);
        flight.leave_succeeded();
        assert_eq!(flight.in_flight(), 0);
        assert_eq!(flight.succeeded(), 1 << 32);
        assert_eq!(flight.enter(1), Ok(()));
        flight.leave_succeeded();
        assert_eq!(flight.succeeded(), (1 << 32) + 1);
    }

    #[test]
    fn a_cap_beyond_32_bits_is_taken_as_the_largest_count() {
        let flight = Flight {
            word: AtomicU64::new(LOW - 1),
            wraps: AtomicU64::new(0),
        };
        assert_eq!(flight.enter(usize::MAX), Ok(()));
        assert_eq!(flight.enter(usize::MAX), Err(LOW as usize));
    }

    /// Model tests: [`Flight`] on `shuttle`'s atomic word, under shuttle's scheduler, which
    /// switches threads at every operation on it. Three callers race for two slots (each
    /// entering, then leaving with a success or otherwise, twice; once each for the exhaustive
    /// run): whatever the interleaving,
    /// no caller ever sees more calls in flight than the cap, every refusal saw the cap full,
    /// and at the end nothing is in flight and every success is counted once. Explored by
    /// shuttle's randomized PCT scheduler (1 000 schedules, depth 3) and exhaustively for two
    /// callers.
    mod model {
        use std::sync::Arc;

        use shuttle::sync::atomic::{AtomicU64, AtomicUsize};
        use shuttle::thread;

        use super::*;

        type ModelFlight = Flight<AtomicU64>;

        fn race(callers: usize, cap: usize, rounds: usize) {
            let flight = Arc::new(ModelFlight {
                word: AtomicU64::new(0),
                wraps: AtomicU64::new(0),
            });
            let successes = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..callers)
                .map(|caller| {
                    let flight = Arc::clone(&flight);
                    let successes = Arc::clone(&successes);
                    thread::spawn(move || {
                        for round in 0..rounds {
                            match flight.enter(cap) {
                                Ok(()) => {
                                    let in_flight = flight.in_flight();
                                    assert!(in_flight >= 1 && in_flight <= cap, "{in_flight}");
                                    if (caller + round) % 2 == 0 {
                                        flight.leave_succeeded();
                                        successes.fetch_add(1, SeqCst);
                                    } else {
                                        flight.leave();
                                    }
                                }
                                Err(seen) => assert_eq!(seen, cap, "refused below the cap"),
                            }
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("a caller ran");
            }
            assert_eq!(flight.in_flight(), 0, "a slot leaked");
            assert_eq!(flight.succeeded(), successes.load(SeqCst) as u64);
        }

        #[test]
        fn three_callers_never_exceed_two_slots() {
            shuttle::check_pct(|| race(3, 2, 2), 1_000, 3);
        }

        #[test]
        fn two_callers_for_one_slot_every_interleaving() {
            shuttle::check_dfs(|| race(2, 1, 1), None);
        }
    }
}
