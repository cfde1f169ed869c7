//! The algorithms: pure state machines over nanosecond timestamps, with no runtime and no
//! service plumbing. Each takes `now` (nanoseconds since the store's epoch) as an argument.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, PoisonError};

use crate::quota::Quota;
use crate::sync::{AtomicU64, Mutex};

/// The answer of an [`Algorithm`] to one request.
///
/// The units left are kept as `room / unit` and divided only when asked for (for headers, an
/// error, or to compare stacked quotas), so an admitted request on the plain path divides nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    admitted: bool,
    /// Refused whatever the state: the cost is above what the quota can ever admit.
    never: bool,
    wait: u64,
    room: u64,
    unit: u64,
    reset: u64,
    retry_after: u64,
}

impl Verdict {
    /// Admitted now (`wait` 0) or after `wait` nanoseconds (a reservation, in wait mode), with
    /// `remaining` units left and the quota fully restored in `reset` nanoseconds.
    #[must_use]
    pub const fn admitted(wait: u64, remaining: u64, reset: u64) -> Self {
        Self::admitted_in(wait, remaining, 1, reset)
    }

    /// As [`admitted`](Self::admitted), with `room / unit` units left.
    pub(crate) const fn admitted_in(wait: u64, room: u64, unit: u64, reset: u64) -> Self {
        Self {
            admitted: true,
            never: false,
            wait,
            room,
            unit,
            reset,
            retry_after: 0,
        }
    }

    /// Refused; a request of the same cost may be admitted after `retry_after` nanoseconds.
    #[must_use]
    pub const fn refused(retry_after: u64, remaining: u64, reset: u64) -> Self {
        Self {
            admitted: false,
            never: false,
            wait: 0,
            room: remaining,
            unit: 1,
            reset,
            retry_after,
        }
    }

    /// Refused whatever the state: the cost is above what the quota can ever admit (its burst,
    /// or its rate for the window algorithms). Waiting never helps, so it has no retry-after
    /// (`retry_after` answers `u64::MAX`).
    #[must_use]
    pub const fn never(remaining: u64, reset: u64) -> Self {
        Self {
            admitted: false,
            never: true,
            wait: 0,
            room: remaining,
            unit: 1,
            reset,
            retry_after: u64::MAX,
        }
    }

    /// Whether the request can never be admitted (see [`never`](Self::never)).
    #[must_use]
    pub const fn is_never_admissible(&self) -> bool {
        self.never
    }

    /// Whether the request was admitted (possibly after a wait).
    #[must_use]
    pub const fn is_admitted(&self) -> bool {
        self.admitted
    }

    /// Nanoseconds the admitted request must wait before it proceeds (0: at once).
    #[must_use]
    pub const fn wait(&self) -> u64 {
        self.wait
    }

    /// Units left after this decision.
    #[must_use]
    pub const fn remaining(&self) -> u64 {
        if self.unit <= 1 {
            self.room
        } else {
            self.room / self.unit
        }
    }

    pub(crate) const fn room(&self) -> (u64, u64) {
        (self.room, self.unit)
    }

    /// Nanoseconds until the quota is fully restored.
    #[must_use]
    pub const fn reset(&self) -> u64 {
        self.reset
    }

    /// For a refusal, nanoseconds until a request of the same cost could be admitted at once
    /// (`u64::MAX` if it never could).
    #[must_use]
    pub const fn retry_after(&self) -> u64 {
        self.retry_after
    }
}

/// A rate-limiting algorithm: a pure state machine, one `State` per quota (per key), driven with
/// explicit timestamps in nanoseconds since the store's epoch.
///
/// The in-memory store calls [`acquire`](Self::acquire) once per quota per request; for stacked
/// quotas it first [`peek`](Self::peek)s every quota and, if a concurrent request took the room
/// between the peek and the commit, [`release`](Self::release)s what it already took, so a
/// refused request never stays charged.
pub trait Algorithm: Clone + Send + Sync + 'static {
    /// The state kept per quota (per key).
    type State: Send + Sync + 'static;

    /// A fresh state: the quota fully available.
    fn new_state(&self, quota: &Quota) -> Self::State;

    /// What [`acquire`](Self::acquire) with no wait would answer, without changing the state.
    fn peek(&self, state: &Self::State, quota: &Quota, cost: u32, now: u64) -> Verdict;

    /// Takes `cost` units at `now` if the quota allows it. With `max_wait > 0` an algorithm that
    /// can schedule (GCRA, token bucket, leaky bucket) may instead reserve units that become
    /// available within `max_wait` and answer [`Verdict::admitted`] with a non-zero `wait`.
    fn acquire(
        &self,
        state: &Self::State,
        quota: &Quota,
        cost: u32,
        now: u64,
        max_wait: u64,
    ) -> Verdict;

    /// Takes `cost` units at `now` if they are there at once, as [`acquire`](Self::acquire)
    /// with no wait would, and says whether it did: the limiter's plain happy path, which needs
    /// no [`Verdict`]. A refusal takes nothing.
    #[inline]
    fn admit(&self, state: &Self::State, quota: &Quota, cost: u32, now: u64) -> bool {
        self.acquire(state, quota, cost, now, 0).is_admitted()
    }

    /// Gives back `cost` units taken by [`acquire`](Self::acquire) (a refused stacked quota, a
    /// cancelled wait).
    fn release(&self, state: &Self::State, quota: &Quota, cost: u32, now: u64);

    /// Gives back `cost` units of a reservation whose [`acquire`](Self::acquire) said the quota
    /// would be fully restored at `end` (`now + reset` at the time), if no later acquire has
    /// booked after it; by default [`release`](Self::release) whatever `end`. GCRA and the
    /// leaky bucket give a turn back only while their schedule still ends at `end`: a turn
    /// dropped in the middle of the queue goes unused, so two later requests are never booked
    /// on the same instant.
    fn release_reserved(&self, state: &Self::State, quota: &Quota, cost: u32, end: u64, now: u64) {
        let _ = end;
        self.release(state, quota, cost, now);
    }

    /// The time at which the state is back at rest (the quota fully available): a key whose
    /// every state is at rest can be forgotten without changing any decision.
    fn rest_at(state: &Self::State) -> u64;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// -------------------------------------------------------------------------------------------
// GCRA
// -------------------------------------------------------------------------------------------

/// The generic cell rate algorithm (the default): one `AtomicU64` per quota, the *theoretical
/// arrival time*, advanced by one compare-and-swap per decision. Equivalent to a token bucket
/// refilled continuously, in exact integer nanoseconds.
///
/// In any interval of length `T` it admits at most `burst + ⌊T / emission_interval⌋` units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gcra;

/// One GCRA or virtual-scheduling step: from the theoretical arrival time `tat`, a request of
/// `inc` nanoseconds of work fits if it would leave the schedule at most `cap` ahead of `now`.
/// Returns the verdict and, when admitted, the new `tat`.
#[inline]
fn schedule(
    tat: u64,
    inc: u64,
    cap: u64,
    t: u64,
    now: u64,
    max_wait: u64,
) -> (Verdict, Option<u64>) {
    let base = tat.max(now);
    let backlog = base - now;
    // A schedule past the clock's end (about 584 years after the limiter was built) is refused:
    // a saturated schedule would stop advancing and admit every request after it (#15.9).
    let Some(new) = base.checked_add(inc) else {
        let left_now = cap.saturating_sub(backlog) / t;
        return (Verdict::refused(u64::MAX - now, left_now, backlog), None);
    };
    let earliest = new.saturating_sub(cap);
    let wait = earliest.saturating_sub(now);
    if wait > max_wait {
        let left_now = cap.saturating_sub(backlog) / t;
        return (Verdict::refused(wait, left_now, backlog), None);
    }
    let room = if wait > 0 {
        0
    } else {
        cap.saturating_sub(new - now)
    };
    (Verdict::admitted_in(wait, room, t, new - now), Some(new))
}

#[inline]
fn gcra_step(
    tat: u64,
    quota: &Quota,
    cost: u32,
    now: u64,
    max_wait: u64,
) -> (Verdict, Option<u64>) {
    let t = quota.interval_nanos();
    let cap = quota.span_nanos();
    let inc = t.saturating_mul(u64::from(cost));
    if inc > cap {
        return (above_the_burst(tat, quota, cap, now), None);
    }
    schedule(tat, inc, cap, t, now, max_wait)
}

/// A cost above the burst: never admissible. Out of line, off the happy path.
#[cold]
#[inline(never)]
fn above_the_burst(tat: u64, quota: &Quota, cap: u64, now: u64) -> Verdict {
    let backlog = tat.saturating_sub(now);
    Verdict::never(
        cap.saturating_sub(backlog) / quota.interval_nanos(),
        backlog,
    )
}

/// The new theoretical arrival time of [`schedule`] when the request fits, computed alone: the
/// compare-and-swap loop carries one number, and the verdict is built once, after it.
#[inline(always)]
fn next_tat(tat: u64, inc: u64, cap: u64, now: u64, max_wait: u64) -> Option<u64> {
    let new = tat.max(now).checked_add(inc)?;
    // `new >= now`, so the wait `new - cap - now` (at least 0) is at most `max_wait` exactly
    // when `new - now` is at most `cap + max_wait`: one subtraction and one compare (on the
    // plain path `max_wait` is 0), where the wait itself took two saturating subtractions.
    (new - now <= cap.saturating_add(max_wait)).then_some(new)
}

/// Advances `cell` with `next` by compare-and-swap until it sticks or `next` refuses; returns the
/// value `next` last decided on (the one replaced, or the one that refused), from which the
/// caller builds the verdict (a pure function of it, so the same verdict the step decided).
#[inline(always)]
fn cas_loop(cell: &AtomicU64, next: impl Fn(u64) -> Option<u64>) -> u64 {
    let mut tat = cell.load(Ordering::Acquire);
    loop {
        let Some(new) = next(tat) else { return tat };
        match cell.compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return tat,
            Err(actual) => tat = actual,
        }
    }
}

/// Gives `nanos` back to a schedule that still ends at `end` (no later booking).
fn give_back_last(cell: &AtomicU64, nanos: u64, end: u64) {
    let _ = cell.compare_exchange(
        end,
        end.saturating_sub(nanos),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

fn give_back(cell: &AtomicU64, nanos: u64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
        Some(tat.saturating_sub(nanos))
    });
}

impl Algorithm for Gcra {
    type State = AtomicU64;

    fn new_state(&self, _quota: &Quota) -> AtomicU64 {
        AtomicU64::new(0)
    }

    fn peek(&self, state: &AtomicU64, quota: &Quota, cost: u32, now: u64) -> Verdict {
        gcra_step(state.load(Ordering::Acquire), quota, cost, now, 0).0
    }

    #[inline]
    fn acquire(
        &self,
        state: &AtomicU64,
        quota: &Quota,
        cost: u32,
        now: u64,
        max_wait: u64,
    ) -> Verdict {
        let t = quota.interval_nanos();
        let cap = quota.span_nanos();
        let inc = t.saturating_mul(u64::from(cost));
        if inc > cap {
            return above_the_burst(state.load(Ordering::Acquire), quota, cap, now);
        }
        let tat = cas_loop(state, |tat| next_tat(tat, inc, cap, now, max_wait));
        schedule(tat, inc, cap, t, now, max_wait).0
    }

    #[inline]
    fn admit(&self, state: &AtomicU64, quota: &Quota, cost: u32, now: u64) -> bool {
        let cap = quota.span_nanos();
        let inc = quota.interval_nanos().saturating_mul(u64::from(cost));
        inc <= cap && {
            let tat = cas_loop(state, |tat| next_tat(tat, inc, cap, now, 0));
            next_tat(tat, inc, cap, now, 0).is_some()
        }
    }

    fn release(&self, state: &AtomicU64, quota: &Quota, cost: u32, _now: u64) {
        give_back(
            state,
            quota.interval_nanos().saturating_mul(u64::from(cost)),
        );
    }

    fn release_reserved(&self, state: &AtomicU64, quota: &Quota, cost: u32, end: u64, _now: u64) {
        give_back_last(
            state,
            quota.interval_nanos().saturating_mul(u64::from(cost)),
            end,
        );
    }

    fn rest_at(state: &AtomicU64) -> u64 {
        state.load(Ordering::Relaxed)
    }
}

// -------------------------------------------------------------------------------------------
// Leaky bucket (a smoother)
// -------------------------------------------------------------------------------------------

/// The leaky bucket as a *smoother*: requests leave one unit per emission interval, never in a
/// burst. A request leaves once the queue ahead of it has drained, and its `cost` units then
/// hold the next `cost` intervals; a request that cannot leave at once takes a place in a queue
/// of `burst` places and waits (in wait mode, bounded by the maximum wait and the request's
/// deadline) until its turn; a full queue refuses. A cancelled waiter gives its places back. One
/// `AtomicU64` per quota (the time the queue empties), one compare-and-swap per decision. Use it
/// with [`RateLimitBuilder::wait`](crate::RateLimitBuilder::wait): in reject mode it admits only
/// requests that can leave at once.
///
/// With costs: a request of cost up to `burst` is admitted on an empty queue; a refusal's
/// retry-after is the time until the queue is empty, after which the same request leaves at
/// once; a cost above `burst` is never admissible; the units left that an admitted decision
/// reports are the cost a next request could have and still be admitted (0 in reject mode,
/// where the next request must wait for this one's units to leave).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeakyBucket;

/// Whether a request of `inc` nanoseconds of units fits the leaky bucket whose queue empties at
/// `next`: it waits for the queue ahead of it (at most `max_wait`), and its units after the
/// first take places in the queue (at most `queue`). The new time the queue empties, if so.
#[inline(always)]
fn leaky_next(next: u64, inc: u64, t: u64, queue: u64, now: u64, max_wait: u64) -> Option<u64> {
    let base = next.max(now);
    let backlog = base - now;
    // Saturating: a request of cost 0 (`inc` 0) takes no place (found by fuzz/rate_limit).
    // Past the clock's end the queue is full: never a saturated time that stops advancing.
    (backlog <= max_wait && backlog.saturating_add(inc.saturating_sub(t)) <= queue)
        .then(|| base.checked_add(inc))
        .flatten()
}

#[inline]
fn leaky_step(next: u64, quota: &Quota, cost: u32, now: u64, max_wait: u64) -> Verdict {
    let t = quota.interval_nanos();
    let queue = quota.span_nanos();
    let backlog = next.saturating_sub(now);
    if cost > quota.burst_size() {
        return Verdict::never(0, backlog);
    }
    let inc = t.saturating_mul(u64::from(cost));
    match leaky_next(next, inc, t, queue, now, max_wait) {
        Some(new) => {
            let after = new - now;
            // What a next request could cost and be admitted: it would wait `after`.
            let room = if after > max_wait {
                0
            } else {
                (queue.saturating_add(t).saturating_sub(after) / t)
                    .min(u64::from(quota.burst_size()))
            };
            Verdict::admitted(backlog, room, after)
        }
        // On an empty queue every cost up to `burst` fits: after `backlog` it leaves at once.
        None => Verdict::refused(backlog, 0, backlog),
    }
}

impl Algorithm for LeakyBucket {
    type State = AtomicU64;

    fn new_state(&self, _quota: &Quota) -> AtomicU64 {
        AtomicU64::new(0)
    }

    fn peek(&self, state: &AtomicU64, quota: &Quota, cost: u32, now: u64) -> Verdict {
        leaky_step(state.load(Ordering::Acquire), quota, cost, now, 0)
    }

    fn acquire(
        &self,
        state: &AtomicU64,
        quota: &Quota,
        cost: u32,
        now: u64,
        max_wait: u64,
    ) -> Verdict {
        let t = quota.interval_nanos();
        if cost > quota.burst_size() {
            return leaky_step(state.load(Ordering::Acquire), quota, cost, now, max_wait);
        }
        let inc = t.saturating_mul(u64::from(cost));
        let queue = quota.span_nanos();
        let next = cas_loop(state, |next| leaky_next(next, inc, t, queue, now, max_wait));
        leaky_step(next, quota, cost, now, max_wait)
    }

    fn release(&self, state: &AtomicU64, quota: &Quota, cost: u32, _now: u64) {
        give_back(
            state,
            quota.interval_nanos().saturating_mul(u64::from(cost)),
        );
    }

    fn release_reserved(&self, state: &AtomicU64, quota: &Quota, cost: u32, end: u64, _now: u64) {
        give_back_last(
            state,
            quota.interval_nanos().saturating_mul(u64::from(cost)),
            end,
        );
    }

    fn rest_at(state: &AtomicU64) -> u64 {
        state.load(Ordering::Relaxed)
    }
}

// -------------------------------------------------------------------------------------------
// Token bucket
// -------------------------------------------------------------------------------------------

/// The token bucket with interval refill: `rate` tokens are added at the end of every `period`,
/// up to `burst`. A burst of `burst` then `rate` per period, refilled in steps (GCRA refills
/// continuously). In any interval of length `T` it admits at most
/// `burst + rate × (⌊T / period⌋ + 1)` units (the interval may straddle one more refill).
///
/// Its state is two numbers under a `std::sync::Mutex` held for a few arithmetic operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket;

/// The state of one [`TokenBucket`] quota.
#[derive(Debug)]
pub struct TokenBucketState {
    inner: Mutex<Tokens>,
    rest_at: AtomicU64,
}

/// The tick of a bucket that has not decided yet.
const FRESH: u64 = u64::MAX;

#[derive(Clone, Copy, Debug)]
struct Tokens {
    tokens: i64,
    tick: u64,
    /// The period `tick` counts, in nanoseconds: a quota applied at run time with another
    /// period restarts the count.
    period: u64,
}

impl Tokens {
    fn refill(&mut self, quota: &Quota, now: u64) {
        let period = quota.period_nanos();
        let tick = now / period;
        if self.tick == FRESH {
            // A new bucket is full and starts counting periods at its first decision.
            self.tick = tick;
            self.period = period;
            return;
        }
        if self.period != period {
            // A quota applied at run time with another period: the bucket keeps its tokens (at
            // most the new burst), and its last refill is taken at the start of the new period
            // that held the old one's start (as weir-redis's script does).
            self.tokens = self.tokens.min(i64::from(quota.burst_size()));
            let start = u128::from(self.tick) * u128::from(self.period);
            self.tick = u64::try_from(start / u128::from(period)).unwrap_or(tick);
            self.period = period;
        }
        if tick > self.tick {
            let add = u128::from(tick - self.tick) * u128::from(quota.rate());
            let full = i128::from(quota.burst_size());
            let tokens = (i128::from(self.tokens) + add as i128).min(full);
            self.tokens = tokens as i64;
            self.tick = tick;
        }
    }

    /// When the bucket is full again.
    fn full_at(&self, quota: &Quota) -> u64 {
        let missing = i64::from(quota.burst_size()) - self.tokens;
        if missing <= 0 {
            return 0;
        }
        let ticks = (missing as u64).div_ceil(u64::from(quota.rate()));
        self.tick
            .saturating_add(ticks)
            .saturating_mul(quota.period_nanos())
    }

    fn step(&mut self, quota: &Quota, cost: u32, now: u64, max_wait: u64) -> Verdict {
        self.refill(quota, now);
        let cost_i = i64::from(cost);
        let reset = self.full_at(quota).saturating_sub(now);
        if cost > quota.burst_size() {
            return Verdict::never(self.tokens.max(0) as u64, reset);
        }
        if self.tokens >= cost_i {
            self.tokens -= cost_i;
            let reset = self.full_at(quota).saturating_sub(now);
            return Verdict::admitted(0, self.tokens as u64, reset);
        }
        let missing = (cost_i - self.tokens) as u64;
        let ticks = missing.div_ceil(u64::from(quota.rate()));
        // Tokens that would come only past the clock's end (about 584 years after the limiter
        // was built) never come: refused, even with an unbounded wait (#15.9).
        let at = self
            .tick
            .checked_add(ticks)
            .and_then(|tick| tick.checked_mul(quota.period_nanos()));
        let wait = at.map_or(u64::MAX - now, |at| at.saturating_sub(now));
        if at.is_none() || wait > max_wait {
            return Verdict::refused(wait, self.tokens.max(0) as u64, reset);
        }
        self.tokens -= cost_i;
        let reset = self.full_at(quota).saturating_sub(now);
        Verdict::admitted(wait, 0, reset)
    }
}

impl Algorithm for TokenBucket {
    type State = TokenBucketState;

    fn new_state(&self, quota: &Quota) -> TokenBucketState {
        TokenBucketState {
            inner: Mutex::new(Tokens {
                tokens: i64::from(quota.burst_size()),
                tick: FRESH,
                period: quota.period_nanos(),
            }),
            rest_at: AtomicU64::new(0),
        }
    }

    fn peek(&self, state: &TokenBucketState, quota: &Quota, cost: u32, now: u64) -> Verdict {
        let mut copy = *lock(&state.inner);
        copy.step(quota, cost, now, 0)
    }

    fn acquire(
        &self,
        state: &TokenBucketState,
        quota: &Quota,
        cost: u32,
        now: u64,
        max_wait: u64,
    ) -> Verdict {
        let mut inner = lock(&state.inner);
        let verdict = inner.step(quota, cost, now, max_wait);
        state.rest_at.store(inner.full_at(quota), Ordering::Relaxed);
        verdict
    }

    fn release(&self, state: &TokenBucketState, quota: &Quota, cost: u32, _now: u64) {
        let mut inner = lock(&state.inner);
        inner.tokens = (inner.tokens + i64::from(cost)).min(i64::from(quota.burst_size()));
        state.rest_at.store(inner.full_at(quota), Ordering::Relaxed);
    }

    /// Gives nothing back: the tokens of a dropped waiter stay spent, as if it had left at its
    /// turn. The bucket cannot tell whether a later reservation was booked behind this one (its
    /// count of tokens does not say), and tokens given back under one let the next request take
    /// a tick that later reservation also leaves on: more than `burst + rate` units in one
    /// instant. A dropped turn goes unused.
    fn release_reserved(
        &self,
        _state: &TokenBucketState,
        _quota: &Quota,
        _cost: u32,
        _end: u64,
        _now: u64,
    ) {
    }

    fn rest_at(state: &TokenBucketState) -> u64 {
        state.rest_at.load(Ordering::Relaxed)
    }
}

// -------------------------------------------------------------------------------------------
// Fixed window
// -------------------------------------------------------------------------------------------

/// The fixed window: at most `rate` units per window of `period`, windows aligned on the store's
/// epoch, the same for every key (see
/// [`RateLimitHandle::window_origin`](crate::RateLimitHandle::window_origin)). Cheap and simple, but a client can spend a whole window's quota at the end of one
/// window and again at the start of the next: up to `2 × rate` in an interval of length
/// `period` (the documented edge burst). `burst` is ignored. Reservations are not supported:
/// in wait mode a refused request is refused at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedWindow;

/// The state of one [`FixedWindow`] or [`SlidingWindow`] quota.
#[derive(Debug)]
pub struct WindowState {
    inner: Mutex<Windows>,
    rest_at: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Windows {
    window: u64,
    current: u64,
    previous: u64,
    /// The period `window` counts, in nanoseconds (0 before the first decision).
    period: u64,
}

impl Windows {
    fn roll(&mut self, quota: &Quota, now: u64) {
        let p = quota.period_nanos();
        if self.period != p {
            self.repace(p, now);
        }
        let w = now / p;
        if w == self.window {
            return;
        }
        self.previous = if self.window.checked_add(1) == Some(w) {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.window = w;
    }

    /// A quota applied at run time with another period (or the first decision): the old
    /// windows' counts are taken as counted in the new period's window that holds the old
    /// current window's start (as weir-redis's scripts do), and `roll` moves on from there, so
    /// a change never frees room. Off the happy path.
    #[cold]
    fn repace(&mut self, p: u64, now: u64) {
        self.window = if self.period == 0 {
            now / p
        } else {
            let start = u128::from(self.window) * u128::from(self.period);
            u64::try_from(start / u128::from(p)).unwrap_or(now / p)
        };
        self.period = p;
    }

    fn fixed(&mut self, quota: &Quota, cost: u32, now: u64) -> Verdict {
        self.roll(quota, now);
        let rate = u64::from(quota.rate());
        let end = self
            .window
            .saturating_add(1)
            .saturating_mul(quota.period_nanos());
        let until_end = end.saturating_sub(now);
        let cost = u64::from(cost);
        if cost > rate {
            return Verdict::never(rate.saturating_sub(self.current), until_end);
        }
        if self.current + cost > rate {
            return Verdict::refused(until_end, rate.saturating_sub(self.current), until_end);
        }
        self.current += cost;
        Verdict::admitted(0, rate.saturating_sub(self.current), until_end)
    }

    fn fixed_rest_at(&self, quota: &Quota) -> u64 {
        if self.current == 0 {
            0
        } else {
            self.window
                .saturating_add(1)
                .saturating_mul(quota.period_nanos())
        }
    }

    /// The sliding-window counter's test: the previous window's count weighted by how much of
    /// it the sliding window `(now − period, now]` still overlaps, `p − e − 1` nanoseconds of
    /// `p`, rounded down, plus the current window's count plus `cost`, against `rate`.
    ///
    /// The overlap is open on the left: the request exactly one period before `now` is out of
    /// the sliding window, so a client sending evenly at the rate never finds its own request
    /// of a period ago still counted (with `p − e` it did, at every window edge).
    fn sliding(&mut self, quota: &Quota, cost: u32, now: u64) -> Verdict {
        self.roll(quota, now);
        let p = u128::from(quota.period_nanos());
        let rate = u128::from(quota.rate());
        let start = u128::from(self.window) * p;
        let elapsed = u128::from(now) - start;
        let prev = u128::from(self.previous);
        let cur = u128::from(self.current);
        let c = u128::from(cost);
        let weighted = prev * (p - 1 - elapsed) / p;
        let used = weighted + cur;
        let remaining = rate.saturating_sub(used);
        let rest_at = self.sliding_rest_at(quota);
        let reset = rest_at.saturating_sub(now);
        if c > rate {
            return Verdict::never(remaining as u64, reset);
        }
        if used + c <= rate {
            self.current += u64::from(cost);
            let reset = self.sliding_rest_at(quota).saturating_sub(now);
            return Verdict::admitted(0, (remaining - c) as u64, reset);
        }
        // When does it fit? Either later in this window, as the previous window's weight fades,
        // or in the next one, where this window's count becomes the weighted one. The weighted
        // count `⌊w × (p − 1 − e) / p⌋` is at most `room` from `e = p − ⌈(room + 1) × p / w⌉`.
        let fits_from = |room: u128, w: u128| p.saturating_sub(((room + 1) * p).div_ceil(w));
        let at = if cur + c <= rate {
            // prev > 0 here, or it would have fit.
            start + fits_from(rate - c - cur, prev)
        } else {
            // cur > 0 here: c ≤ rate.
            start + p + fits_from(rate - c, cur)
        };
        let retry = (at.min(u128::from(u64::MAX)) as u64)
            .saturating_sub(now)
            .max(1);
        Verdict::refused(retry, remaining as u64, reset)
    }

    fn sliding_rest_at(&self, quota: &Quota) -> u64 {
        let p = quota.period_nanos();
        if self.current > 0 {
            self.window.saturating_add(2).saturating_mul(p)
        } else if self.previous > 0 {
            self.window.saturating_add(1).saturating_mul(p)
        } else {
            0
        }
    }

    fn give_back(&mut self, quota: &Quota, cost: u32, now: u64) {
        if now / quota.period_nanos() == self.window {
            self.current = self.current.saturating_sub(u64::from(cost));
        }
    }
}

fn new_window_state() -> WindowState {
    WindowState {
        inner: Mutex::new(Windows::default()),
        rest_at: AtomicU64::new(0),
    }
}

impl WindowState {
    /// Runs `step` on the windows under the lock, then records when they are at rest again
    /// (`rest_at` is [`Windows::fixed_rest_at`] or [`Windows::sliding_rest_at`]).
    fn update<R>(
        &self,
        quota: &Quota,
        rest_at: fn(&Windows, &Quota) -> u64,
        step: impl FnOnce(&mut Windows) -> R,
    ) -> R {
        let mut inner = lock(&self.inner);
        let result = step(&mut inner);
        self.rest_at
            .store(rest_at(&inner, quota), Ordering::Relaxed);
        result
    }
}

impl Algorithm for FixedWindow {
    type State = WindowState;

    fn new_state(&self, _quota: &Quota) -> WindowState {
        new_window_state()
    }

    fn peek(&self, state: &WindowState, quota: &Quota, cost: u32, now: u64) -> Verdict {
        let mut copy = *lock(&state.inner);
        copy.fixed(quota, cost, now)
    }

    fn acquire(
        &self,
        state: &WindowState,
        quota: &Quota,
        cost: u32,
        now: u64,
        _max_wait: u64,
    ) -> Verdict {
        state.update(quota, Windows::fixed_rest_at, |w| w.fixed(quota, cost, now))
    }

    fn release(&self, state: &WindowState, quota: &Quota, cost: u32, now: u64) {
        state.update(quota, Windows::fixed_rest_at, |w| {
            w.give_back(quota, cost, now)
        });
    }

    fn rest_at(state: &WindowState) -> u64 {
        state.rest_at.load(Ordering::Relaxed)
    }
}

// -------------------------------------------------------------------------------------------
// Sliding-window counter
// -------------------------------------------------------------------------------------------

/// The sliding-window counter: the count of the current window plus the previous window's count
/// weighted by how much of it still overlaps the sliding window (Cloudflare's estimate), in
/// integers. Two counters per quota; smooths fixed-window edge bursts at the price of an
/// estimate. `burst` is ignored. Reservations are not supported. Windows are aligned on the
/// store's epoch (see [`RateLimitHandle::window_origin`](crate::RateLimitHandle::window_origin)).
///
/// A request of cost `c` at `e` nanoseconds into the current window of `p` is admitted when
/// `⌊previous × (p − 1 − e) / p⌋ + current + c ≤ rate`: the sliding window is
/// `(now − p, now]`, so the previous window overlaps it by `p − 1 − e` whole nanoseconds, and
/// its count is taken as spread evenly over them, rounded down. So:
///
/// - a client sending evenly at the rate or slower is never refused;
/// - for traffic spread evenly within each window the count in any sliding window is at most
///   `rate` plus the rounding, less than one unit;
/// - in the worst case (the previous window's requests all at its very end) an interval of one
///   period holds at most `2 × rate` units, as with [`FixedWindow`]: the current window's own
///   count never exceeds `rate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlidingWindow;

impl Algorithm for SlidingWindow {
    type State = WindowState;

    fn new_state(&self, _quota: &Quota) -> WindowState {
        new_window_state()
    }

    fn peek(&self, state: &WindowState, quota: &Quota, cost: u32, now: u64) -> Verdict {
        let mut copy = *lock(&state.inner);
        copy.sliding(quota, cost, now)
    }

    fn acquire(
        &self,
        state: &WindowState,
        quota: &Quota,
        cost: u32,
        now: u64,
        _max_wait: u64,
    ) -> Verdict {
        state.update(quota, Windows::sliding_rest_at, |w| {
            w.sliding(quota, cost, now)
        })
    }

    fn release(&self, state: &WindowState, quota: &Quota, cost: u32, now: u64) {
        state.update(quota, Windows::sliding_rest_at, |w| {
            w.give_back(quota, cost, now)
        });
    }

    fn rest_at(state: &WindowState) -> u64 {
        state.rest_at.load(Ordering::Relaxed)
    }
}

// -------------------------------------------------------------------------------------------
// Sliding-window log
// -------------------------------------------------------------------------------------------

/// The sliding-window log: the time and cost of every request admitted in the last `period`,
/// so no interval of length `period` ever holds more than `rate` units (exact). The log holds
/// one run of `(instant, cost)` per admitted request (requests of one instant share one), 16
/// bytes each, not one entry per unit: memory per quota is bounded by the requests of one
/// period (at most `rate` of them, whatever their cost), grown as used (the log keeps its
/// capacity until its key is evicted). `burst` is ignored. Reservations are not supported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlidingLog;

/// The state of one [`SlidingLog`] quota.
#[derive(Debug)]
pub struct SlidingLogState {
    log: Mutex<Log>,
    rest_at: AtomicU64,
}

/// The runs of a sliding-window log and the units they hold.
#[derive(Debug, Default)]
struct Log {
    /// `(admitted at, units)`, oldest first.
    runs: VecDeque<(u64, u64)>,
    units: u64,
}

impl Log {
    fn rest_at(&self, quota: &Quota) -> u64 {
        self.runs
            .back()
            .map_or(0, |&(t, _)| t.saturating_add(quota.period_nanos()))
    }
}

fn log_step(log: &mut Log, quota: &Quota, cost: u32, now: u64, commit: bool) -> Verdict {
    let p = quota.period_nanos();
    while let Some(&(t, units)) = log.runs.front() {
        if t.saturating_add(p) > now {
            break;
        }
        log.runs.pop_front();
        log.units -= units;
    }
    let rate = u64::from(quota.rate());
    let cost = u64::from(cost);
    let reset = log.rest_at(quota).saturating_sub(now);
    let remaining = rate.saturating_sub(log.units);
    if cost > rate {
        return Verdict::never(remaining, reset);
    }
    if log.units + cost <= rate {
        if commit {
            match log.runs.back_mut() {
                Some((t, units)) if *t == now => *units += cost,
                _ => log.runs.push_back((now, cost)),
            }
            log.units += cost;
        }
        return Verdict::admitted(0, remaining - cost, p);
    }
    // The run whose expiry makes room for `cost` units.
    let mut need = log.units + cost - rate;
    let mut retry = p;
    for &(t, units) in &log.runs {
        if units >= need {
            retry = t.saturating_add(p).saturating_sub(now);
            break;
        }
        need -= units;
    }
    Verdict::refused(retry, remaining, reset)
}

impl Algorithm for SlidingLog {
    type State = SlidingLogState;

    fn new_state(&self, _quota: &Quota) -> SlidingLogState {
        SlidingLogState {
            log: Mutex::new(Log::default()),
            rest_at: AtomicU64::new(0),
        }
    }

    fn peek(&self, state: &SlidingLogState, quota: &Quota, cost: u32, now: u64) -> Verdict {
        let mut log = lock(&state.log);
        log_step(&mut log, quota, cost, now, false)
    }

    fn acquire(
        &self,
        state: &SlidingLogState,
        quota: &Quota,
        cost: u32,
        now: u64,
        _max_wait: u64,
    ) -> Verdict {
        let mut log = lock(&state.log);
        let verdict = log_step(&mut log, quota, cost, now, true);
        state.rest_at.store(log.rest_at(quota), Ordering::Relaxed);
        verdict
    }

    fn release(&self, state: &SlidingLogState, quota: &Quota, cost: u32, _now: u64) {
        let mut log = lock(&state.log);
        let mut cost = u64::from(cost);
        while cost > 0 {
            let Some((_, units)) = log.runs.back_mut() else {
                break;
            };
            let taken = cost.min(*units);
            *units -= taken;
            if *units == 0 {
                log.runs.pop_back();
            }
            log.units -= taken;
            cost -= taken;
        }
        state.rest_at.store(log.rest_at(quota), Ordering::Relaxed);
    }

    fn rest_at(state: &SlidingLogState) -> u64 {
        state.rest_at.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod model;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn take<A: Algorithm>(a: &A, s: &A::State, q: &Quota, now: u64) -> bool {
        a.acquire(s, q, 1, now, 0).is_admitted()
    }

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let q = Quota::per_second(10).burst(3);
        let s = Gcra.new_state(&q);
        for _ in 0..3 {
            assert!(take(&Gcra, &s, &q, 0));
        }
        let refused = Gcra.acquire(&s, &q, 1, 0, 0);
        assert!(!refused.is_admitted());
        assert_eq!(refused.retry_after(), 100 * MS);
        assert_eq!(refused.remaining(), 0);
        assert_eq!(refused.reset(), 300 * MS);
        assert!(!take(&Gcra, &s, &q, 100 * MS - 1));
        let ok = Gcra.acquire(&s, &q, 1, 100 * MS, 0);
        assert!(ok.is_admitted());
        assert_eq!((ok.wait(), ok.remaining(), ok.reset()), (0, 0, 300 * MS));
        // Quiet for a second: the whole burst is back.
        assert_eq!(Gcra.peek(&s, &q, 1, 2 * S).remaining(), 2);
    }

    #[test]
    fn gcra_cost_is_charged_in_units_and_over_burst_is_never_admitted() {
        let q = Quota::per_second(10).burst(5);
        let s = Gcra.new_state(&q);
        assert_eq!(Gcra.acquire(&s, &q, 4, 0, 0).remaining(), 1);
        let refused = Gcra.acquire(&s, &q, 2, 0, 0);
        assert_eq!(refused.retry_after(), 100 * MS);
        let never = Gcra.acquire(&s, &q, 6, 10 * S, 0);
        assert!(!never.is_admitted());
        assert!(never.is_never_admissible());
        assert_eq!(never.retry_after(), u64::MAX);
    }

    #[test]
    fn gcra_reserves_within_max_wait_and_release_gives_back() {
        let q = Quota::per_second(10).burst(1);
        let s = Gcra.new_state(&q);
        assert!(take(&Gcra, &s, &q, 0));
        let reserved = Gcra.acquire(&s, &q, 1, 0, 150 * MS);
        assert_eq!(reserved.wait(), 100 * MS);
        assert!(!Gcra.acquire(&s, &q, 1, 0, 150 * MS).is_admitted());
        Gcra.release(&s, &q, 1, 0);
        assert_eq!(Gcra.acquire(&s, &q, 1, 0, 150 * MS).wait(), 100 * MS);
    }

    #[test]
    fn leaky_bucket_spaces_requests_and_bounds_its_queue() {
        let q = Quota::per_second(10).burst(2);
        let s = LeakyBucket.new_state(&q);
        let max = S;
        assert_eq!(LeakyBucket.acquire(&s, &q, 1, 0, max).wait(), 0);
        assert_eq!(LeakyBucket.acquire(&s, &q, 1, 0, max).wait(), 100 * MS);
        assert_eq!(LeakyBucket.acquire(&s, &q, 1, 0, max).wait(), 200 * MS);
        // Queue of 2 places is full.
        let full = LeakyBucket.acquire(&s, &q, 1, 0, max);
        assert!(!full.is_admitted());
        assert_eq!(full.retry_after(), 300 * MS);
        // A cancelled waiter frees its place.
        LeakyBucket.release(&s, &q, 1, 0);
        assert_eq!(LeakyBucket.acquire(&s, &q, 1, 0, max).wait(), 200 * MS);
        // In reject mode only an immediate departure is admitted.
        assert!(!LeakyBucket.acquire(&s, &q, 1, 250 * MS, 0).is_admitted());
        assert!(LeakyBucket.acquire(&s, &q, 1, 300 * MS, 0).is_admitted());
    }

    #[test]
    fn token_bucket_refills_rate_per_period_up_to_burst() {
        let q = Quota::per_second(2).burst(4);
        let s = TokenBucket.new_state(&q);
        for _ in 0..4 {
            assert!(take(&TokenBucket, &s, &q, 0));
        }
        let refused = TokenBucket.acquire(&s, &q, 1, 500 * MS, 0);
        assert_eq!(refused.retry_after(), 500 * MS);
        assert!(take(&TokenBucket, &s, &q, S));
        assert!(take(&TokenBucket, &s, &q, S));
        assert!(!take(&TokenBucket, &s, &q, S));
        assert_eq!(TokenBucket::rest_at(&s), 3 * S);
        // Reservation in wait mode, then release.
        let r = TokenBucket.acquire(&s, &q, 1, S, 2 * S);
        assert_eq!(r.wait(), S);
        TokenBucket.release(&s, &q, 1, S);
        assert_eq!(TokenBucket.peek(&s, &q, 1, 2 * S).remaining(), 1);
    }

    #[test]
    fn fixed_window_resets_at_the_window_edge() {
        let q = Quota::per_second(2);
        let s = FixedWindow.new_state(&q);
        assert!(take(&FixedWindow, &s, &q, 900 * MS));
        assert!(take(&FixedWindow, &s, &q, 900 * MS));
        let refused = FixedWindow.acquire(&s, &q, 1, 900 * MS, 0);
        assert_eq!(refused.retry_after(), 100 * MS);
        // The edge burst: two more right after the edge.
        assert!(take(&FixedWindow, &s, &q, S));
        assert!(take(&FixedWindow, &s, &q, S));
        assert!(!take(&FixedWindow, &s, &q, S + 1));
        assert_eq!(FixedWindow::rest_at(&s), 2 * S);
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        let q = Quota::per_second(10);
        let s = SlidingWindow.new_state(&q);
        for _ in 0..10 {
            assert!(take(&SlidingWindow, &s, &q, 0));
        }
        // At 1.5 s the previous window weighs ⌊10 × (0.5 s − 1 ns) / 1 s⌋ = 4: 6 more fit.
        let mut admitted = 0;
        while take(&SlidingWindow, &s, &q, 1_500 * MS) {
            admitted += 1;
        }
        assert_eq!(admitted, 6);
        let refused = SlidingWindow.peek(&s, &q, 1, 1_500 * MS);
        // ⌊10 × (1 s − 1 ns − e) / 1 s⌋ ≤ 10 − 1 − 6 → e ≥ 0.6 s.
        assert_eq!(refused.retry_after(), 100 * MS);
        assert!(take(&SlidingWindow, &s, &q, 1_600 * MS));
    }

    /// #15.2: a request's memory is one run whatever its cost: a cost of 4·10⁹ under a rate
    /// of `u32::MAX` is admitted with one 16-byte run (it was 4·10⁹ entries of 8 bytes, and
    /// the allocation aborted the process); requests of one instant share a run, and a
    /// release takes units back from the newest runs.
    #[test]
    fn sliding_log_keeps_one_run_per_request_whatever_its_cost() {
        let q = Quota::new(u32::MAX, Duration::from_secs(1));
        let s = SlidingLog.new_state(&q);
        let big = 4_000_000_000;
        let admitted = SlidingLog.acquire(&s, &q, big, 0, 0);
        assert!(admitted.is_admitted());
        assert_eq!(admitted.remaining(), u64::from(u32::MAX - big));
        assert_eq!(lock(&s.log).runs.len(), 1);
        // The same instant: the same run.
        assert!(take(&SlidingLog, &s, &q, 0));
        assert_eq!(lock(&s.log).runs.len(), 1);
        assert!(!SlidingLog.acquire(&s, &q, big, MS, 0).is_admitted());
        assert_eq!(SlidingLog.peek(&s, &q, big, MS).retry_after(), S - MS);
        SlidingLog.release(&s, &q, 1, MS);
        assert_eq!(lock(&s.log).units, u64::from(big));
        // A period later the run expires and its memory is given back.
        assert!(SlidingLog.acquire(&s, &q, big, S, 0).is_admitted());
        assert_eq!(lock(&s.log).runs.len(), 1);
    }

    #[test]
    fn sliding_log_is_exact_and_bounded_by_the_limit() {
        let q = Quota::new(3, Duration::from_secs(1));
        let s = SlidingLog.new_state(&q);
        assert!(take(&SlidingLog, &s, &q, 0));
        assert!(take(&SlidingLog, &s, &q, 400 * MS));
        assert!(take(&SlidingLog, &s, &q, 800 * MS));
        let refused = SlidingLog.acquire(&s, &q, 1, 900 * MS, 0);
        assert_eq!(refused.retry_after(), 100 * MS);
        assert!(take(&SlidingLog, &s, &q, S));
        assert!(!take(&SlidingLog, &s, &q, 1_300 * MS));
        assert!(lock(&s.log).runs.len() <= 3);
        let two = SlidingLog.peek(&s, &q, 2, S);
        assert_eq!(two.retry_after(), 800 * MS);
    }
}
