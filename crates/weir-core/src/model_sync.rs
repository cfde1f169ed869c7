//! `std`'s synchronisation primitives with a `shuttle` scheduling point before each operation,
//! for the model tests of weir's lock-free structures (the keyed map here, the breaker's state
//! word, the rate limiter's states). Not part of weir's API: compiled only in weir-core's own
//! tests and under the `model-sync` feature, which the pattern crates enable for their tests
//! alone (a dev-dependency); a library build never sees it.
//!
//! A structure is written against `crate::sync`'s names, which re-export `std`'s in the library
//! and these in the crate's unit tests. Inside a shuttle execution each operation is first a
//! scheduling point, so shuttle's scheduler explores the interleavings of those operations
//! between threads; outside one the wrappers behave exactly as `std`'s, so the rest of the unit
//! tests run unchanged. A switch of imports rather than a type parameter (the bulkhead's
//! `Primitives`, the load shedder's `Word`): where the structure is public, or holds many
//! atomics, a parameter for its primitives would show in its type for the tests' sake.

#![allow(
    dead_code,
    missing_docs,
    clippy::missing_errors_doc,
    clippy::missing_panics_doc,
    reason = "std's operations, wrapped whole: each structure uses some of them"
)]

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{
    LockResult, MutexGuard, RwLockReadGuard, RwLockWriteGuard, TryLockError, TryLockResult,
};

/// Whether the calling thread is one of a shuttle execution's.
fn in_model() -> bool {
    shuttle::current::try_get_current_task().is_some()
}

/// A scheduling point inside a model (shuttle may switch to another thread here), nothing
/// outside: the load of a fresh shuttle atomic, which is exactly one switch.
fn point() {
    if in_model() {
        shuttle::sync::atomic::AtomicBool::new(false).load(Ordering::Relaxed);
    }
}

macro_rules! atomic {
    ($name:ident, $std:ty, $int:ty) => {
        /// `std`'s atomic with a scheduling point before each operation (see the module).
        #[derive(Debug, Default)]
        pub struct $name($std);

        impl $name {
            pub const fn new(value: $int) -> Self {
                Self(<$std>::new(value))
            }

            pub fn load(&self, order: Ordering) -> $int {
                point();
                self.0.load(order)
            }

            pub fn store(&self, value: $int, order: Ordering) {
                point();
                self.0.store(value, order);
            }

            pub fn swap(&self, value: $int, order: Ordering) -> $int {
                point();
                self.0.swap(value, order)
            }

            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                point();
                self.0.compare_exchange(current, new, success, failure)
            }

            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                point();
                self.0.compare_exchange_weak(current, new, success, failure)
            }

            pub fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                point();
                self.0.fetch_add(value, order)
            }

            pub fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                point();
                self.0.fetch_sub(value, order)
            }

            pub fn fetch_max(&self, value: $int, order: Ordering) -> $int {
                point();
                self.0.fetch_max(value, order)
            }

            pub fn fetch_min(&self, value: $int, order: Ordering) -> $int {
                point();
                self.0.fetch_min(value, order)
            }

            pub fn fetch_update<F>(
                &self,
                set: Ordering,
                fetch: Ordering,
                f: F,
            ) -> Result<$int, $int>
            where
                F: FnMut($int) -> Option<$int>,
            {
                point();
                self.0.fetch_update(set, fetch, f)
            }

            pub fn get_mut(&mut self) -> &mut $int {
                self.0.get_mut()
            }

            pub fn into_inner(self) -> $int {
                self.0.into_inner()
            }
        }
    };
}

atomic!(AtomicU8, std::sync::atomic::AtomicU8, u8);
atomic!(AtomicU32, std::sync::atomic::AtomicU32, u32);
atomic!(AtomicU64, std::sync::atomic::AtomicU64, u64);
atomic!(AtomicUsize, std::sync::atomic::AtomicUsize, usize);

/// `std`'s mutex; inside a model, `lock` is a scheduling point and waits by yielding to
/// shuttle's scheduler (a blocked `std` lock would stop every model thread at once).
#[derive(Default)]
pub struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        if !in_model() {
            return self.0.lock();
        }
        point();
        loop {
            match self.0.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Err(poisoned),
                Err(TryLockError::WouldBlock) => shuttle::thread::yield_now(),
            }
        }
    }

    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.0.get_mut()
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `std`'s lock; inside a model, taking it is a scheduling point and waits by yielding to
/// shuttle's scheduler (a blocked `std` lock would stop every model thread at once).
#[derive(Default)]
pub struct RwLock<T>(std::sync::RwLock<T>);

impl<T> RwLock<T> {
    pub const fn new(value: T) -> Self {
        Self(std::sync::RwLock::new(value))
    }

    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        if !in_model() {
            return self.0.read();
        }
        point();
        loop {
            match self.0.try_read() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Err(poisoned),
                Err(TryLockError::WouldBlock) => shuttle::thread::yield_now(),
            }
        }
    }

    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        if !in_model() {
            return self.0.write();
        }
        point();
        loop {
            match self.0.try_write() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Err(poisoned),
                Err(TryLockError::WouldBlock) => shuttle::thread::yield_now(),
            }
        }
    }

    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        point();
        self.0.try_write()
    }

    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.0.get_mut()
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
