//! The sliding windows the rates are judged over: a count window (the last `n` calls, a ring
//! that truly slides) and a time window (buckets of a fixed period), both of atomic counters.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sync::{AtomicU8, AtomicU32, AtomicU64};

use super::vocabulary::{Counts, WindowKind};

pub(super) const PRESENT: u8 = 1;
pub(super) const FAILED: u8 = 2;
pub(super) const SLOW: u8 = 4;

pub(super) const fn code(failed: bool, slow: bool) -> u8 {
    PRESENT | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 }
}

/// Running counters, never negative: every decrement matches an increment that happened before
/// it (see [`CountWindow::record`]), except across a reset racing a late recorder, which the
/// clamping on read absorbs.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) total: AtomicU32,
    pub(super) failures: AtomicU32,
    pub(super) slow: AtomicU32,
}

impl Counters {
    pub(super) fn add(&self, code: u8) {
        if code & PRESENT != 0 {
            self.total.fetch_add(1, Ordering::Relaxed);
            if code & FAILED != 0 {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            if code & SLOW != 0 {
                self.slow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn sub(&self, code: u8) {
        if code & PRESENT != 0 {
            self.total.fetch_sub(1, Ordering::Relaxed);
            if code & FAILED != 0 {
                self.failures.fetch_sub(1, Ordering::Relaxed);
            }
            if code & SLOW != 0 {
                self.slow.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn clear(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
    }

    /// The counts, each read as a signed number and clamped to `[0, cap]`.
    pub(super) fn read(&self, cap: u64) -> Counts {
        let read = |c: &AtomicU32| {
            let v = c.load(Ordering::Relaxed).cast_signed();
            u64::from(v.max(0).cast_unsigned()).min(cap)
        };
        Counts {
            total: read(&self.total),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }
}

/// The last `n` calls: a ring of outcome codes and running counters. The outcome falling out of
/// the window is subtracted, so the window truly slides.
#[derive(Debug)]
pub(super) struct CountWindow {
    pub(super) slots: Box<[AtomicU8]>,
    pub(super) next: AtomicU64,
    pub(super) counters: Counters,
}

impl CountWindow {
    pub(super) fn new(n: u32) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// Every slot holds a success (neither failed nor slow).
    #[inline]
    pub(super) fn full_of_successes(&self) -> bool {
        // `&`, not `&&`: three loads and one branch (the loads have no effect to short-cut).
        (self.counters.failures.load(Ordering::Relaxed) == 0)
            & (self.counters.slow.load(Ordering::Relaxed) == 0)
            & (u64::from(self.counters.total.load(Ordering::Relaxed)) == self.slots.len() as u64)
    }

    #[inline]
    pub(super) fn record(&self, code: u8) {
        let len = self.slots.len() as u64;
        // A window full of successes stays full of successes whichever slot a success lands in:
        // only loads, no write to a shared line (the healthy steady state scales across threads).
        if code == PRESENT && self.full_of_successes() {
            return;
        }
        let index = (self.next.fetch_add(1, Ordering::Relaxed) % len) as usize;
        let slot = &self.slots[index];
        // Steady state (the same outcome as N calls ago, a success in a healthy service): nothing
        // changes, nothing is written.
        if slot.load(Ordering::Relaxed) == code {
            return;
        }
        // Add before the swap, subtract after: whoever swaps our code out later has seen our
        // addition first (the swaps on one slot are ordered), so no counter goes below zero.
        self.counters.add(code);
        let old = slot.swap(code, Ordering::AcqRel);
        self.counters.sub(old);
    }

    pub(super) fn counts(&self) -> Counts {
        self.counters.read(self.slots.len() as u64)
    }

    pub(super) fn reset(&self) {
        for slot in &*self.slots {
            slot.store(0, Ordering::Relaxed);
        }
        self.counters.clear();
        self.next.store(0, Ordering::Relaxed);
    }
}

/// One bucket of a time window, tagged with the bucket number it counts (0: never used).
#[derive(Debug, Default)]
pub(super) struct Bucket {
    pub(super) epoch: AtomicU64,
    pub(super) counters: Counters,
}

/// Fixed buckets over a time span: O(1) to record, O(buckets) to judge (only on a failure or a
/// slow call), O(buckets) memory.
#[derive(Debug)]
pub(super) struct TimeWindow {
    pub(super) buckets: Box<[Bucket]>,
    pub(super) bucket_nanos: u64,
    /// The bucket number (high 48 bits) and slot (low 16 bits) last worked out by `record`, so
    /// that the calls of one bucket's period find both without two divisions: a memo of a pure
    /// function of the time (0: none yet), written once per period.
    pub(super) last: AtomicU64,
}

/// Bits of [`TimeWindow::last`] that hold the slot (a window has at most 1 000).
pub(super) const SLOT_BITS: u32 = 16;

impl TimeWindow {
    pub(super) fn new(size: Duration, buckets: u32) -> Self {
        let buckets = buckets.max(1);
        let nanos = u64::try_from(size.as_nanos()).unwrap_or(u64::MAX);
        Self {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            bucket_nanos: (nanos / u64::from(buckets)).max(1),
            last: AtomicU64::new(0),
        }
    }

    /// The bucket number of `now`, from 1.
    pub(super) fn epoch(&self, now: u64) -> u64 {
        now / self.bucket_nanos + 1
    }

    /// The bucket number of `now` and its slot: from the memo when `now` falls in the period
    /// it holds (`now - start < bucket_nanos` is `now / bucket_nanos == epoch - 1`), else
    /// worked out and memoised.
    #[inline]
    pub(super) fn epoch_and_slot(&self, now: u64) -> (u64, usize) {
        let last = self.last.load(Ordering::Relaxed);
        let epoch = last >> SLOT_BITS;
        if epoch != 0 {
            // `(epoch - 1) * bucket_nanos` is at most the time that produced `epoch`: no
            // overflow.
            let start = (epoch - 1) * self.bucket_nanos;
            if now >= start && now - start < self.bucket_nanos {
                return (epoch, (last & ((1 << SLOT_BITS) - 1)) as usize);
            }
        }
        self.epoch_and_slot_slow(now)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn epoch_and_slot_slow(&self, now: u64) -> (u64, usize) {
        let epoch = self.epoch(now);
        let slot = epoch % self.buckets.len() as u64;
        if epoch < 1 << (64 - SLOT_BITS) && slot < 1 << SLOT_BITS {
            self.last
                .store((epoch << SLOT_BITS) | slot, Ordering::Relaxed);
        }
        (epoch, slot as usize)
    }

    pub(super) fn record(&self, code: u8, now: u64) {
        let (epoch, slot) = self.epoch_and_slot(now);
        let bucket = &self.buckets[slot];
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != epoch {
            if seen > epoch {
                // A call that read the clock long before it recorded; its bucket is gone.
                return;
            }
            // The first recorder of a new period claims the bucket and clears it. A call that
            // records between the claim and the clearing is lost: a few calls at most, at a
            // bucket boundary.
            if bucket
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.counters.clear();
            }
        }
        bucket.counters.add(code);
    }

    pub(super) fn counts(&self, now: u64) -> Counts {
        let epoch = self.epoch(now);
        let len = self.buckets.len() as u64;
        let mut sum = Counts::default();
        for bucket in &*self.buckets {
            let seen = bucket.epoch.load(Ordering::Acquire);
            if seen != 0 && seen <= epoch && epoch - seen < len {
                let c = bucket.counters.read(u64::from(u32::MAX));
                sum.total += c.total;
                sum.failures += c.failures;
                sum.slow += c.slow;
            }
        }
        sum
    }

    pub(super) fn reset(&self) {
        for bucket in &*self.buckets {
            bucket.epoch.store(0, Ordering::Relaxed);
            bucket.counters.clear();
        }
    }
}

#[derive(Debug)]
pub(super) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(super) fn new(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Count(n) => Self::Count(CountWindow::new(n)),
            WindowKind::Time { size, buckets } => Self::Time(TimeWindow::new(size, buckets)),
        }
    }

    /// Whether this window has the shape `kind` would make.
    pub(super) fn fits(&self, kind: WindowKind) -> bool {
        match (self, kind) {
            (Self::Count(w), WindowKind::Count(n)) => w.slots.len() == n.max(1) as usize,
            (Self::Time(w), WindowKind::Time { size, buckets }) => {
                let made = TimeWindow::new(size, buckets);
                w.buckets.len() == made.buckets.len() && w.bucket_nanos == made.bucket_nanos
            }
            _ => false,
        }
    }

    pub(super) fn reset(&self) {
        match self {
            Self::Count(w) => w.reset(),
            Self::Time(w) => w.reset(),
        }
    }
}

impl CountWindow {
    /// Fills this (empty) window with the newest outcomes of `old`, as many as both hold,
    /// oldest first: a shrunk window keeps the newest outcomes, a grown one all of them.
    pub(super) fn carry(&self, old: &Self) {
        let old_len = old.slots.len() as u64;
        let next = old.next.load(Ordering::Relaxed);
        // The steady state writes nothing: a full window of successes has `next` anywhere, and
        // every slot holds a success, so any `n` slots are its newest outcomes.
        let n = (self.slots.len() as u64).min(old_len);
        let mut kept = 0;
        for i in 0..n {
            // The outcome `n - i` calls ago, oldest first.
            let index = (next + old_len - (n - i) % old_len) % old_len;
            let code = old.slots[index as usize].load(Ordering::Relaxed);
            if code != 0 {
                self.slots[kept].store(code, Ordering::Relaxed);
                self.counters.add(code);
                kept += 1;
            }
        }
        self.next.store(kept as u64, Ordering::Relaxed);
    }
}
