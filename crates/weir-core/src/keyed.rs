//! Per-key state for keyed layers: bounded in memory, evicting idle keys by itself.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

/// How many keys a [`KeyedMap`] stores and how soon it forgets an idle one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedConfig {
    max_keys: usize,
    idle_timeout: Duration,
}

impl KeyedConfig {
    /// At most 100 000 keys, forgotten after 10 minutes without a request.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            max_keys: 100_000,
            idle_timeout: Duration::from_secs(600),
        }
    }

    /// The most keys stored at once (at least 1). Once full, a new key shares the map's overflow
    /// state until idle keys are evicted.
    #[must_use]
    pub const fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = if max_keys == 0 { 1 } else { max_keys };
        self
    }

    /// How long a key may go without a request before it can be evicted. Pick it no shorter than
    /// the time the key's state takes to return to rest (a rate limiter's refill time, a breaker's
    /// open time), or use [`KeyedMap::evict_if`].
    #[must_use]
    pub const fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// The configured maximum number of keys.
    #[must_use]
    pub const fn get_max_keys(&self) -> usize {
        self.max_keys
    }

    /// The configured idle timeout.
    #[must_use]
    pub const fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
}

impl Default for KeyedConfig {
    fn default() -> Self {
        Self::new()
    }
}

struct Slot<V> {
    state: V,
    /// Milliseconds since the map's epoch at the last request for this key.
    last_seen: AtomicU64,
}

struct Shard<K, V, S> {
    map: RwLock<HashMap<K, Slot<V>, S>>,
}

/// A hasher for keys that are already uniformly distributed 64-bit hashes, such as a keyed
/// SipHash of the real key computed by the caller: the map uses the value as it is instead of
/// hashing it again. Use it with [`KeyedMap::with_hasher`] only for such keys: keys an attacker
/// can choose need a keyed hash (the default `RandomState`) to keep flooding from colliding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prehashed;

/// The [`Hasher`](std::hash::Hasher) of [`Prehashed`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PrehashedHasher(u64);

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

impl std::hash::Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not a prehashed `u64`: fold the bytes in (FNV-1a), so it still works, if slowly.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A concurrent map from keys to per-key state, for keyed layers (keyed rate limits, keyed
/// breakers, bulkhead partitions).
///
/// - **Bounded**: at most [`KeyedConfig::max_keys`] keys. A new key arriving when the map is full
///   and no key is idle uses the map's *overflow* state, shared by every such key, so a flood of
///   random keys (spoofed addresses) cannot grow memory without bound and is limited as one.
/// - **Self-cleaning**: keys idle longer than [`KeyedConfig::idle_timeout`] are evicted by the
///   map itself, during requests (no task to spawn): each shard is swept when a new key is
///   inserted and the shard was not swept for half the idle timeout, and any request sweeps one
///   shard when the whole map was not swept for the idle timeout. Shards shrink their tables after
///   a sweep leaves them mostly empty, so memory returns after a flood.
/// - **Cheap hits**: a request for a stored key takes one shard's read lock (shared with other
///   readers), hashes the key once and updates the key's last-seen time with a relaxed atomic store
///   at most once per millisecond. It never allocates. A miss takes the shard's write lock.
///
/// The state `V` is shared by concurrent requests, so it uses interior mutability (atomics, or a
/// short `std::sync::Mutex` section).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use tokio::time::Instant;
/// use weir_core::{KeyedConfig, KeyedMap};
///
/// let counts: KeyedMap<&str, AtomicU32> = KeyedMap::new(KeyedConfig::new(), AtomicU32::new(0));
/// let now = Instant::now();
/// for user in ["ann", "bob", "ann"] {
///     counts.with(user, now, |k| (k, AtomicU32::new(0)), |c| c.fetch_add(1, Ordering::Relaxed));
/// }
/// assert_eq!(counts.len(), 2);
/// let ann = counts.with("ann", now, |k| (k, AtomicU32::new(0)), |c| c.load(Ordering::Relaxed));
/// assert_eq!(ann, 2);
/// ```
pub struct KeyedMap<K, V, S = RandomState> {
    shards: Box<[Shard<K, V, S>]>,
    hasher: S,
    overflow: V,
    config: KeyedConfig,
    max_per_shard: usize,
    evictable: Box<dyn Fn(&V, Instant) -> bool + Send + Sync>,
    on_evict: Option<Box<dyn Fn(&K, &V) + Send + Sync>>,
    epoch: Instant,
    len: AtomicUsize,
    evicted: AtomicU64,
    /// Milliseconds since the epoch of the last whole-map sweep check.
    last_sweep: AtomicU64,
    /// Which shard the next request-driven sweep cleans.
    next_sweep: AtomicUsize,
    /// Milliseconds since the epoch of each shard's last sweep.
    shard_swept: Box<[AtomicU64]>,
}

impl<K, V> KeyedMap<K, V>
where
    K: Hash + Eq,
{
    /// An empty map; `overflow` is the state shared by new keys while the map is full. Keys are
    /// hashed with a keyed SipHash (`RandomState`), safe for keys that clients choose.
    #[must_use]
    pub fn new(config: KeyedConfig, overflow: V) -> Self {
        Self::with_hasher(config, overflow, RandomState::new())
    }
}

impl<K, V, S> KeyedMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    /// An empty map hashing its keys with `hasher` (for example [`Prehashed`] for keys that
    /// are already keyed hashes).
    #[must_use]
    pub fn with_hasher(config: KeyedConfig, overflow: V, hasher: S) -> Self {
        let shards = shard_count(config.max_keys);
        let epoch = Instant::now();
        Self {
            shards: (0..shards)
                .map(|_| Shard {
                    map: RwLock::new(HashMap::with_hasher(hasher.clone())),
                })
                .collect(),
            hasher,
            overflow,
            config,
            max_per_shard: config.max_keys.div_ceil(shards),
            evictable: Box::new(|_, _| true),
            on_evict: None,
            epoch,
            len: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
            next_sweep: AtomicUsize::new(0),
            shard_swept: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Evicts an idle key only if `evictable(&state, now)` also holds: for example only breakers
    /// that are closed, or only rate-limit buckets that are full again. Called during sweeps,
    /// never on a hit.
    #[must_use]
    pub fn evict_if(
        mut self,
        evictable: impl Fn(&V, Instant) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.evictable = Box::new(evictable);
        self
    }

    /// Calls `on_evict(&key, &state)` for every key evicted (under the shard's write lock: keep
    /// it short, for example emit an event or bump a counter).
    #[must_use]
    pub fn on_evict(mut self, on_evict: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Box::new(on_evict));
        self
    }

    /// How many keys have been evicted since the map was made.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &KeyedConfig {
        &self.config
    }

    /// Runs `f` on the state of `key` and returns its result.
    ///
    /// On a miss, `insert(key)` returns the key to store (for example
    /// [`KeyExtractor::detach`](crate::KeyExtractor::detach)ed, so it does not pin a request
    /// buffer) and its fresh state. When the map is full and no key can be evicted, `f` runs on
    /// the overflow state instead, and nothing is stored.
    pub fn with<R>(
        &self,
        key: K,
        now: Instant,
        insert: impl FnOnce(K) -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let now_ms = self.millis(now);
        self.maybe_sweep_one(now, now_ms);
        let shard_index = self.shard_of(&key);
        let shard = &self.shards[shard_index];
        {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = map.get(&key) {
                touch(slot, now_ms);
                return f(&slot.state);
            }
        }
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(&key) {
            // Inserted by another request between the two locks.
            touch(slot, now_ms);
            return f(&slot.state);
        }
        // Sweep this shard when half an idle timeout has passed since its last sweep, or, when it
        // is full, a sixteenth of one: often enough to make room as keys go idle, rarely enough
        // that a flood of new keys against a full map costs O(1) per request, not a sweep each.
        let since = now_ms.saturating_sub(self.shard_swept[shard_index].load(Ordering::Relaxed));
        let idle = millis_of(self.config.idle_timeout);
        let due = if map.len() >= self.max_per_shard {
            idle / 16
        } else {
            idle / 2
        };
        if since >= due.max(1) {
            let swept = &self.shard_swept[shard_index];
            swept.store(now_ms, Ordering::Relaxed);
            self.sweep(&mut map, now, now_ms);
        }
        if map.len() >= self.max_per_shard {
            drop(map);
            return f(&self.overflow);
        }
        let (key, state) = insert(key);
        let slot = map.entry(key).or_insert(Slot {
            state,
            last_seen: AtomicU64::new(now_ms),
        });
        self.len.fetch_add(1, Ordering::Relaxed);
        f(&slot.state)
    }

    /// The number of keys stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// No key is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state shared by new keys while the map is full.
    #[must_use]
    pub const fn overflow(&self) -> &V {
        &self.overflow
    }

    /// Visits every stored key and its state, under each shard's read lock in turn.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for shard in &self.shards {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            for (key, slot) in map.iter() {
                f(key, &slot.state);
            }
        }
    }

    /// Evicts every idle, evictable key now, in every shard. Keyed layers need not call it: the
    /// map sweeps itself during requests. Returns how many keys were evicted.
    pub fn sweep_now(&self, now: Instant) -> usize {
        let now_ms = self.millis(now);
        let mut evicted = 0;
        for shard in &self.shards {
            let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
            evicted += self.sweep(&mut map, now, now_ms);
        }
        evicted
    }

    /// The approximate heap bytes one stored key costs: the key, the state, the last-seen time
    /// and the hash table's control byte, at the table's typical load.
    #[must_use]
    pub const fn bytes_per_key() -> usize {
        // hashbrown keeps one control byte per bucket and runs at most 7/8 full.
        (size_of::<(K, Slot<V>)>() + 1) * 8 / 7
    }

    fn millis(&self, now: Instant) -> u64 {
        millis_of(now.saturating_duration_since(self.epoch))
    }

    fn shard_of(&self, key: &K) -> usize {
        // The shard count is a power of two; the high bits choose it, so the shard's own table
        // (another hasher) sees independent bits.
        let hash = self.hasher.hash_one(key);
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    /// Sweeps one shard when the whole map has gone an idle timeout without one, so memory comes
    /// back even when no new key arrives.
    fn maybe_sweep_one(&self, now: Instant, now_ms: u64) {
        let idle = millis_of(self.config.idle_timeout).max(1);
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < idle / self.shards.len() as u64 {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request is doing it
        }
        let index = self.next_sweep.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        if let Ok(mut map) = self.shards[index].map.try_write() {
            self.shard_swept[index].store(now_ms, Ordering::Relaxed);
            self.sweep(&mut map, now, now_ms);
        }
    }

    fn sweep(&self, map: &mut HashMap<K, Slot<V>, S>, now: Instant, now_ms: u64) -> usize {
        let idle = millis_of(self.config.idle_timeout);
        let before = map.len();
        map.retain(|key, slot| {
            let seen = slot.last_seen.load(Ordering::Relaxed);
            let keep = now_ms.saturating_sub(seen) < idle || !(self.evictable)(&slot.state, now);
            if let (false, Some(on_evict)) = (keep, &self.on_evict) {
                on_evict(key, &slot.state);
            }
            keep
        });
        let evicted = before - map.len();
        if evicted > 0 {
            self.len.fetch_sub(evicted, Ordering::Relaxed);
            self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
            if map.capacity() > 64 && map.len() < map.capacity() / 4 {
                map.shrink_to(map.len() * 2);
            }
        }
        evicted
    }
}

fn touch<V>(slot: &Slot<V>, now_ms: u64) {
    if slot.last_seen.load(Ordering::Relaxed) != now_ms {
        slot.last_seen.store(now_ms, Ordering::Relaxed);
    }
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Shards: enough to keep writers on different keys apart, few enough that each holds a useful
/// share of the keys.
fn shard_count(max_keys: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, usize::from);
    (cores * 4)
        .next_power_of_two()
        .clamp(1, 64)
        .min(max_keys.next_power_of_two())
        .max(1)
}

impl<K, V: fmt::Debug, S> fmt::Debug for KeyedMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMap")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("config", &self.config)
            .field("shards", &self.shards.len())
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn fresh(k: u32) -> (u32, AtomicU32) {
        (k, AtomicU32::new(0))
    }

    fn bump(map: &KeyedMap<u32, AtomicU32>, key: u32, now: Instant) -> u32 {
        map.with(key, now, fresh, |c| c.fetch_add(1, Ordering::Relaxed) + 1)
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_their_own_state() {
        let map = KeyedMap::new(KeyedConfig::new(), AtomicU32::new(0));
        let now = Instant::now();
        assert_eq!(bump(&map, 1, now), 1);
        assert_eq!(bump(&map, 1, now), 2);
        assert_eq!(bump(&map, 2, now), 1);
        assert_eq!(map.len(), 2);
        let mut seen = Vec::new();
        map.for_each(|k, v| seen.push((*k, v.load(Ordering::Relaxed))));
        seen.sort_unstable();
        assert_eq!(seen, [(1, 2), (2, 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_map_sends_new_keys_to_the_overflow_state() {
        let map = KeyedMap::new(KeyedConfig::new().max_keys(4), AtomicU32::new(0));
        let now = Instant::now();
        for key in 0..1000 {
            bump(&map, key, now);
        }
        assert!(map.len() <= 4 + map.shards.len(), "len {}", map.len());
        // Every key that found no room was counted on the shared overflow state.
        let stored: u32 = {
            let mut sum = 0;
            map.for_each(|_, v| sum += v.load(Ordering::Relaxed));
            sum
        };
        assert_eq!(stored + map.overflow().load(Ordering::Relaxed), 1000);
        // A key that is stored keeps its own state.
        let mut stored_key = None;
        map.for_each(|k, _| stored_key = Some(*k));
        let key = stored_key.expect("some key stored");
        assert_eq!(bump(&map, key, now), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_evicted_by_requests_alone() {
        let idle = Duration::from_secs(60);
        let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0));
        let start = Instant::now();
        for key in 0..10_000 {
            bump(&map, key, start);
        }
        assert_eq!(map.len(), 10_000);
        // Only one busy key keeps coming; the sweeps ride on its requests.
        let mut now = start;
        for _ in 0..(map.shards.len() * 4) {
            now += idle;
            bump(&map, 424_242, now);
        }
        assert_eq!(map.len(), 1, "only the busy key is left");
    }

    #[tokio::test(start_paused = true)]
    async fn a_recently_seen_key_is_kept() {
        let idle = Duration::from_secs(60);
        let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0));
        let start = Instant::now();
        bump(&map, 1, start);
        bump(&map, 2, start);
        bump(&map, 1, start + Duration::from_secs(50));
        assert_eq!(map.sweep_now(start + Duration::from_secs(70)), 1);
        assert_eq!(bump(&map, 1, start + Duration::from_secs(70)), 3);
        assert_eq!(
            bump(&map, 2, start + Duration::from_secs(70)),
            1,
            "2 was forgotten"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn evict_if_keeps_state_that_is_not_at_rest() {
        let idle = Duration::from_secs(1);
        let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0))
            .evict_if(|count, _| count.load(Ordering::Relaxed) < 2);
        let start = Instant::now();
        bump(&map, 1, start);
        bump(&map, 2, start);
        bump(&map, 2, start);
        assert_eq!(map.sweep_now(start + Duration::from_secs(5)), 1);
        assert_eq!(bump(&map, 2, start + Duration::from_secs(5)), 3, "2 kept");
    }

    #[tokio::test(start_paused = true)]
    async fn evictions_are_counted_and_reported() {
        use std::sync::Arc;

        let reported = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&reported);
        let map = KeyedMap::new(
            KeyedConfig::new().idle_timeout(Duration::from_secs(1)),
            AtomicU32::new(0),
        )
        .on_evict(move |_, _| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        let start = Instant::now();
        for key in 0..10 {
            bump(&map, key, start);
        }
        assert_eq!(map.sweep_now(start + Duration::from_secs(2)), 10);
        assert_eq!(map.evicted(), 10);
        assert_eq!(reported.load(Ordering::Relaxed), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_against_a_full_map_does_not_sweep_on_every_miss() {
        use std::sync::Arc;

        // Stored keys are idle but never evictable, so every sweep re-examines all of them:
        // counting examinations counts the work sweeps do.
        let examined = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&examined);
        let idle = Duration::from_secs(1);
        let map = KeyedMap::new(
            KeyedConfig::new().max_keys(1_000).idle_timeout(idle),
            AtomicU32::new(0),
        )
        .evict_if(move |_, _| {
            counted.fetch_add(1, Ordering::Relaxed);
            false
        });
        let start = Instant::now();
        for key in 0..1_000 {
            bump(&map, key, start);
        }
        // 100 000 new keys in one second, once the stored ones are idle.
        for key in 0..100_000u32 {
            let now = start + 2 * idle + Duration::from_micros(u64::from(key) * 10);
            bump(&map, 1_000_000 + key, now);
        }
        let stored = map.len();
        assert!(stored <= 1_000 + map.shards.len(), "bounded: {stored}");
        // A sweep per miss would examine ~`stored / shards` entries 100 000 times (millions);
        // at most one sweep per shard per idle/16 examines each stored entry ~16 times.
        let examined = examined.load(Ordering::Relaxed);
        assert!(examined <= 20 * stored as u64, "{examined} examinations");
    }

    #[tokio::test(start_paused = true)]
    async fn prehashed_keys_work_like_any_other() {
        use std::hash::{BuildHasher, RandomState};

        let sip = RandomState::new();
        let map: KeyedMap<u64, AtomicU32, Prehashed> =
            KeyedMap::with_hasher(KeyedConfig::new(), AtomicU32::new(0), Prehashed);
        let now = Instant::now();
        for user in ["ann", "bob", "ann", "cy", "ann"] {
            let key = sip.hash_one(user);
            map.with(
                key,
                now,
                |k| (k, AtomicU32::new(0)),
                |c| {
                    c.fetch_add(1, Ordering::Relaxed);
                },
            );
        }
        assert_eq!(map.len(), 3);
        let ann = map.with(
            sip.hash_one("ann"),
            now,
            |k| (k, AtomicU32::new(0)),
            |c| c.load(Ordering::Relaxed),
        );
        assert_eq!(ann, 3);
        assert_eq!(Prehashed.hash_one(42u64), 42, "a u64 is its own hash");
        assert_ne!(Prehashed.hash_one("ab"), Prehashed.hash_one("ba"));
    }

    #[test]
    fn bytes_per_key_counts_key_state_and_bookkeeping() {
        let bytes = KeyedMap::<std::net::IpAddr, AtomicU64>::bytes_per_key();
        assert!((32..=64).contains(&bytes), "{bytes}");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<KeyedMap<String, AtomicU32>>();
    }
}
