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
//! The core is written once against the [`Primitives`] of [`crate::sync`]: `std`'s in the
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

use crate::state::bounded_increment;
use crate::sync::{Counter, Lock, Primitives, Std};

type Queue<P> = VecDeque<oneshot::Sender<Held<P>>>;

/// The shared state of one bulkhead (or of one partition).
pub(crate) struct Core<P: Primitives = Std> {
    max: usize,
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
            max,
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

    pub(crate) const fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn available(&self) -> usize {
        self.available.load(SeqCst)
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

    #[inline]
    fn take(&self) -> bool {
        self.available
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
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
/// ([`Http`](crate::Http) mode: `GuardedBody<B, Option<Permit>>`), which holds it until the body
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
mod tests {
    use super::*;
    use tokio_test::task;

    type Core = super::Core<Std>;
    type Waiter = super::Waiter<Std>;
    use tokio_test::{assert_pending, assert_ready};

    #[test]
    fn permits_come_back_when_dropped() {
        let core = Core::new(2);
        let a = core.try_acquire().unwrap();
        let b = core.try_acquire().unwrap();
        assert!(core.try_acquire().is_none());
        assert_eq!(core.available(), 0);
        drop(a);
        assert_eq!(core.available(), 1);
        drop(b);
        assert_eq!(core.available(), 2);
    }

    #[test]
    fn a_released_permit_goes_to_the_oldest_waiter() {
        let core = Core::new(1);
        let held = core.try_acquire().unwrap();
        let mut first = core.enqueue(2).unwrap();
        let mut second = core.enqueue(2).unwrap();
        assert!(core.enqueue(2).is_none(), "the queue holds 2");
        assert_eq!(core.queued(), 2);

        let mut first_task = task::spawn(());
        let mut second_task = task::spawn(());
        assert_pending!(first_task.enter(|cx, _| first.poll_permit(cx)));
        assert_pending!(second_task.enter(|cx, _| second.poll_permit(cx)));

        drop(held);
        assert!(first_task.is_woken());
        assert!(!second_task.is_woken());
        let permit = assert_ready!(first_task.enter(|cx, _| first.poll_permit(cx))).unwrap();
        drop(first);
        assert_eq!(core.queued(), 1);
        // Not free for a newcomer while somebody waits.
        assert_eq!(core.available(), 0);
        assert!(core.try_acquire().is_none());
        drop(permit);
        let last = assert_ready!(second_task.enter(|cx, _| second.poll_permit(cx))).unwrap();
        drop(second);
        drop(last);
        assert_eq!((core.available(), core.queued()), (1, 0));
    }

    #[test]
    fn a_cancelled_waiter_passes_its_permit_on() {
        let core = Core::new(1);
        let held = core.try_acquire().unwrap();
        let gone = core.enqueue(4).unwrap();
        let mut next = core.enqueue(4).unwrap();
        drop(held);
        // `gone` was served but never looked: dropping it releases the permit to `next`.
        drop(gone);
        let mut t = task::spawn(());
        let permit = assert_ready!(t.enter(|cx, _| next.poll_permit(cx))).unwrap();
        drop(next);
        drop(permit);
        assert_eq!((core.available(), core.queued()), (1, 0));
    }

    #[test]
    fn a_waiter_is_served_at_once_when_a_permit_is_free() {
        let core = Core::new(1);
        let mut w = core.enqueue(1).unwrap();
        let mut t = task::spawn(());
        let permit = assert_ready!(t.enter(|cx, _| w.poll_permit(cx))).unwrap();
        assert_eq!(core.available(), 0);
        drop(w);
        drop(permit);
        assert_eq!(core.available(), 1);
    }

    #[test]
    fn closed_senders_are_swept() {
        let core = Core::new(1);
        let _held = core.try_acquire().unwrap();
        for _ in 0..1000 {
            drop(core.enqueue(4).unwrap());
        }
        assert!(core.queue_len() < 200, "{}", core.queue_len());
        assert_eq!(core.queued(), 0);
    }

    /// The race the core exists to win: the last permit is released on one thread while a
    /// waiter joins the queue on another. Whatever the interleaving, the waiter must be served
    /// (no lost wake-up), and afterwards every permit must be back. Lined up by a barrier
    /// 20 000 times on real threads (alongside the shuttle model tests below, on real hardware).
    #[test]
    fn release_racing_enqueue_never_strands_a_waiter() {
        use std::sync::Barrier;
        use std::task::Waker;
        use std::thread;

        let barrier = Arc::new(Barrier::new(2));
        for round in 0..20_000 {
            let core = Core::new(1);
            let held = core.try_acquire().unwrap();
            let releaser = {
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    drop(held);
                })
            };
            barrier.wait();
            let mut waiter = core.enqueue(1).unwrap();
            releaser.join().unwrap();
            // The release has happened: the permit must be in the waiter's hands now.
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(Some(permit)) = waiter.poll_permit(&mut cx) else {
                panic!(
                    "round {round}: the waiter was stranded: {} available",
                    core.available()
                );
            };
            drop(waiter);
            drop(permit);
            assert_eq!((core.available(), core.queued()), (1, 0), "round {round}");
        }
    }

    /// Cancellation racing the hand-over: a waiter dropped on one thread while the permit is
    /// released to it on another; the permit must come back exactly once either way.
    #[test]
    fn cancel_racing_release_returns_the_permit_exactly_once() {
        use std::sync::Barrier;
        use std::thread;

        let barrier = Arc::new(Barrier::new(2));
        for round in 0..20_000 {
            let core = Core::new(2);
            let held = core.try_acquire().unwrap();
            let other = core.try_acquire().unwrap();
            let waiter = core.enqueue(1).unwrap();
            let releaser = {
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    barrier.wait();
                    drop(held);
                })
            };
            barrier.wait();
            drop(waiter);
            releaser.join().unwrap();
            assert_eq!((core.available(), core.queued()), (1, 0), "round {round}");
            drop(other);
            assert_eq!(core.available(), 2, "round {round}");
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Acquire,
        Enqueue,
        Release(usize),
        Cancel(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Op::Acquire),
            Just(Op::Enqueue),
            (0_usize..8).prop_map(Op::Release),
            (0_usize..8).prop_map(Op::Cancel),
        ]
    }

    proptest::proptest! {
        /// Any sequence of acquires, enqueues, releases and cancellations keeps the books:
        /// permits free + permits held == max; a waiter is never left waiting while a permit is
        /// free; waiters are served strictly in arrival order; every permit comes back.
        #[test]
        fn the_books_always_balance(max in 1_usize..4, max_queue in 1_usize..4, ops in proptest::collection::vec(op(), 1..60)) {
            use std::task::Waker;
            let core = Core::new(max);
            let mut held: Vec<Permit> = Vec::new();
            // (arrival number, waiter)
            let mut waiting: Vec<(usize, Waiter)> = Vec::new();
            let mut arrivals = 0;
            let mut served_order = Vec::new();
            let mut cx = Context::from_waker(Waker::noop());
            for op in ops {
                match op {
                    Op::Acquire => held.extend(core.try_acquire()),
                    Op::Enqueue => {
                        if let Some(w) = core.enqueue(max_queue) {
                            waiting.push((arrivals, w));
                            arrivals += 1;
                        }
                    }
                    Op::Release(i) => {
                        if !held.is_empty() {
                            drop(held.remove(i % held.len()));
                        }
                    }
                    Op::Cancel(i) => {
                        if !waiting.is_empty() {
                            drop(waiting.remove(i % waiting.len()));
                        }
                    }
                }
                // Collect every permit handed over so far, in queue order.
                let mut still = Vec::new();
                for (n, mut w) in waiting.drain(..) {
                    match w.poll_permit(&mut cx) {
                        Poll::Ready(Some(p)) => {
                            served_order.push(n);
                            held.push(p);
                        }
                        Poll::Ready(None) => proptest::prop_assert!(false, "queue dropped"),
                        Poll::Pending => still.push((n, w)),
                    }
                }
                waiting = still;
                proptest::prop_assert_eq!(core.available() + held.len(), max);
                if !waiting.is_empty() {
                    proptest::prop_assert_eq!(core.available(), 0, "a waiter stranded");
                }
                proptest::prop_assert_eq!(core.queued(), waiting.len());
                proptest::prop_assert!(
                    served_order.windows(2).all(|w| w[0] < w[1]),
                    "served out of order: {:?}", served_order
                );
            }
            drop(waiting);
            drop(held);
            proptest::prop_assert_eq!((core.available(), core.queued()), (max, 0));
        }
    }

    /// Model tests: the core above, instantiated with `shuttle`'s primitives, run under
    /// shuttle's scheduler, which switches threads at every atomic and lock operation. The
    /// small races (two or three threads, a few operations each) are explored exhaustively
    /// (`check_dfs`: every interleaving); the three-client mix of acquires, waits,
    /// cancellations and releases by shuttle's randomized PCT scheduler (10 000 schedules).
    /// A lock taken twice (a release inside the lock) shows as a deadlock, a lost wake-up as a
    /// stranded waiter, a double release as more permits than `max`: each of the first two
    /// was checked to fail these tests when put into the core on purpose.
    mod model {
        use std::task::{Context, Poll, Waker};

        use shuttle::sync::atomic::AtomicUsize;
        use shuttle::thread;

        use super::super::{Core, Held, Waiter};
        use crate::sync::model::Shuttle;
        use std::sync::Arc;
        use std::sync::atomic::Ordering::SeqCst;

        type ModelCore = Core<Shuttle>;

        fn poll(waiter: &mut Waiter<Shuttle>) -> Poll<Option<Held<Shuttle>>> {
            waiter.poll_permit(&mut Context::from_waker(Waker::noop()))
        }

        fn assert_balanced(core: &ModelCore, max: usize) {
            assert_eq!((core.available(), core.queued()), (max, 0));
        }

        /// A release on one thread, a waiter joining the queue on the other: the waiter is
        /// served whatever the interleaving, and the permit comes back once.
        #[test]
        fn release_racing_enqueue_never_strands_a_waiter() {
            shuttle::check_dfs(
                || {
                    let core = ModelCore::new(1);
                    let held = core.try_acquire().expect("a free permit");
                    let releaser = thread::spawn(move || drop(held));
                    let mut waiter = core.enqueue(1).expect("room in the queue");
                    releaser.join().expect("the releaser ran");
                    let Poll::Ready(Some(permit)) = poll(&mut waiter) else {
                        panic!("the waiter was stranded: {} available", core.available());
                    };
                    drop(waiter);
                    drop(permit);
                    assert_balanced(&core, 1);
                },
                None,
            );
        }

        /// A waiter cancelled (after at most one look) while the permit is released to it:
        /// the permit goes to the next in line, or back to the pool, exactly once.
        #[test]
        fn cancel_racing_release_passes_the_permit_on_exactly_once() {
            shuttle::check_dfs(
                || {
                    let core = ModelCore::new(1);
                    let held = core.try_acquire().expect("a free permit");
                    let mut first = core.enqueue(2).expect("room in the queue");
                    let mut second = core.enqueue(2).expect("room in the queue");
                    let releaser = thread::spawn(move || drop(held));
                    // The first waiter looks once, then gives up (its wait ran out), dropping
                    // whatever it was handed.
                    let looked = poll(&mut first);
                    drop(first);
                    drop(looked);
                    releaser.join().expect("the releaser ran");
                    let Poll::Ready(Some(permit)) = poll(&mut second) else {
                        panic!(
                            "the next waiter was stranded: {} available",
                            core.available()
                        );
                    };
                    assert_eq!(core.available(), 0);
                    drop(second);
                    drop(permit);
                    assert_balanced(&core, 1);
                },
                None,
            );
        }

        /// Two releases racing a cancellation, with a waiter dropped on a third party's
        /// thread: still exactly one permit back per permit taken.
        #[test]
        fn concurrent_releases_and_cancellations_keep_the_books() {
            shuttle::check_dfs(
                || {
                    let core = ModelCore::new(2);
                    let a = core.try_acquire().expect("a free permit");
                    let b = core.try_acquire().expect("a free permit");
                    let waiter = core.enqueue(1).expect("room in the queue");
                    let ra = thread::spawn(move || drop(a));
                    let rb = thread::spawn(move || drop(b));
                    drop(waiter);
                    ra.join().expect("ran");
                    rb.join().expect("ran");
                    assert_balanced(&core, 2);
                },
                None,
            );
        }

        /// Three clients, two rounds each, on two permits and a queue of two: each takes a
        /// free permit or queues, a queued one looks a few times and gives up if not served,
        /// a served one runs and releases. At no point do more than two run or more than two
        /// permits sit free; at the end every permit is back and nobody is counted as queued.
        #[test]
        fn acquire_wait_cancel_release_mix_keeps_the_books() {
            const MAX: usize = 2;
            shuttle::check_pct(
                || {
                    let core = ModelCore::new(MAX);
                    let running = Arc::new(AtomicUsize::new(0));
                    let clients: Vec<_> = (0..3)
                        .map(|_| {
                            let core = Arc::clone(&core);
                            let running = Arc::clone(&running);
                            thread::spawn(move || {
                                for _ in 0..2 {
                                    let permit = match core.try_acquire() {
                                        Some(permit) => Some(permit),
                                        None => core.enqueue(2).and_then(|mut waiter| {
                                            (0..3).find_map(|_| match poll(&mut waiter) {
                                                Poll::Ready(permit) => Some(permit),
                                                Poll::Pending => {
                                                    thread::yield_now();
                                                    None
                                                }
                                            })?
                                        }),
                                    };
                                    assert!(core.available() <= MAX, "a permit released twice");
                                    if let Some(permit) = permit {
                                        let now = running.fetch_add(1, SeqCst) + 1;
                                        assert!(now <= MAX, "{now} running at once");
                                        thread::yield_now();
                                        running.fetch_sub(1, SeqCst);
                                        drop(permit);
                                    }
                                    assert!(core.available() <= MAX, "a permit released twice");
                                }
                            })
                        })
                        .collect();
                    for client in clients {
                        client.join().expect("the client ran");
                    }
                    assert_balanced(&core, MAX);
                },
                10_000,
                3,
            );
        }

        /// Partitions borrowing from one shared pool while the pool's own permit is taken
        /// and given back: the pool never lends more than it has, and every loan comes back
        /// to both the allowance and the pool.
        #[test]
        fn loans_come_back_to_the_pool_exactly_once() {
            shuttle::check_dfs(
                || {
                    let pool = ModelCore::new(1);
                    let lenders = [ModelCore::lender(1, &pool), ModelCore::lender(1, &pool)];
                    let out = Arc::new(AtomicUsize::new(0));
                    let borrow = |lender: &Arc<ModelCore>, out: &AtomicUsize| {
                        if let Some(loan) = lender.try_borrow() {
                            let now = out.fetch_add(1, SeqCst) + 1;
                            assert!(now <= 1, "the pool lent {now} of its 1 permit");
                            out.fetch_sub(1, SeqCst);
                            drop(loan);
                        }
                    };
                    let other = {
                        let lender = Arc::clone(&lenders[1]);
                        let out = Arc::clone(&out);
                        thread::spawn(move || borrow(&lender, &out))
                    };
                    borrow(&lenders[0], &out);
                    other.join().expect("the borrower ran");
                    assert_balanced(&pool, 1);
                    for lender in &lenders {
                        assert_balanced(lender, 1);
                    }
                },
                None,
            );
        }
    }
}
