//! [`MemoryStore`]: claims and responses in this instance's memory.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::settings::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};
use crate::state::{Claim, Digest, StoredResponse, Table, Token};
use crate::store::IdempotencyStore;

/// Claims and stored responses in this instance's memory: the default store.
///
/// Bounded: at most `max_entries` keys and `max_bytes` bytes (responses, headers, a fixed
/// overhead per key). Expired keys are dropped as new ones arrive; past a bound, the oldest
/// finished keys are evicted first (a flood of distinct keys cycles the store and can cost an
/// old key its replay, never its claim). A claim still running is never evicted: a store full
/// of them answers 503 with `Retry-After`. Every operation is one short `std::sync::Mutex`
/// section, never held across an `.await`.
///
/// Clones share the store. A request without a key, or of a method the layer does not cover,
/// never touches it.
#[derive(Clone)]
pub struct MemoryStore {
    table: Arc<Mutex<Table>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES)
    }
}

impl MemoryStore {
    /// A store of at most `max_entries` keys and `max_bytes` bytes (a zero is raised to the
    /// least valid value: one key, one key's overhead).
    #[must_use]
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            table: Arc::new(Mutex::new(Table::new(max_entries, max_bytes))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent enough to go on with.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many keys it holds (running, finished, and expired ones not yet dropped).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes its keys cost.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes()
    }

    /// How many finished keys were evicted to keep the bounds.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    fn now() -> std::time::Instant {
        Instant::now().into_std()
    }
}

impl IdempotencyStore for MemoryStore {
    type ClaimFuture = Ready<Claim>;
    type CompleteFuture = Ready<()>;

    fn claim(&self, scope: Digest, fingerprint: Digest, lease: Duration) -> Self::ClaimFuture {
        ready(self.lock().claim(scope, fingerprint, Self::now(), lease))
    }

    fn complete(
        &self,
        scope: Digest,
        token: Token,
        response: Option<Arc<StoredResponse>>,
        ttl: Duration,
    ) -> Self::CompleteFuture {
        self.lock()
            .complete(scope, token, response, Self::now(), ttl);
        ready(())
    }

    fn release(&self, scope: Digest, token: Token) {
        self.lock().release(scope, token);
    }

    fn renew(&self, scope: Digest, token: Token, lease: Duration) {
        self.lock().renew(scope, token, Self::now(), lease);
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.lock();
        f.debug_struct("MemoryStore")
            .field("len", &table.len())
            .field("bytes", &table.bytes())
            .finish_non_exhaustive()
    }
}
