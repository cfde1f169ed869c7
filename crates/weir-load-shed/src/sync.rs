//! The atomic word the in-flight counter (`Flight`, in `shared.rs`) is written
//! against: `std`'s `AtomicU64` in the library (each call monomorphises to the plain `std`
//! operation), and in the crate's own tests `shuttle`'s, whose scheduler explores the
//! interleavings of those operations between threads (the model tests in `shared.rs`). Nothing
//! here is public.

use std::sync::atomic::{AtomicU64, Ordering};

/// The atomic `u64` operations the counter uses, with `std`'s signatures.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
    fn fetch_sub(&self, value: u64, order: Ordering) -> u64;
    fn fetch_update<F>(&self, set: Ordering, fetch: Ordering, f: F) -> Result<u64, u64>
    where
        F: FnMut(u64) -> Option<u64>;
}

/// Implements [`Word`] for an atomic type with `std`'s methods.
macro_rules! word {
    ($atomic:ty) => {
        impl Word for $atomic {
            #[inline]
            fn load(&self, order: Ordering) -> u64 {
                Self::load(self, order)
            }

            #[inline]
            fn fetch_add(&self, value: u64, order: Ordering) -> u64 {
                Self::fetch_add(self, value, order)
            }

            #[inline]
            fn fetch_sub(&self, value: u64, order: Ordering) -> u64 {
                Self::fetch_sub(self, value, order)
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
