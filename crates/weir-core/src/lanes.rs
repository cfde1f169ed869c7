//! Lanes: a per-thread way for response futures to hold a layer's shared state.
//!
//! A layer whose response future must reach its shared state after `call` returns (to run a
//! fallback, send a hedge, record an outcome) holds it by an `Arc`, and an `Arc` clone writes
//! the reference count: were every future to clone one `Arc`, every call on every thread would
//! write that one cache line, and two threads on one layer would wait on each other for it.
//! [`Lanes`] gives each thread an `Arc` of its own to clone: several [`Lane`]s, each a counted
//! reference to the one shared state, each count on a 128-byte block of its own (adjacent-line
//! prefetching pairs lines), written only by the threads that share that lane (consecutive
//! threads, a runtime's workers, take different lanes). The cost on one thread is one
//! thread-local read and one more pointer to follow; on several, the cache line is no longer
//! shared.
//!
//! [`thread_index`] is the same per-thread number, for state striped by thread (counters summed
//! when read).
//!
//! [`Prototype`] is what a layer that calls its inner service again from its response future (a
//! retry, a hedge) puts in its lanes: the shared state and one copy of the inner service, so a
//! call clones no service, and a retry or a hedge clones the copy.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Lane slots per [`Lanes`]: the largest number of lanes.
const SLOTS: usize = 64;

/// The next thread's number.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number plus one; 0 until it is first asked for.
    static THREAD: Cell<usize> = const { Cell::new(0) };
}

/// This thread's number: 0, 1, 2, ... in the order threads first ask (consecutive threads, a
/// runtime's workers, get consecutive numbers). One thread-local read after the first call.
#[inline]
#[must_use]
pub fn thread_index() -> usize {
    let n = THREAD.get();
    if n != 0 {
        return n - 1;
    }
    first_index()
}

/// A thread's first [`thread_index`]: its number taken and kept.
#[cold]
#[inline(never)]
fn first_index() -> usize {
    let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    THREAD.set(n.wrapping_add(1).max(1));
    n
}

/// Lanes per [`Lanes`]: twice the available parallelism, a power of two in `4..=SLOTS`.
fn lane_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .saturating_mul(2)
        .clamp(4, SLOTS)
        .next_power_of_two()
}

/// One lane: a counted reference to the shared state, alone on its 128-byte block, so that the
/// count of the `Arc<Lane<T>>` a future clones is written only by this lane's threads.
/// Dereferences to the shared state.
#[repr(align(128))]
pub struct Lane<T> {
    shared: Arc<T>,
    index: usize,
}

impl<T> Lane<T> {
    /// The shared state's own `Arc`.
    #[must_use]
    pub const fn shared(&self) -> &Arc<T> {
        &self.shared
    }

    /// This lane's number, `0..lanes`: a stripe for state striped by thread, already known to
    /// a future holding the lane (no second thread-local read).
    #[inline]
    #[must_use]
    pub const fn index(&self) -> usize {
        self.index
    }
}

impl<T> Deref for Lane<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.shared
    }
}

impl<T: fmt::Debug> fmt::Debug for Lane<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lane").field(&self.shared).finish()
    }
}

/// A layer's shared state with its lanes: what its services hold (behind an `Arc`, built once
/// per layer); a call clones [`pick`](Self::pick)'s lane into its future.
pub struct Lanes<T> {
    /// Thread `t` takes `slots[t % SLOTS]`, which is lane `t % lane_count()` (slot `i` holds
    /// lane `i % lane_count()`; a power of two no larger than `SLOTS` divides it): an array, so
    /// a call indexes it with a mask and no bounds check.
    slots: [Arc<Lane<T>>; SLOTS],
}

impl<T> Lanes<T> {
    /// Lanes to `shared`: twice the available parallelism of them (a power of two, 4 to 64),
    /// each on 256 bytes (its count's block and its pointer's).
    #[must_use]
    pub fn new(shared: Arc<T>) -> Self {
        let lanes: Vec<_> = (0..lane_count())
            .map(|index| {
                Arc::new(Lane {
                    shared: Arc::clone(&shared),
                    index,
                })
            })
            .collect();
        Self {
            slots: std::array::from_fn(|i| Arc::clone(&lanes[i % lanes.len()])),
        }
    }

    /// This thread's lane: clone it into a future (an atomic add on this lane's count alone).
    #[inline]
    #[must_use]
    pub fn pick(&self) -> &Arc<Lane<T>> {
        &self.slots[thread_index() % SLOTS]
    }

    /// The shared state (read through any lane).
    #[inline]
    #[must_use]
    pub fn shared(&self) -> &Arc<T> {
        &self.slots[0].shared
    }

    /// How many distinct lanes there are.
    #[must_use]
    pub fn lanes(&self) -> usize {
        lane_count_of(&self.slots)
    }
}

/// The distinct lanes among `slots` (slot `i` holds lane `i % count`).
fn lane_count_of<T>(slots: &[Arc<Lane<T>>; SLOTS]) -> usize {
    slots
        .iter()
        .skip(1)
        .position(|lane| Arc::ptr_eq(lane, &slots[0]))
        .map_or(SLOTS, |i| i + 1)
}

impl<T> Deref for Lanes<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        self.shared()
    }
}

impl<T: fmt::Debug> fmt::Debug for Lanes<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lanes")
            .field("shared", self.shared())
            .field("lanes", &self.lanes())
            .finish()
    }
}

/// A layer's shared state and a copy of the inner service one `layer()` call was given: what
/// the services it makes, their clones and their response futures share (through
/// [`Lanes`]), so that a call clones no service and a future that must call the inner service
/// again (a retry, a hedge) clones [`instance`](Self::instance) then. Cloning the inner service
/// on every call would write one reference count for every `Arc` in the stack below (a breaker,
/// a bulkhead, a transport's pool), counts that every thread shares.
///
/// The copy is behind a mutex so that the futures are `Send` for any `Send` service (a
/// `BoxCloneService` is not `Sync`); it is locked only by [`instance`](Self::instance), never
/// on a call. Dereferences to the shared state.
pub struct Prototype<T, S> {
    shared: Arc<T>,
    service: Mutex<S>,
}

impl<T, S: Clone> Prototype<T, S> {
    /// The shared state and a clone of `service`.
    pub fn new(shared: Arc<T>, service: &S) -> Self {
        Self {
            shared,
            service: Mutex::new(service.clone()),
        }
    }

    /// A new instance of the inner service, as it was given to the layer (not readied).
    pub fn instance(&self) -> S {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<T, S> Prototype<T, S> {
    /// The shared state's own `Arc`.
    #[must_use]
    pub const fn shared(&self) -> &Arc<T> {
        &self.shared
    }
}

impl<T, S> Deref for Prototype<T, S> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.shared
    }
}

impl<T: fmt::Debug, S> fmt::Debug for Prototype<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prototype")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_take_their_own_lanes_and_every_lane_reaches_the_state() {
        let shared = Arc::new(7_u32);
        let lanes = Lanes::new(Arc::clone(&shared));
        let count = lanes.lanes();
        assert!(
            count.is_power_of_two() && (4..=SLOTS).contains(&count),
            "{count}"
        );
        // One count for `shared`, one per lane.
        assert_eq!(Arc::strong_count(&shared), 1 + count);
        assert_eq!(***lanes.pick(), 7);
        assert!(Arc::ptr_eq(
            lanes.pick(),
            &lanes.slots[thread_index() % SLOTS]
        ));
        // Consecutive thread numbers take different lanes, and slot `i` is lane `i % count`.
        for i in 0..SLOTS {
            assert!(!Arc::ptr_eq(&lanes.slots[i], &lanes.slots[(i + 1) % SLOTS]));
            assert!(Arc::ptr_eq(&lanes.slots[i], &lanes.slots[i % count]));
            assert_eq!(lanes.slots[i].index(), i % count);
        }
        // Another thread's lane is the slot of its own number.
        let (index, lane) = std::thread::scope(|s| {
            s.spawn(|| (thread_index(), Arc::as_ptr(lanes.pick()) as usize))
                .join()
                .unwrap()
        });
        assert_eq!(lane, Arc::as_ptr(&lanes.slots[index % SLOTS]) as usize);
        drop(lanes);
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn a_thread_keeps_its_index() {
        let mine = thread_index();
        assert_eq!(thread_index(), mine);
        let theirs = std::thread::spawn(thread_index).join().unwrap();
        assert_ne!(theirs, mine);
    }
}
