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

#[test]
fn a_shrink_retires_the_permits_held_above_the_new_size() {
    let core = Core::new(3);
    let held: Vec<_> = (0..3).map(|_| core.try_acquire().unwrap()).collect();
    let mut waiter = core.enqueue(4).unwrap();
    core.resize(1);
    assert_eq!((core.max(), core.in_flight(), core.available()), (1, 3, 0));
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| waiter.poll_permit(cx)));
    let mut held = held.into_iter();
    // The first two permits back are retired, not handed to the waiter.
    drop(held.next());
    drop(held.next());
    assert_eq!((core.in_flight(), core.available()), (1, 0));
    assert!(!t.is_woken(), "a retired permit went to a waiter");
    // The third comes back to a bulkhead of 1 with one waiter: it is handed over.
    drop(held.next());
    let permit = assert_ready!(t.enter(|cx, _| waiter.poll_permit(cx))).unwrap();
    assert_eq!(core.in_flight(), 1);
    drop(waiter);
    drop(permit);
    assert_eq!(
        (core.available(), core.in_flight(), core.queued()),
        (1, 0, 0)
    );
}

#[test]
fn a_growth_serves_as_many_waiters_as_it_has_new_room_for() {
    let core = Core::new(1);
    let held = core.try_acquire().unwrap();
    let mut waiters: Vec<_> = (0..3).map(|_| core.enqueue(4).unwrap()).collect();
    let mut tasks: Vec<_> = (0..3).map(|_| task::spawn(())).collect();
    for (t, w) in tasks.iter_mut().zip(&mut waiters) {
        assert_pending!(t.enter(|cx, _| w.poll_permit(cx)));
    }
    core.resize(3);
    assert!(tasks[0].is_woken() && tasks[1].is_woken() && !tasks[2].is_woken());
    let a = assert_ready!(tasks[0].enter(|cx, _| waiters[0].poll_permit(cx))).unwrap();
    let b = assert_ready!(tasks[1].enter(|cx, _| waiters[1].poll_permit(cx))).unwrap();
    assert_pending!(tasks[2].enter(|cx, _| waiters[2].poll_permit(cx)));
    assert_eq!((core.in_flight(), core.available()), (3, 0));
    drop(held);
    let c = assert_ready!(tasks[2].enter(|cx, _| waiters[2].poll_permit(cx))).unwrap();
    drop(waiters);
    drop((a, b, c));
    assert_eq!(
        (core.available(), core.in_flight(), core.queued()),
        (3, 0, 0)
    );
}

#[test]
fn a_shrink_then_growth_before_the_permits_come_back_keeps_the_books() {
    let core = Core::new(4);
    let held: Vec<_> = (0..4).map(|_| core.try_acquire().unwrap()).collect();
    core.resize(1);
    core.resize(2);
    assert!(core.try_acquire().is_none(), "4 held, 2 allowed");
    drop(held);
    assert_eq!((core.available(), core.in_flight()), (2, 0));
    let a = core.try_acquire().unwrap();
    let b = core.try_acquire().unwrap();
    assert!(core.try_acquire().is_none());
    drop((a, b));
    assert_eq!(core.available(), 2);
}

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Enqueue,
    Release(usize),
    Cancel(usize),
    Resize(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Op::Acquire),
        Just(Op::Enqueue),
        (0_usize..8).prop_map(Op::Release),
        (0_usize..8).prop_map(Op::Cancel),
        (1_usize..5).prop_map(Op::Resize),
    ]
}

proptest::proptest! {
    /// Any sequence of acquires, enqueues, releases, cancellations and resizes keeps the
    /// books: permits free + permits held == the size, once the permits above a shrunk size
    /// have come back, and never more held than the larger of the size and what was held when
    /// it shrank; a waiter is never left waiting while a permit is
    /// free; waiters are served strictly in arrival order; every permit comes back.
    #[test]
    fn the_books_always_balance(max in 1_usize..4, max_queue in 1_usize..4, ops in proptest::collection::vec(op(), 1..60)) {
        use std::task::Waker;
        let core = Core::new(max);
        // The size now, and the most permits that may be held (above the size only after a
        // shrink, until the permits above it come back).
        let mut size = max;
        let mut allowed = max;
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
                Op::Resize(n) => {
                    core.resize(n);
                    size = n;
                    allowed = allowed.max(n);
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
            proptest::prop_assert!(held.len() <= allowed, "{} held, {} allowed", held.len(), allowed);
            allowed = size.max(held.len());
            proptest::prop_assert_eq!(core.in_flight(), held.len());
            proptest::prop_assert_eq!(core.available(), size.saturating_sub(held.len()));
            proptest::prop_assert_eq!(core.max(), size);
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
        proptest::prop_assert_eq!((core.available(), core.queued()), (size, 0));
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

    use shuttle::sync::Mutex;

    use super::super::{Core, Held, Primitives, Waiter};
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    /// `shuttle::sync`: the core's atomics and lock as scheduling points of shuttle's model
    /// checker (their `Counter` and `Lock` impls are in `crate::sync::model`).
    #[derive(Debug)]
    struct Shuttle;

    impl Primitives for Shuttle {
        type Counter = AtomicUsize;
        type Lock<T> = Mutex<T>;
        type Permit = Held<Self>;
    }

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

    /// A shrink (issue #25) racing three clients that take free permits or wait for them,
    /// run and release: no client ever runs with more than the old size running, none that
    /// started after the shrink returned runs above the new size (the permits held above it are
    /// retired as they come back, not handed on), and at the end every permit is back at the
    /// new size: none lost, none doubled.
    #[test]
    fn a_shrink_racing_acquires_and_releases_never_admits_above_the_new_size() {
        use shuttle::sync::atomic::AtomicBool;
        const OLD: usize = 3;
        const NEW: usize = 1;
        shuttle::check_pct(
            || {
                let core = ModelCore::new(OLD);
                let running = Arc::new(AtomicUsize::new(0));
                let shrunk = Arc::new(AtomicBool::new(false));
                let clients: Vec<_> = (0..3)
                    .map(|_| {
                        let core = Arc::clone(&core);
                        let running = Arc::clone(&running);
                        let shrunk = Arc::clone(&shrunk);
                        thread::spawn(move || {
                            for _ in 0..2 {
                                let after = shrunk.load(SeqCst);
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
                                if let Some(permit) = permit {
                                    let now = running.fetch_add(1, SeqCst) + 1;
                                    assert!(now <= OLD, "{now} running on {OLD} permits");
                                    assert!(
                                        !after || now <= NEW,
                                        "{now} running after the shrink to {NEW}"
                                    );
                                    thread::yield_now();
                                    running.fetch_sub(1, SeqCst);
                                    drop(permit);
                                }
                            }
                        })
                    })
                    .collect();
                thread::yield_now();
                core.resize(NEW);
                shrunk.store(true, SeqCst);
                for client in clients {
                    client.join().expect("the client ran");
                }
                assert_eq!(core.in_flight(), 0);
                assert_balanced(&core, NEW);
            },
            10_000,
            3,
        );
    }

    /// A growth racing the release of the only permit, with two waiters: whatever the order,
    /// both are served (the growth hands its new room over at once, the release its permit),
    /// and every permit comes back to the new size.
    #[test]
    fn a_growth_racing_a_release_serves_every_waiter_it_has_room_for() {
        shuttle::check_dfs(
            || {
                let core = ModelCore::new(1);
                let held = core.try_acquire().expect("a free permit");
                let mut first = core.enqueue(2).expect("room in the queue");
                let mut second = core.enqueue(2).expect("room in the queue");
                let grower = {
                    let core = Arc::clone(&core);
                    thread::spawn(move || core.resize(2))
                };
                let releaser = thread::spawn(move || drop(held));
                grower.join().expect("the grower ran");
                releaser.join().expect("the releaser ran");
                let (Poll::Ready(Some(a)), Poll::Ready(Some(b))) =
                    (poll(&mut first), poll(&mut second))
                else {
                    panic!("a waiter was stranded: {} available", core.available());
                };
                assert_eq!(core.available(), 0);
                drop((first, second));
                drop((a, b));
                assert_balanced(&core, 2);
            },
            None,
        );
    }

    /// A shrink and a growth racing each other and a release (10 000 PCT schedules: the
    /// exhaustive search of three threads taking the queue's lock is too long): the size ends
    /// at whichever resize ran last, and the permits balance at it.
    #[test]
    fn resizes_racing_a_release_keep_the_books() {
        shuttle::check_pct(
            || {
                let core = ModelCore::new(2);
                let a = core.try_acquire().expect("a free permit");
                let b = core.try_acquire().expect("a free permit");
                let shrink = {
                    let core = Arc::clone(&core);
                    thread::spawn(move || core.resize(1))
                };
                let grow = {
                    let core = Arc::clone(&core);
                    thread::spawn(move || core.resize(3))
                };
                let release = thread::spawn(move || drop(a));
                shrink.join().expect("ran");
                grow.join().expect("ran");
                release.join().expect("ran");
                let size = core.max();
                assert!(size == 1 || size == 3, "size {size}");
                assert_eq!(core.in_flight(), 1);
                drop(b);
                assert_balanced(&core, size);
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
