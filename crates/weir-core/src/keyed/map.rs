//! `KeyedMap`: the bounded, self-cleaning concurrent map.

use super::config::sealed;
use super::{Idleness, KeyedConfig, LastSeen};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::sync::{AtomicU64, AtomicUsize, RwLock};

/// A stored key with its stamp, hashed and compared by the key alone (so a lookup takes `&K`).
/// The stamp sits next to the key, not the state, so it can fill the key's padding.
struct Entry<K, T> {
    key: K,
    stamp: T,
}

impl<K: Hash, T> Hash for Entry<K, T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl<K: PartialEq, T> PartialEq for Entry<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<K: Eq, T> Eq for Entry<K, T> {}

impl<K, T> Borrow<K> for Entry<K, T> {
    fn borrow(&self) -> &K {
        &self.key
    }
}

type Table<K, V, S, I> = HashMap<Entry<K, <I as sealed::Sealed>::Stamp>, V, S>;

pub(super) struct Shard<K, V, S, I: Idleness> {
    map: RwLock<Table<K, V, S, I>>,
}

/// A concurrent map from keys to per-key state, for keyed layers (keyed rate limits, keyed
/// breakers, bulkhead partitions).
///
/// - **Bounded**: at most [`KeyedConfig::max_keys`] keys in the whole map. A new key arriving
///   when the map is full and no key is idle uses the map's *overflow* state, shared by every
///   such key, so a flood of random keys (spoofed addresses) cannot grow memory without bound and
///   is limited as one; or what the caller decides with [`with_millis_or`](Self::with_millis_or)
///   (a rate limiter spreads such keys over many overflow states). With
///   [`evict_when_full_if`](Self::evict_when_full_if), a full map first evicts keys whose state
///   carries no information.
/// - **Self-cleaning**: keys idle longer than [`KeyedConfig::idle_timeout`] are evicted by the
///   map itself, during requests (no task to spawn): each shard is swept when a new key is
///   inserted and the shard was not swept for half the idle timeout (a sixteenth of it, at most
///   a second, when the
///   map is full, and then one other shard too, so a new key can take the room of an idle key
///   stored anywhere), and any request sweeps one shard when the whole map was not swept for the
///   idle timeout. Shards shrink their tables after a sweep leaves them mostly empty, so memory
///   returns after a flood. How a key counts as idle is the type parameter `I`: [`LastSeen`]
///   (the default) or [`ByState`](crate::keyed::ByState).
/// - **Cheap hits**: a request for a stored key takes one shard's read lock (shared with other
///   readers), hashes the key once and, with [`LastSeen`], updates the key's last-seen time with
///   a relaxed atomic store at most once per millisecond. It never allocates. A miss takes the
///   shard's write lock and, to insert, two relaxed read-modify-writes on the key counts.
///
/// The state `V` is shared by concurrent requests, so it uses interior mutability (atomics, or a
/// short `std::sync::Mutex` section).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use tokio::time::Instant;
/// use weir_core::keyed::{KeyedConfig, KeyedMap};
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
pub struct KeyedMap<K, V, S = RandomState, I: Idleness = LastSeen> {
    pub(super) shards: Box<[Shard<K, V, S, I>]>,
    hasher: S,
    overflow: V,
    config: KeyedConfig,
    evictable: Box<dyn Fn(&V, Instant) -> bool + Send + Sync>,
    /// Evicts a key whatever its idleness while the map is full, if set (see
    /// [`evict_when_full_if`](KeyedMap::evict_when_full_if)).
    spare: Option<Box<dyn Fn(&V, Instant) -> bool + Send + Sync>>,
    on_evict: Option<Box<dyn Fn(&K, &V) + Send + Sync>>,
    epoch: Instant,
    /// Keys stored, in every shard.
    len: AtomicUsize,
    /// Keys counted against `max_keys` when a key is inserted: this map's `len`, plus those of
    /// the maps sharing its bound ([`share_bound_with`](Self::share_bound_with)).
    bound: Arc<AtomicUsize>,
    evicted: AtomicU64,
    /// A stamp is `milliseconds >> tick_shift` since the epoch, on 32 bits.
    tick_shift: u32,
    /// The idle timeout in ticks.
    idle_ticks: u32,
    /// Milliseconds since the epoch of the last whole-map sweep check.
    last_sweep: AtomicU64,
    /// Milliseconds between two request-driven sweeps of one shard: the idle timeout divided by
    /// the shard count, so every shard is swept once per idle timeout.
    sweep_one_every: u64,
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
    /// An empty map hashing its keys with `hasher` (for example [`Prehashed`](crate::keyed::Prehashed) for keys that
    /// are already keyed hashes).
    #[must_use]
    pub fn with_hasher(config: KeyedConfig, overflow: V, hasher: S) -> Self {
        Self::with_idleness(config, overflow, hasher, LastSeen)
    }
}

impl<K, V, S, I> KeyedMap<K, V, S, I>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
    I: Idleness,
{
    /// An empty map hashing its keys with `hasher` and telling idle keys by `idleness`: with
    /// [`ByState`](crate::keyed::ByState), give [`evict_if`](Self::evict_if) the predicate that decides.
    #[must_use]
    pub fn with_idleness(config: KeyedConfig, overflow: V, hasher: S, idleness: I) -> Self {
        let _ = idleness;
        let shards = shard_count(config.max_keys);
        let idle_ms = millis_of(config.idle_timeout);
        // Ticks of a millisecond, or coarser when the idle timeout does not fit in 30 bits of
        // them (above 12 days), so every stamp comparison stays far from the 32-bit wrap.
        let tick_shift = 64 - (idle_ms >> 30).leading_zeros();
        let idle_ticks = if tick_shift == 0 {
            idle_ms
        } else {
            // Rounded up, plus a tick for the stamps' own truncation: never evicts early.
            (idle_ms >> tick_shift) + 2
        };
        Self {
            shards: (0..shards)
                .map(|_| Shard {
                    map: RwLock::new(HashMap::with_hasher(hasher.clone())),
                })
                .collect(),
            hasher,
            overflow,
            config,
            evictable: Box::new(|_, _| true),
            spare: None,
            on_evict: None,
            epoch: Instant::now(),
            len: AtomicUsize::new(0),
            bound: Arc::new(AtomicUsize::new(0)),
            evicted: AtomicU64::new(0),
            tick_shift,
            idle_ticks: u32::try_from(idle_ticks).unwrap_or(u32::MAX),
            last_sweep: AtomicU64::new(0),
            sweep_one_every: idle_ms.max(1) / shards as u64,
            next_sweep: AtomicUsize::new(0),
            shard_swept: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Evicts an idle key only if `evictable(&state, now)` also holds: for example only breakers
    /// that are closed, or only rate-limit buckets that are full again. Called during sweeps,
    /// never on a hit. With [`ByState`](crate::keyed::ByState) it alone decides.
    #[must_use]
    pub fn evict_if(
        mut self,
        evictable: impl Fn(&V, Instant) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.evictable = Box::new(evictable);
        self
    }

    /// While the map is full, sweeps also evict every key whose state satisfies
    /// `spare(&state, now)`, however recently it was seen: state that carries no information
    /// (a rate-limit bucket full again, an expired window) makes room for a new key first, so
    /// a flood of one-request keys does not keep the map full for a whole idle timeout. A full
    /// map sweeps each shard at most once a second (or every sixteenth of the idle timeout, if
    /// shorter) when a new key misses.
    #[must_use]
    pub fn evict_when_full_if(
        mut self,
        spare: impl Fn(&V, Instant) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.spare = Some(Box::new(spare));
        self
    }

    /// Counts time from `epoch` (at or before now) instead of from when the map was made: a
    /// caller that already turns instants into time since `epoch` passes the milliseconds to
    /// [`with_millis`](Self::with_millis) and the map converts nothing.
    #[must_use]
    pub fn counting_from(mut self, epoch: Instant) -> Self {
        self.epoch = epoch;
        // The map was made (and so swept) now.
        let made = self.millis(Instant::now());
        *self.last_sweep.get_mut() = made;
        for swept in self.shard_swept.iter_mut() {
            *swept.get_mut() = made;
        }
        self
    }

    /// Calls `on_evict(&key, &state)` for every key evicted (under the shard's write lock: keep
    /// it short, for example emit an event or bump a counter).
    #[must_use]
    pub fn on_evict(mut self, on_evict: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Box::new(on_evict));
        self
    }

    /// Counts this map's keys and `other`'s against one bound: together the two maps store at
    /// most [`KeyedConfig::max_keys`] keys (each map checks its own configuration's when it
    /// inserts). For a layer that keeps two kinds of state in two maps. A full map sweeps only
    /// its own shards to make room; the other's idle keys leave with the other's sweeps.
    #[must_use]
    pub fn share_bound_with<K2, V2, S2, I2: Idleness>(
        mut self,
        other: &KeyedMap<K2, V2, S2, I2>,
    ) -> Self {
        let len = *self.len.get_mut();
        self.bound.fetch_sub(len, Ordering::Relaxed);
        other.bound.fetch_add(len, Ordering::Relaxed);
        self.bound = Arc::clone(&other.bound);
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
        self.with_millis(key, now, self.millis(now), insert, f)
    }

    /// [`with`](Self::with) for a caller that has already turned `now` into `now_ms`, the whole
    /// milliseconds since the map's epoch (see [`counting_from`](Self::counting_from)): it
    /// saves the map's own conversion of the clock reading, about a tenth of a keyed rate
    /// limit's cost. A wrong `now_ms` only moves when keys are swept and counted idle.
    #[inline]
    pub fn with_millis<R>(
        &self,
        key: K,
        now: Instant,
        now_ms: u64,
        insert: impl FnOnce(K) -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R {
        self.with_millis_or(key, now, now_ms, insert, |found| match found {
            Ok(state) => f(state),
            Err(_) => f(&self.overflow),
        })
    }

    /// [`with_millis`](Self::with_millis), with the caller deciding what a key that finds the
    /// map full gets: `f` gets `Ok(state)` for a stored key and `Err(key)` for a key that found
    /// the map full (instead of the map's overflow state), for example to run on one of many
    /// overflow states chosen by the key's hash, so that a flood of new keys costs collisions
    /// rather than one shared state.
    pub fn with_millis_or<R>(
        &self,
        key: K,
        now: Instant,
        now_ms: u64,
        insert: impl FnOnce(K) -> (K, V),
        f: impl FnOnce(Result<&V, K>) -> R,
    ) -> R {
        let tick = self.tick(now_ms);
        let shard_index = self.shard_of(&key);
        let shard = &self.shards[shard_index];
        {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((entry, state)) = map.get_key_value(&key) {
                I::touch(&entry.stamp, tick);
                let result = f(Ok(state));
                drop(map);
                // After the touch, so a sweep never evicts the key a request is using.
                self.maybe_sweep_one(now, now_ms);
                return result;
            }
        }
        self.maybe_sweep_one(now, now_ms);
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((entry, state)) = map.get_key_value(&key) {
            // Inserted by another request between the two locks.
            I::touch(&entry.stamp, tick);
            return f(Ok(state));
        }
        // Sweep this shard when half an idle timeout has passed since its last sweep, or, when the
        // map is full, a sixteenth of one, and then one other shard too: often enough to make
        // room as keys go idle, rarely enough that a flood of new keys against a full map costs
        // O(1) per request, not a sweep each.
        let idle = millis_of(self.config.idle_timeout);
        let when_full = (idle / 16).min(FULL_SWEEP_MS);
        let every = if self.is_full() { when_full } else { idle / 2 };
        if self.sweep_due(shard_index, now_ms, every) {
            self.sweep(&mut map, now, now_ms);
        }
        if self.is_full() {
            self.sweep_another(shard_index, now, now_ms, when_full);
        }
        if !self.reserve() {
            drop(map);
            return f(Err(key));
        }
        let (key, state) = insert(key);
        let entry = Entry {
            key,
            stamp: I::stamp(tick),
        };
        match map.entry(entry) {
            MapEntry::Vacant(vacant) => f(Ok(vacant.insert(state))),
            MapEntry::Occupied(occupied) => {
                // `insert` returned a key other than the one looked up, already stored.
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.bound.fetch_sub(1, Ordering::Relaxed);
                f(Ok(occupied.into_mut()))
            }
        }
    }

    /// Runs `f` on the state of `key` if it is stored, without storing it, touching it or
    /// sweeping (for an admin reading one key); `None` if it is not stored.
    pub fn peek<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        let shard = &self.shards[self.shard_of(key)];
        let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(key).map(f)
    }

    /// Forgets `key` (its next request starts from a fresh state); whether it was stored. Not
    /// counted as an eviction.
    pub fn remove(&self, key: &K) -> bool {
        let shard = &self.shards[self.shard_of(key)];
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        let removed = map.remove(key).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.bound.fetch_sub(1, Ordering::Relaxed);
        }
        removed
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
            for (entry, state) in map.iter() {
                f(&entry.key, state);
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

    /// The approximate heap bytes one stored key costs: the key, the state, the idleness stamp
    /// and the hash table's control byte, with the table at its fullest (7/8; a table that has
    /// just doubled is half as full, so up to twice this).
    #[must_use]
    pub const fn bytes_per_key() -> usize {
        (size_of::<(Entry<K, <I as sealed::Sealed>::Stamp>, V)>() + 1) * 8 / 7
    }

    /// Counts one more key against the bound, unless the map is full.
    fn reserve(&self) -> bool {
        let max = self.config.max_keys;
        let reserved = self
            .bound
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if reserved {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        reserved
    }

    fn millis(&self, now: Instant) -> u64 {
        millis_of(now.saturating_duration_since(self.epoch))
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "stamps wrap on 32 bits; comparisons are wrapping"
    )]
    #[inline]
    const fn tick(&self, now_ms: u64) -> u32 {
        (now_ms >> self.tick_shift) as u32
    }

    fn shard_of(&self, key: &K) -> usize {
        // The shard count is a power of two; the high bits choose it, so the shard's own table
        // (another hasher) sees independent bits.
        let hash = self.hasher.hash_one(key);
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    /// Whether shard `index` was last swept `every` milliseconds ago or more; if so, marks it
    /// swept now (the caller sweeps it).
    fn sweep_due(&self, index: usize, now_ms: u64, every: u64) -> bool {
        let swept = &self.shard_swept[index];
        if now_ms.saturating_sub(swept.load(Ordering::Relaxed)) < every.max(1) {
            return false;
        }
        swept.store(now_ms, Ordering::Relaxed);
        true
    }

    /// Sweeps one shard when the whole map has gone an idle timeout without one, so memory comes
    /// back even when no new key arrives.
    #[inline]
    fn maybe_sweep_one(&self, now: Instant, now_ms: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= self.sweep_one_every {
            self.sweep_one(now, now_ms, last);
        }
    }

    /// The rare part of [`maybe_sweep_one`](Self::maybe_sweep_one), out of the hit path.
    #[cold]
    #[inline(never)]
    fn sweep_one(&self, now: Instant, now_ms: u64, last: u64) {
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

    /// With the map full, sweeps the next shard in turn other than `busy` (whose write lock the
    /// caller holds) if its sweep is due and its lock is free: the room a new key needs may be
    /// held by an idle key of any shard.
    fn sweep_another(&self, busy: usize, now: Instant, now_ms: u64, every: u64) {
        let shards = self.shards.len();
        if shards == 1 {
            return;
        }
        let mut index = self.next_sweep.fetch_add(1, Ordering::Relaxed) % shards;
        if index == busy {
            index = (index + 1) % shards;
        }
        // `try_write`: two requests sweeping each other's shard never wait on each other.
        if self.sweep_due(index, now_ms, every)
            && let Ok(mut map) = self.shards[index].map.try_write()
        {
            self.sweep(&mut map, now, now_ms);
        }
    }

    /// Whether the map (with the maps sharing its bound) holds `max_keys` keys.
    fn is_full(&self) -> bool {
        self.bound.load(Ordering::Relaxed) >= self.config.max_keys
    }

    fn sweep(&self, map: &mut Table<K, V, S, I>, now: Instant, now_ms: u64) -> usize {
        let tick = self.tick(now_ms);
        let before = map.len();
        // While full, state that carries no information goes too, however recent.
        let spare = self.spare.as_ref().filter(|_| self.is_full());
        map.retain(|entry, state| {
            let idle =
                I::is_idle(&entry.stamp, tick, self.idle_ticks) && (self.evictable)(state, now);
            let keep = !idle && !spare.is_some_and(|spare| spare(state, now));
            if let (false, Some(on_evict)) = (keep, &self.on_evict) {
                on_evict(&entry.key, state);
            }
            keep
        });
        let evicted = before - map.len();
        if evicted > 0 {
            self.len.fetch_sub(evicted, Ordering::Relaxed);
            self.bound.fetch_sub(evicted, Ordering::Relaxed);
            self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
            if map.capacity() > 64 && map.len() < map.capacity() / 4 {
                map.shrink_to(map.len() * 2);
            }
        }
        evicted
    }
}

/// The longest a full map waits between two sweeps of one shard driven by new keys, in
/// milliseconds (shorter when a sixteenth of the idle timeout is).
const FULL_SWEEP_MS: u64 = 1_000;

/// Whole milliseconds, saturating: no 128-bit arithmetic on the hot path.
pub(super) fn millis_of(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// Shards: enough to keep writers on different keys apart. The bound is on the whole map, so a
/// shard may hold any share of the keys.
fn shard_count(max_keys: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, usize::from);
    (cores * 4)
        .next_power_of_two()
        .clamp(1, 64)
        // `max_keys` may be anything up to `usize::MAX`, whose next power of two overflows.
        .min(max_keys.checked_next_power_of_two().unwrap_or(usize::MAX))
        .max(1)
}

impl<K, V, S, I: Idleness> Drop for KeyedMap<K, V, S, I> {
    fn drop(&mut self) {
        // The keys leave the bound this map may share with another.
        self.bound.fetch_sub(*self.len.get_mut(), Ordering::Relaxed);
    }
}

impl<K, V: fmt::Debug, S, I: Idleness> fmt::Debug for KeyedMap<K, V, S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedMap")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("config", &self.config)
            .field("shards", &self.shards.len())
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}
