//! Lease mode: units taken from Redis in batches and spent in this instance's memory.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How a store leases (see [`RedisStoreBuilder::lease`](crate::RedisStoreBuilder::lease)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaseConfig {
    pub(crate) batch: u32,
    pub(crate) ttl: Duration,
}

#[derive(Debug)]
struct Lease {
    left: u32,
    expires: Instant,
    /// A batch is being fetched until then (a dropped fetch heals by itself after it).
    fetching_until: Instant,
}

/// What a request does with the lease of its key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Spent locally; this many units are left in the lease.
    Spent(u32),
    /// Fetch a batch (this request is the one fetching for the key).
    Fetch,
    /// Another request is fetching: decide this one on Redis alone.
    Busy,
}

/// The leases of one store: one per (key, tier), bounded.
#[derive(Debug)]
pub(crate) struct Leases {
    map: Mutex<HashMap<Box<[u8]>, Lease>>,
    max_keys: usize,
}

impl Leases {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, Lease>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn take(&self, key: &[u8], cost: u32, now: Instant, fetch_for: Duration) -> Take {
        let mut map = self.lock();
        if let Some(lease) = map.get_mut(key) {
            if lease.left >= cost && lease.expires > now {
                lease.left -= cost;
                return Take::Spent(lease.left);
            }
            if lease.fetching_until > now {
                return Take::Busy;
            }
            lease.fetching_until = now + fetch_for;
            return Take::Fetch;
        }
        if map.len() >= self.max_keys {
            map.retain(|_, l| l.fetching_until > now || (l.left > 0 && l.expires > now));
            if map.len() >= self.max_keys {
                return Take::Busy;
            }
        }
        map.insert(
            key.into(),
            Lease {
                left: 0,
                expires: now,
                fetching_until: now + fetch_for,
            },
        );
        Take::Fetch
    }

    /// The batch arrived: `left` units to spend until `expires` (what was left is dropped: it
    /// had expired or been spent).
    pub(crate) fn fill(&self, key: &[u8], left: u32, expires: Instant) {
        if let Some(lease) = self.lock().get_mut(key) {
            lease.left = left;
            lease.expires = expires;
            lease.fetching_until = Instant::now();
        }
    }

    /// The fetch ended without a batch.
    pub(crate) fn done(&self, key: &[u8]) {
        self.no_batch_until(key, Instant::now());
    }

    /// Drops the lease of `key` (an admin reset the key): its next request fetches afresh.
    pub(crate) fn forget(&self, key: &[u8]) {
        self.lock().remove(key);
    }

    /// No batch fits before `until` (Redis refused one): requests of this key are decided one
    /// by one on Redis until then.
    pub(crate) fn no_batch_until(&self, key: &[u8], until: Instant) {
        if let Some(lease) = self.lock().get_mut(key) {
            lease.fetching_until = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_spent_locally_then_refetched_by_one_request() {
        let leases = Leases::new(10);
        let now = Instant::now();
        let fetch = Duration::from_millis(100);
        assert_eq!(leases.take(b"k", 1, now, fetch), Take::Fetch);
        // While the batch is on its way, other requests go to Redis one by one.
        assert_eq!(leases.take(b"k", 1, now, fetch), Take::Busy);
        leases.fill(b"k", 3, now + Duration::from_secs(1));
        assert_eq!(leases.take(b"k", 2, now, fetch), Take::Spent(1));
        assert_eq!(leases.take(b"k", 1, now, fetch), Take::Spent(0));
        assert_eq!(leases.take(b"k", 1, now, fetch), Take::Fetch);
        leases.done(b"k");
        // A lease past its TTL is not spent.
        leases.fill(b"k", 5, now + Duration::from_secs(1));
        let later = now + Duration::from_secs(2);
        assert_eq!(leases.take(b"k", 1, later, fetch), Take::Fetch);
        // A fetch that never reports back (its future dropped) stops blocking after `fetch`.
        assert_eq!(leases.take(b"k", 1, later, fetch), Take::Busy);
        assert_eq!(leases.take(b"k", 1, later + fetch, fetch), Take::Fetch);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let leases = Leases::new(2);
        let now = Instant::now();
        let fetch = Duration::from_millis(100);
        assert_eq!(leases.take(b"a", 1, now, fetch), Take::Fetch);
        assert_eq!(leases.take(b"b", 1, now, fetch), Take::Fetch);
        assert_eq!(leases.take(b"c", 1, now, fetch), Take::Busy);
        // Once the fetches are over and nothing is held, the entries are swept.
        leases.done(b"a");
        leases.done(b"b");
        assert_eq!(leases.take(b"c", 1, now + fetch, fetch), Take::Fetch);
    }
}
