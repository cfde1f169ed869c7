//! The atomic word a ratio budget's counters are written against: `std`'s `AtomicU64` in the
//! library (each call monomorphises to the plain `std` operation), and in the crate's own
//! tests `shuttle`'s, whose scheduler explores the interleavings of those operations between
//! threads (the model tests in `tests.rs`). Nothing here is public.

use std::sync::atomic::{AtomicU64, Ordering};

/// The atomic `u64` operations the counters use, with `std`'s signatures.
pub(crate) trait Word {
    fn new(value: u64) -> Self;
    fn load(&self, order: Ordering) -> u64;
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
    fn fetch_update<F>(&self, set: Ordering, fetch: Ordering, f: F) -> Result<u64, u64>
    where
        F: FnMut(u64) -> Option<u64>;
}

/// Implements [`Word`] for an atomic type with `std`'s methods.
macro_rules! word {
    ($atomic:ty) => {
        impl Word for $atomic {
            #[inline]
            fn new(value: u64) -> Self {
                Self::new(value)
            }

            #[inline]
            fn load(&self, order: Ordering) -> u64 {
                Self::load(self, order)
            }

            #[inline]
            fn fetch_add(&self, value: u64, order: Ordering) -> u64 {
                Self::fetch_add(self, value, order)
            }

            #[inline]
            fn fetch_update<F>(&self, set: Ordering, fetch: Ordering, f: F) -> Result<u64, u64>
            where
                F: FnMut(u64) -> Option<u64>,
            {
                Self::fetch_update(self, set, fetch, f)
            }
        }
    };
}

word!(AtomicU64);
#[cfg(test)]
word!(shuttle::sync::atomic::AtomicU64);
