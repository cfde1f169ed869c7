//! [`RateLimitHandle`]: a read handle on a layer's shared state.

use std::fmt;
use std::sync::Arc;

use crate::layer::Limiter;
use crate::state::Algorithm;
use crate::store::MemoryStore;

/// Reads the state a [`RateLimitLayer`](crate::RateLimitLayer) and all its services share; from
/// [`RateLimitBuilder::build_with_handle`](crate::RateLimitBuilder::build_with_handle).
pub struct RateLimitHandle<X, St, T, C, O, P> {
    limiter: Arc<Limiter<X, St, T, C, O, P>>,
}

impl<X, St, T, C, O, P> RateLimitHandle<X, St, T, C, O, P> {
    pub(crate) const fn new(limiter: Arc<Limiter<X, St, T, C, O, P>>) -> Self {
        Self { limiter }
    }

    /// The layer instance's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.limiter.name.as_str()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.limiter.store
    }
}

impl<X, A: Algorithm, T, C, O, P> RateLimitHandle<X, MemoryStore<A>, T, C, O, P> {
    /// The number of keys with a state of their own (idle keys are evicted by the limiter).
    #[must_use]
    pub fn keys(&self) -> usize {
        self.limiter.store.keys()
    }

    /// How many idle keys the limiter has evicted since it was built (each also reported to the
    /// observer as [`Event::Evicted`](crate::Event::Evicted)).
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.limiter.store.evicted()
    }
}

impl<X, St, T, C, O, P> Clone for RateLimitHandle<X, St, T, C, O, P> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<X, St, T, C, O, P> fmt::Debug for RateLimitHandle<X, St, T, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitHandle")
            .field("name", &self.limiter.name)
            .finish_non_exhaustive()
    }
}
