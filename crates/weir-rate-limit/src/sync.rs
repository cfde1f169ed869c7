//! The synchronisation primitives the algorithms' states (`state.rs`, and `config.rs`'s
//! states of a named algorithm) are written against: `std`'s in the library (re-exported, so
//! every call is the plain `std` operation, and the public `Algorithm::State` types are
//! `std`'s), and in the crate's own unit tests `std`'s wrapped so that, inside a `shuttle` model
//! (`state/model.rs`), every operation is first a scheduling point of shuttle's scheduler,
//! which then explores the interleavings of those operations between threads. Outside a model
//! the wrappers behave as `std`'s. Nothing here is public.
//!
//! A switch of the imports rather than a type parameter (the bulkhead's `Primitives`, the load
//! shedder's `Word`): the states are public types of the `Algorithm` trait, and a parameter
//! for their primitives would show in the public API for the tests' sake.

#[cfg(not(test))]
pub(crate) use std::sync::Mutex;
#[cfg(not(test))]
pub(crate) use std::sync::atomic::AtomicU64;

#[cfg(test)]
pub(crate) use self::model::{AtomicU64, Mutex};

#[cfg(test)]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the operations the states do not use; `pub` as the public states' fields"
)]
mod model {
    use std::fmt;
    use std::sync::atomic::Ordering;
    use std::sync::{LockResult, MutexGuard, TryLockError};

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

    atomic!(AtomicU64, std::sync::atomic::AtomicU64, u64);

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
}
