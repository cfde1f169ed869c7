//! The synchronisation primitives the permit core is written against.
//!
//! The core (`crate::permit`) is generic over a `Primitives` family so that one copy of its
//! code runs in production on `std`'s atomics and mutex ([`Std`], the default and the only
//! family the library uses: each call monomorphises to the plain `std` operation) and, in the
//! crate's own tests, on `shuttle`'s, whose scheduler explores the interleavings of those
//! operations between threads (the model tests in `permit.rs`). Nothing here is public.

use std::ops::DerefMut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The atomic `usize` operations the core uses, with `std`'s signatures.
pub(crate) trait Counter {
    fn new(value: usize) -> Self;
    fn load(&self, order: Ordering) -> usize;
    fn fetch_add(&self, value: usize, order: Ordering) -> usize;
    fn fetch_sub(&self, value: usize, order: Ordering) -> usize;
    fn fetch_update<F>(&self, set: Ordering, fetch: Ordering, f: F) -> Result<usize, usize>
    where
        F: FnMut(usize) -> Option<usize>;
}

/// A mutex whose lock cannot fail: nothing panics while the core holds it, and a poisoned
/// queue is still a valid queue.
pub(crate) trait Lock<T> {
    type Guard<'a>: DerefMut<Target = T>
    where
        Self: 'a;
    fn new(value: T) -> Self;
    fn lock(&self) -> Self::Guard<'_>;
}

impl Counter for AtomicUsize {
    #[inline]
    fn new(value: usize) -> Self {
        Self::new(value)
    }

    #[inline]
    fn load(&self, order: Ordering) -> usize {
        Self::load(self, order)
    }

    #[inline]
    fn fetch_add(&self, value: usize, order: Ordering) -> usize {
        Self::fetch_add(self, value, order)
    }

    #[inline]
    fn fetch_sub(&self, value: usize, order: Ordering) -> usize {
        Self::fetch_sub(self, value, order)
    }

    #[inline]
    fn fetch_update<F>(&self, set: Ordering, fetch: Ordering, f: F) -> Result<usize, usize>
    where
        F: FnMut(usize) -> Option<usize>,
    {
        Self::fetch_update(self, set, fetch, f)
    }
}

impl<T> Lock<T> for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;

    #[inline]
    fn new(value: T) -> Self {
        Self::new(value)
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, T> {
        Self::lock(self).unwrap_or_else(PoisonError::into_inner)
    }
}

/// `shuttle::sync`: the same operations as scheduling points of shuttle's model checker.
#[cfg(test)]
pub(crate) mod model {
    use std::sync::PoisonError;
    use std::sync::atomic::Ordering;

    use shuttle::sync::atomic::AtomicUsize;
    use shuttle::sync::{Mutex, MutexGuard};

    use super::{Counter, Lock};

    impl Counter for AtomicUsize {
        fn new(value: usize) -> Self {
            Self::new(value)
        }

        fn load(&self, order: Ordering) -> usize {
            Self::load(self, order)
        }

        fn fetch_add(&self, value: usize, order: Ordering) -> usize {
            Self::fetch_add(self, value, order)
        }

        fn fetch_sub(&self, value: usize, order: Ordering) -> usize {
            Self::fetch_sub(self, value, order)
        }

        fn fetch_update<F>(&self, set: Ordering, fetch: Ordering, f: F) -> Result<usize, usize>
        where
            F: FnMut(usize) -> Option<usize>,
        {
            Self::fetch_update(self, set, fetch, f)
        }
    }

    impl<T> Lock<T> for Mutex<T> {
        type Guard<'a>
            = MutexGuard<'a, T>
        where
            T: 'a;

        fn new(value: T) -> Self {
            Self::new(value)
        }

        fn lock(&self) -> MutexGuard<'_, T> {
            Self::lock(self).unwrap_or_else(PoisonError::into_inner)
        }
    }
}
