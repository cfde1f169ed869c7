//! The synchronisation primitives the keyed map (`map.rs`) is written against: `std`'s in the
//! library (re-exported, so every call is the plain `std` operation), and in the crate's own
//! unit tests `std`'s wrapped so that, inside a `shuttle` model (`model.rs`), every operation is first a scheduling point of shuttle's
//! scheduler, which then explores the interleavings of those operations between threads.
//! Outside a model the wrappers behave as `std`'s. Nothing here is public.
//!
//! A switch of the imports rather than a type parameter (the bulkhead's `Primitives`, the load
//! shedder's `Word`): the map is public and generic already, and a parameter for its
//! primitives would show in its type for the tests' sake.

#[cfg(not(test))]
pub(crate) use std::sync::RwLock;
#[cfg(not(test))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

#[cfg(test)]
pub(crate) use self::model::{AtomicU64, AtomicUsize, RwLock};

#[cfg(test)]
#[allow(dead_code, reason = "the operations the map does not use")]
mod model {
    use std::fmt;
    use std::sync::atomic::Ordering;
    use std::sync::{LockResult, RwLockReadGuard, RwLockWriteGuard, TryLockError, TryLockResult};

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
            pub(crate) struct $name($std);

            impl $name {
                pub(crate) const fn new(value: $int) -> Self {
                    Self(<$std>::new(value))
                }

                pub(crate) fn load(&self, order: Ordering) -> $int {
                    point();
                    self.0.load(order)
                }

                pub(crate) fn store(&self, value: $int, order: Ordering) {
                    point();
                    self.0.store(value, order);
                }

                pub(crate) fn swap(&self, value: $int, order: Ordering) -> $int {
                    point();
                    self.0.swap(value, order)
                }

                pub(crate) fn compare_exchange(
                    &self,
                    current: $int,
                    new: $int,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$int, $int> {
                    point();
                    self.0.compare_exchange(current, new, success, failure)
                }

                pub(crate) fn compare_exchange_weak(
                    &self,
                    current: $int,
                    new: $int,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$int, $int> {
                    point();
                    self.0.compare_exchange_weak(current, new, success, failure)
                }

                pub(crate) fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                    point();
                    self.0.fetch_add(value, order)
                }

                pub(crate) fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                    point();
                    self.0.fetch_sub(value, order)
                }

                pub(crate) fn fetch_max(&self, value: $int, order: Ordering) -> $int {
                    point();
                    self.0.fetch_max(value, order)
                }

                pub(crate) fn fetch_min(&self, value: $int, order: Ordering) -> $int {
                    point();
                    self.0.fetch_min(value, order)
                }

                pub(crate) fn fetch_update<F>(
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

                pub(crate) fn get_mut(&mut self) -> &mut $int {
                    self.0.get_mut()
                }

                pub(crate) fn into_inner(self) -> $int {
                    self.0.into_inner()
                }
            }
        };
    }

    atomic!(AtomicU64, std::sync::atomic::AtomicU64, u64);
    atomic!(AtomicUsize, std::sync::atomic::AtomicUsize, usize);

    /// `std`'s lock; inside a model, taking it is a scheduling point and waits by yielding to
    /// shuttle's scheduler (a blocked `std` lock would stop every model thread at once).
    #[derive(Default)]
    pub(crate) struct RwLock<T>(std::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
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

        pub(crate) fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
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

        pub(crate) fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
            point();
            self.0.try_write()
        }

        pub(crate) fn get_mut(&mut self) -> LockResult<&mut T> {
            self.0.get_mut()
        }
    }

    impl<T: fmt::Debug> fmt::Debug for RwLock<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }
}
