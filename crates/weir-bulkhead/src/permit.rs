//! The permit core: a counting semaphore with a FIFO queue of waiters, whose permits are values
//! released exactly once, by `Drop`.
//!
//! Why not `tokio::sync::Semaphore`: its acquire future cannot be named, so a `ResponseFuture`
//! could only hold it boxed (tower's `PollSemaphore` boxes it). Here a waiter is a named
//! `oneshot::Receiver`, and a released permit is handed to the head of the queue directly, so it
//! is never lost in between.
//!
//! Happy path (a permit free, nobody queued): one compare-and-swap to take a permit, one
//! `fetch_add` to give it back, an `Arc` count per permit; no lock, no allocation. The lock is
//! taken only to join the queue and, when somebody is queued, to hand a released permit over.
//!
//! No lost wake-up: a waiter counts itself in `queued` and then tries to take a permit, under the
//! lock; a releaser adds the permit to `available` and then reads `queued` (all `SeqCst`). Either
//! the waiter sees the permit, or the releaser sees the waiter and serves the queue under the lock.
//!
//! Resizing (`Core::resize`, issue #25): `available` is read as a signed count, `max` minus the
//! permits held. Shrinking subtracts the difference at once, so `available` may go below zero:
//! the permits held above the new size are retired as they come back (each release only pays
//! back the debt, and `take` refuses until the count is above zero again), never handed to a
//! waiter. Growing adds the difference and serves the queue, under the lock, so as many waiters
//! as there is new room for are handed a permit at once. The fast path is unchanged: one
//! compare-and-swap (whose test is now "between 1 and `MAX_PERMITS`" instead of "not zero") and
//! one `fetch_add`.
//!
//! The core is written once against the [`Primitives`] of `crate::sync`: `std`'s in the
//! library, `shuttle`'s in the model tests below, which run this very code (not a copy of it)
//! under a scheduler that explores how its atomic and lock operations interleave across threads.
//! The oneshot channel is tokio's in both: to the model it is one linearizable step per call,
//! which is what tokio's own loom tests establish.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::settings::MAX_PERMITS;
use crate::state::bounded_increment;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use crate::sync::{Counter, Lock};

type Queue<P> = VecDeque<oneshot::Sender<Held<P>>>;

/// A family of primitives the core is written against: an atomic counter and a mutex
/// (`crate::sync`).
pub(crate) trait Primitives: Sized + 'static {
    /// An atomic `usize`.
    type Counter: Counter;
    /// A mutex around a `T`.
    type Lock<T>: Lock<T>;
    /// What the core hands out: the crate's public [`Permit`] for [`Std`], the bare releasing
    /// value in a model test.
    type Permit: From<Held<Self>>;
}

/// `std::sync`: what the library runs on.
#[derive(Debug)]
pub(crate) struct Std;

impl Primitives for Std {
    type Counter = AtomicUsize;
    type Lock<T> = Mutex<T>;
    type Permit = Permit;
}

/// The shared state of one bulkhead (or of one partition).
pub(crate) struct Core<P: Primitives = Std> {
    /// The size now; changed only by [`resize`](Self::resize), under the queue's lock.
    max: P::Counter,
    /// `max` minus the permits held, as a two's-complement signed count: below zero after a
    /// shrink while more permits are held than the new size (see the module's documentation).
    available: P::Counter,
    queued: P::Counter,
    rejected: AtomicU64,
    waiters: P::Lock<Queue<P>>,
    /// For a partition's loan allowance: the shared pool each of its permits also holds one
    /// permit of, released with it.
    lends_from: Option<Arc<Self>>,
}

impl<P: Primitives> Core<P> {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Self::with_pool(max, None)
    }

    /// A partition's loan allowance: `cap` permits, each of which also holds one of `pool`'s.
    pub(crate) fn lender(cap: usize, pool: &Arc<Self>) -> Arc<Self> {
        Self::with_pool(cap, Some(Arc::clone(pool)))
    }

    fn with_pool(max: usize, lends_from: Option<Arc<Self>>) -> Arc<Self> {
        Arc::new(Self {
            max: P::Counter::new(max),
            available: P::Counter::new(max),
            queued: P::Counter::new(0),
            rejected: AtomicU64::new(0),
            waiters: P::Lock::new(VecDeque::new()),
            lends_from,
        })
    }

    /// A permit of this loan allowance and one of its pool, if both have one free.
    pub(crate) fn try_borrow(self: &Arc<Self>) -> Option<P::Permit> {
        let pool = self.lends_from.as_ref()?;
        if !self.take() {
            return None;
        }
        if pool.queued.load(SeqCst) == 0 && pool.take() {
            return Some(Held::new(self).into());
        }
        // Nobody waits on an allowance: give it straight back.
        self.available.fetch_add(1, SeqCst);
        None
    }

    pub(crate) fn max(&self) -> usize {
        self.max.load(SeqCst)
    }

    /// Permits free now: 0 while permits held above a new, smaller size are being retired.
    pub(crate) fn available(&self) -> usize {
        let available = self.available.load(SeqCst);
        if available <= MAX_PERMITS {
            available
        } else {
            0
        }
    }

    /// Permits held now (calls in flight): `max - available`, which exceeds `max` after a
    /// shrink until the permits above the new size have come back. The two counters are read
    /// one after the other, so a reading taken during a resize may be off by its difference.
    pub(crate) fn in_flight(&self) -> usize {
        let available = self.available.load(SeqCst);
        let held = self.max().wrapping_sub(available);
        if held <= 2 * MAX_PERMITS { held } else { 0 }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(SeqCst)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    pub(crate) fn count_rejection(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// Takes a permit if one is free and nobody is queued (a newcomer never overtakes a waiter).
    #[inline]
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<P::Permit> {
        if self.queued.load(SeqCst) != 0 {
            return None;
        }
        self.take().then(|| Held::new(self).into())
    }

    /// Takes a permit if the count is above zero (below zero, read as signed, means permits
    /// are owed after a shrink: nothing is free).
    #[inline]
    fn take(&self) -> bool {
        self.available
            .fetch_update(SeqCst, SeqCst, |n| {
                let after = n.wrapping_sub(1);
                (after < MAX_PERMITS).then_some(after)
            })
            .is_ok()
    }

    /// Changes the size to `max` (1 to [`MAX_PERMITS`]). Shrinking takes the difference off
    /// the free count at once, so no new permit is handed out above the new size while the
    /// permits held above it finish and are retired as they come back; growing adds it and hands
    /// the new room to the waiters at the head of the queue at once.
    pub(crate) fn resize(self: &Arc<Self>, max: usize) {
        // The queue's lock serialises resizes, and a grow serves the queue under it.
        let mut waiters = self.waiters.lock();
        let old = self.max.load(SeqCst);
        if max < old {
            self.available.fetch_sub(old - max, SeqCst);
            self.max.fetch_sub(old - max, SeqCst);
        } else if max > old {
            self.max.fetch_add(max - old, SeqCst);
            self.available.fetch_add(max - old, SeqCst);
            self.serve(&mut waiters);
        }
    }

    /// Joins the back of the queue if fewer than `max_queue` requests wait; the waiter may be
    /// served at once if a permit is free and nobody is ahead of it.
    pub(crate) fn enqueue(self: &Arc<Self>, max_queue: usize) -> Option<Waiter<P>> {
        let mut waiters = self.waiters.lock();
        if !bounded_increment(&self.queued, max_queue) {
            return None;
        }
        // Waiters that gave up leave a closed sender behind; sweep them now and then so the
        // queue's memory stays proportional to the live waiters.
        if waiters.len() >= 64 && waiters.len() >= 2 * self.queued.load(SeqCst) {
            waiters.retain(|tx| !tx.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        waiters.push_back(tx);
        self.serve(&mut waiters);
        drop(waiters);
        Some(Waiter {
            rx,
            _slot: QueueSlot(Arc::clone(self)),
        })
    }

    /// Hands free permits to the waiters at the head of the queue. Called with the lock held.
    fn serve(self: &Arc<Self>, waiters: &mut Queue<P>) {
        while let Some(front) = waiters.front() {
            if front.is_closed() {
                waiters.pop_front();
                continue;
            }
            if !self.take() {
                return;
            }
            if let Some(tx) = waiters.pop_front()
                && let Err(permit) = tx.send(Held::new(self))
            {
                // The waiter gave up in between: the permit goes back, not through `Drop`
                // (which would take the lock we hold), and the loop offers it to the next one.
                permit.give_back();
            }
        }
    }

    #[inline]
    fn release(self: &Arc<Self>) {
        self.available.fetch_add(1, SeqCst);
        if self.queued.load(SeqCst) != 0 {
            self.serve_queue();
        }
        if let Some(pool) = &self.lends_from {
            pool.release();
        }
    }

    /// The slow half of a release: somebody is queued.
    #[cold]
    #[inline(never)]
    fn serve_queue(self: &Arc<Self>) {
        let mut waiters = self.waiters.lock();
        self.serve(&mut waiters);
    }

    #[cfg(test)]
    fn queue_len(&self) -> usize {
        self.waiters.lock().len()
    }
}

/// A taken permit of a core: dropping it releases it, once, to the first queued waiter or back
/// to the pool. The library hands it out wrapped in [`Permit`].
pub(crate) struct Held<P: Primitives> {
    core: Option<Arc<Core<P>>>,
}

impl<P: Primitives> Held<P> {
    #[inline]
    fn new(core: &Arc<Core<P>>) -> Self {
        Self {
            core: Some(Arc::clone(core)),
        }
    }

    /// Returns the permit to the pool without serving the queue (the caller holds the lock).
    fn give_back(mut self) {
        if let Some(core) = self.core.take() {
            // Only queue cores hand permits over, and a queue core lends from no pool.
            core.available.fetch_add(1, SeqCst);
        }
    }
}

impl<P: Primitives> Drop for Held<P> {
    #[inline]
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.release();
        }
    }
}

/// One of a bulkhead's permits: while it lives, one call is in flight. Dropping it releases the
/// permit, exactly once, to the first queued waiter or back to the pool.
///
/// It appears in the response body type of an HTTP bulkhead
/// ([`Http`](weir_core::protocol::Http) mode: `GuardedBody<B, Option<Permit>>`), which holds it until the body
/// ends.
pub struct Permit {
    _held: Held<Std>,
}

impl From<Held<Std>> for Permit {
    #[inline]
    fn from(held: Held<Std>) -> Self {
        Self { _held: held }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// A place in the queue: a receiver the permit is handed to, and the queue count it holds.
pub(crate) struct Waiter<P: Primitives = Std> {
    rx: oneshot::Receiver<Held<P>>,
    _slot: QueueSlot<P>,
}

impl<P: Primitives> Waiter<P> {
    /// `Ready(Some(permit))` once served; `Ready(None)` only if the queue was dropped (it cannot
    /// be while this waiter holds the core).
    pub(crate) fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Option<P::Permit>> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|served| served.ok().map(Into::into))
    }
}

impl<P: Primitives> fmt::Debug for Waiter<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

/// Counts one live waiter; leaving the queue (served, timed out, cancelled) uncounts it.
struct QueueSlot<P: Primitives>(Arc<Core<P>>);

impl<P: Primitives> Drop for QueueSlot<P> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests;
