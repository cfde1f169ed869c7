//! Per-key state for keyed layers: bounded in memory, evicting idle keys by itself.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
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

    /// The most keys stored at once in the whole map (at least 1). Once it holds that many, a new
    /// key shares the map's overflow state until idle keys are evicted.
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

/// How a [`KeyedMap`] tells that a key has gone idle: [`LastSeen`] (the default) or
/// [`ByState`]. Sealed: the map's storage depends on it.
pub trait Idleness: sealed::Sealed {}

/// The map records the time of each key's last request (4 bytes per key, stored at most once per
/// millisecond by a request) and evicts a key after [`KeyedConfig::idle_timeout`] without one, if
/// [`KeyedMap::evict_if`] agrees. The default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastSeen;

/// The map records nothing per key: a key is idle when [`KeyedMap::evict_if`]'s predicate says
/// so, reading the time from the state itself (a rate limiter's bucket that has been full again
/// for the idle timeout). A hit then writes nothing but the state, and each key costs up to 8
/// bytes less (the stamp and its padding). [`KeyedConfig::idle_timeout`] still sets how often the
/// map sweeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByState;

impl Idleness for LastSeen {}
impl Idleness for ByState {}

mod sealed {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// What a map keeps next to each key to tell idleness, in the map's ticks (milliseconds,
    /// coarser only for idle timeouts above 12 days) on 32 bits, wrapping.
    pub trait Sealed: Send + Sync + 'static {
        /// Stored with each key.
        type Stamp: Send + Sync;

        fn stamp(now: u32) -> Self::Stamp;

        fn touch(stamp: &Self::Stamp, now: u32);

        /// Whether a key stamped `stamp` has been idle for at least `idle` ticks at `now`.
        fn is_idle(stamp: &Self::Stamp, now: u32, idle: u32) -> bool;
    }

    /// A stamp up to this many ticks after `now` (a request that read the clock after the sweep
    /// did) is recent, not 49 days old.
    const AHEAD: u32 = 1 << 16;

    impl Sealed for super::LastSeen {
        type Stamp = AtomicU32;

        fn stamp(now: u32) -> AtomicU32 {
            AtomicU32::new(now)
        }

        #[inline]
        fn touch(stamp: &AtomicU32, now: u32) {
            if stamp.load(Ordering::Relaxed) != now {
                stamp.store(now, Ordering::Relaxed);
            }
        }

        fn is_idle(stamp: &AtomicU32, now: u32, idle: u32) -> bool {
            // Wrapping: a key unseen for 2³² ticks (49 days in milliseconds) while no sweep ran
            // may look recent once; it is then evicted a round later.
            let since = now.wrapping_sub(stamp.load(Ordering::Relaxed));
            since >= idle && since <= u32::MAX - AHEAD
        }
    }

    impl Sealed for super::ByState {
        type Stamp = ();

        fn stamp(_now: u32) {}

        #[inline]
        fn touch((): &(), _now: u32) {}

        fn is_idle((): &(), _now: u32, _idle: u32) -> bool {
            true
        }
    }
}

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

struct Shard<K, V, S, I: Idleness> {
    map: RwLock<Table<K, V, S, I>>,
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
///   (the default) or [`ByState`].
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
pub struct KeyedMap<K, V, S = RandomState, I: Idleness = LastSeen> {
    shards: Box<[Shard<K, V, S, I>]>,
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
    /// An empty map hashing its keys with `hasher` (for example [`Prehashed`] for keys that
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
    /// [`ByState`], give [`evict_if`](Self::evict_if) the predicate that decides.
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
    /// never on a hit. With [`ByState`] it alone decides.
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
fn millis_of(d: Duration) -> u64 {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use proptest::prelude::*;

    use super::*;

    fn fresh(k: u32) -> (u32, AtomicU32) {
        (k, AtomicU32::new(0))
    }

    fn bump(map: &KeyedMap<u32, AtomicU32>, key: u32, now: Instant) -> u32 {
        map.with(key, now, fresh, |c| c.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// #15.9: the largest bound a map can be given makes a map like any other (the shard count
    /// overflowed computing the next power of two of `usize::MAX`).
    #[tokio::test(start_paused = true)]
    async fn the_largest_max_keys_works() {
        let map = KeyedMap::new(KeyedConfig::new().max_keys(usize::MAX), AtomicU32::new(0));
        let now = Instant::now();
        assert_eq!(bump(&map, 1, now), 1);
        assert_eq!(bump(&map, 1, now), 2);
        assert_eq!(KeyedConfig::new().max_keys(0).get_max_keys(), 1);
    }

    /// A prehashed key in shard `shard` (the hash's high half picks it), distinct for each `n`.
    fn in_shard(shard: u64, n: u64) -> u64 {
        (shard << 32) | n
    }

    fn bump_prehashed(map: &KeyedMap<u64, AtomicU32, Prehashed>, key: u64, now: Instant) -> u32 {
        map.with(
            key,
            now,
            |k| (k, AtomicU32::new(0)),
            |c| c.fetch_add(1, Ordering::Relaxed) + 1,
        )
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
        assert_eq!(map.len(), 4, "the first 4 keys fill the map");
        let mut stored = Vec::new();
        map.for_each(|k, v| stored.push((*k, v.load(Ordering::Relaxed))));
        stored.sort_unstable();
        assert_eq!(stored, [(0, 1), (1, 1), (2, 1), (3, 1)]);
        // Every other key was counted on the shared overflow state.
        assert_eq!(map.overflow().load(Ordering::Relaxed), 996);
        // A key that is stored keeps its own state.
        assert_eq!(bump(&map, 2, now), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn max_keys_bounds_the_whole_map_not_each_shard() {
        // Keys of one shard: with a per-shard share of the bound, the second would overflow.
        for max_keys in [2, 3, 5] {
            let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
                KeyedConfig::new().max_keys(max_keys),
                AtomicU32::new(0),
                Prehashed,
            );
            let now = Instant::now();
            for n in 0..max_keys as u64 {
                assert_eq!(bump_prehashed(&map, in_shard(0, n), now), 1, "key {n}");
                assert_eq!(
                    bump_prehashed(&map, in_shard(0, n), now),
                    2,
                    "key {n} stored"
                );
            }
            assert_eq!(map.len(), max_keys);
            assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
            // Full: the next key, whatever its shard, shares the overflow state.
            assert_eq!(bump_prehashed(&map, in_shard(1, 99), now), 1);
            assert_eq!(bump_prehashed(&map, in_shard(0, 99), now), 2);
            assert_eq!(map.len(), max_keys);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_maps_can_share_one_bound() {
        let config = KeyedConfig::new().max_keys(3);
        let one = KeyedMap::new(config, AtomicU32::new(0));
        let two = KeyedMap::new(config, AtomicU32::new(0)).share_bound_with(&one);
        let now = Instant::now();
        bump(&one, 1, now);
        bump(&two, 2, now);
        bump(&one, 3, now);
        assert_eq!((one.len(), two.len()), (2, 1));
        // Three keys between them: a fourth, in either map, shares that map's overflow state.
        assert_eq!(bump(&two, 4, now), 1);
        assert_eq!(bump(&two, 4, now), 2);
        assert_eq!(two.overflow().load(Ordering::Relaxed), 2);
        assert_eq!((one.len(), two.len()), (2, 1));
        // A map dropped gives its keys' room back.
        drop(two);
        assert_eq!(bump(&one, 5, now), 1);
        assert_eq!(one.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_key_takes_the_room_of_an_idle_key_in_another_shard() {
        let idle = Duration::from_secs(60);
        let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
            KeyedConfig::new().max_keys(2).idle_timeout(idle),
            AtomicU32::new(0),
            Prehashed,
        );
        let start = Instant::now();
        bump_prehashed(&map, in_shard(0, 1), start);
        bump_prehashed(&map, in_shard(1, 1), start);
        // The key of shard 0 stays busy; the key of shard 1 goes idle.
        let later = start + 2 * idle;
        bump_prehashed(&map, in_shard(0, 1), later);
        // A new key of shard 0: its own shard has nothing idle, shard 1 has.
        assert_eq!(bump_prehashed(&map, in_shard(0, 2), later), 1);
        assert_eq!(bump_prehashed(&map, in_shard(0, 2), later), 2, "stored");
        assert_eq!(map.len(), 2);
        assert_eq!(map.evicted(), 1);
        assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
    }

    /// #15.17: a full map makes room first with keys whose state carries no information, long
    /// before their idle timeout, so a flood of one-request keys does not lock new keys out.
    #[tokio::test(start_paused = true)]
    async fn a_full_map_evicts_spare_state_before_the_idle_timeout() {
        let idle = Duration::from_secs(600);
        let map = KeyedMap::new(
            KeyedConfig::new().max_keys(64).idle_timeout(idle),
            AtomicU32::new(0),
        )
        // A count of 1 is "at rest" here; 2 and more carry information.
        .evict_when_full_if(|count, _| count.load(Ordering::Relaxed) <= 1);
        let start = Instant::now();
        bump(&map, 0, start);
        bump(&map, 0, start);
        for key in 1..64 {
            bump(&map, key, start);
        }
        assert_eq!(map.len(), 64);
        // Two seconds later (far less than the idle timeout), new keys find room.
        let later = start + Duration::from_secs(2);
        for key in 1_000..1_010 {
            bump(&map, key, later);
            assert_eq!(bump(&map, key, later), 2, "key {key} has its own state");
        }
        assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
        // The key with information was kept.
        assert_eq!(bump(&map, 0, later), 3);
    }

    /// `peek` reads a stored key without storing a new one; `remove` forgets one and gives its
    /// room back.
    #[tokio::test(start_paused = true)]
    async fn peek_and_remove_one_key() {
        let map = KeyedMap::new(KeyedConfig::new().max_keys(1), AtomicU32::new(0));
        let now = Instant::now();
        assert_eq!(map.peek(&1, |c| c.load(Ordering::Relaxed)), None);
        assert!(map.is_empty(), "peek stores nothing");
        bump(&map, 1, now);
        bump(&map, 1, now);
        assert_eq!(map.peek(&1, |c| c.load(Ordering::Relaxed)), Some(2));
        assert!(map.remove(&1));
        assert!(!map.remove(&1));
        assert_eq!((map.len(), map.evicted()), (0, 0));
        // Its room is back: a new key is stored, not sent to the overflow state.
        assert_eq!(bump(&map, 2, now), 1);
        assert_eq!(bump(&map, 2, now), 2);
        assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
    }

    /// The caller of `with_millis_or` decides what a key that finds the map full gets.
    #[tokio::test(start_paused = true)]
    async fn with_millis_or_lets_the_caller_place_overflowing_keys() {
        let map = KeyedMap::new(KeyedConfig::new().max_keys(1), AtomicU32::new(0));
        let spread = [AtomicU32::new(0), AtomicU32::new(0)];
        let now = Instant::now();
        let at = |key: u32| {
            map.with_millis_or(key, now, 0, fresh, |found| {
                let count = found.unwrap_or_else(|key| &spread[key as usize % 2]);
                count.fetch_add(1, Ordering::Relaxed) + 1
            })
        };
        assert_eq!(at(7), 1);
        assert_eq!(at(7), 2, "stored");
        assert_eq!(at(2), 1);
        assert_eq!(at(3), 1, "another overflow state");
        assert_eq!(at(4), 2);
        assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
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
    async fn a_caller_counting_from_an_earlier_epoch_gets_the_same_idleness() {
        let idle = Duration::from_secs(60);
        let start = Instant::now();
        let epoch = start - Duration::from_secs(3_600);
        let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0))
            .counting_from(epoch);
        // The caller's own milliseconds since `epoch`, as a rate limiter converts its clock.
        let ms = |now: Instant| u64::try_from((now - epoch).as_millis()).expect("fits");
        let bump_at = |key: u32, now: Instant| {
            map.with_millis(key, now, ms(now), fresh, |c| {
                c.fetch_add(1, Ordering::Relaxed) + 1
            })
        };
        assert_eq!(bump_at(1, start), 1);
        assert_eq!(bump_at(2, start), 1);
        // A request right after the map was made sweeps nothing: the map counts it as swept.
        assert_eq!(map.evicted(), 0);
        assert_eq!(bump_at(1, start + Duration::from_secs(50)), 2);
        let later = start + Duration::from_secs(70);
        assert_eq!(map.sweep_now(later), 1, "2 is idle, 1 was seen 20 s ago");
        assert_eq!(bump_at(1, later), 3);
        assert_eq!(bump_at(2, later), 1, "2 was forgotten");
        // `with` converts the clock itself, to the same milliseconds.
        assert_eq!(bump(&map, 1, later), 4);
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
    async fn a_key_seen_after_the_sweeps_clock_read_is_kept() {
        // A request may read the clock after a concurrent sweep did: its stamp is a little
        // ahead of the sweep's `now`, which must not look like a key idle for 49 days.
        let map = KeyedMap::new(
            KeyedConfig::new().idle_timeout(Duration::from_secs(1)),
            AtomicU32::new(0),
        );
        let start = Instant::now();
        bump(&map, 1, start + Duration::from_secs(10));
        assert_eq!(map.sweep_now(start + Duration::from_secs(9)), 0);
        assert_eq!(map.sweep_now(start + Duration::from_millis(10_999)), 0);
        assert_eq!(map.sweep_now(start + Duration::from_secs(11)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeouts_longer_than_the_stamps_range_still_hold() {
        // 100 days is more milliseconds than 32 bits count: stamps use coarser ticks.
        let day = Duration::from_secs(86_400);
        let map = KeyedMap::new(
            KeyedConfig::new().idle_timeout(100 * day),
            AtomicU32::new(0),
        );
        let start = Instant::now();
        bump(&map, 1, start);
        bump(&map, 2, start + 50 * day);
        assert_eq!(map.sweep_now(start + 99 * day), 0);
        assert_eq!(map.sweep_now(start + 101 * day), 1, "1 idle for 101 days");
        assert_eq!(map.sweep_now(start + 149 * day), 0, "2 idle for 99 days");
        assert_eq!(map.sweep_now(start + 151 * day), 1);
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
    async fn by_state_leaves_idleness_to_the_state() {
        // The state is the time of its key's last request, in milliseconds since `start`.
        let start = Instant::now();
        let idle = Duration::from_secs(60);
        let map: KeyedMap<u32, AtomicU64, RandomState, ByState> = KeyedMap::with_idleness(
            KeyedConfig::new().idle_timeout(idle),
            AtomicU64::new(0),
            RandomState::new(),
            ByState,
        )
        .evict_if(move |seen, now| {
            let seen = start + Duration::from_millis(seen.load(Ordering::Relaxed));
            now.saturating_duration_since(seen) >= idle
        });
        let request = |key: u32, at: Duration| {
            map.with(
                key,
                start + at,
                |k| (k, AtomicU64::new(0)),
                |s| s.store(millis_of(at), Ordering::Relaxed),
            );
        };
        request(1, Duration::ZERO);
        request(2, Duration::ZERO);
        request(1, Duration::from_secs(30));
        assert_eq!(map.sweep_now(start + Duration::from_secs(61)), 1);
        let mut left = Vec::new();
        map.for_each(|k, _| left.push(*k));
        assert_eq!(left, [1]);
        assert_eq!(map.sweep_now(start + Duration::from_secs(91)), 1);
        assert!(map.is_empty());
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
        assert!(map.is_empty());
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
        assert_eq!(map.len(), 1_000, "bounded");
        // A sweep per miss would examine ~`1 000 / shards` entries 100 000 times (millions);
        // at most one sweep per shard per idle/16 examines each stored entry ~16 times.
        let examined = examined.load(Ordering::Relaxed);
        assert!(examined <= 20 * 1_000, "{examined} examinations");
    }

    #[tokio::test(start_paused = true)]
    async fn prehashed_keys_work_like_any_other() {
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
        // An address key: the 4-byte stamp fills the key's padding (17 + 4 bytes, then the
        // 8-byte state): a 32-byte entry, 37 bytes with the control byte at 7/8 load.
        let ip = KeyedMap::<std::net::IpAddr, AtomicU64>::bytes_per_key();
        assert_eq!(ip, (32 + 1) * 8 / 7);
        // A prehashed key whose state tells its own idleness: 8 + 8 bytes, as small as a map of
        // `u64` to `u64` gets.
        let hashed = KeyedMap::<u64, AtomicU64, Prehashed, ByState>::bytes_per_key();
        assert_eq!(hashed, (16 + 1) * 8 / 7);
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<KeyedMap<String, AtomicU32>>();
        check::<KeyedMap<u64, AtomicU32, Prehashed, ByState>>();
    }

    proptest! {
        /// With no key idle, the map stores exactly the first `max_keys` distinct keys, each
        /// with its own count, and counts every other request on the overflow state.
        #[test]
        fn the_first_max_keys_keys_are_stored_and_no_more(
            max_keys in 1_usize..12,
            keys in proptest::collection::vec((0_u64..4, 0_u64..8), 0..64),
        ) {
            let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
                KeyedConfig::new().max_keys(max_keys),
                AtomicU32::new(0),
                Prehashed,
            );
            let now = Instant::now();
            let mut first: Vec<u64> = Vec::new();
            for &(shard, n) in &keys {
                let key = in_shard(shard, n);
                if !first.contains(&key) && first.len() < max_keys {
                    first.push(key);
                }
                bump_prehashed(&map, key, now);
            }
            let mut stored = Vec::new();
            map.for_each(|k, v| stored.push((*k, v.load(Ordering::Relaxed))));
            stored.sort_unstable();
            let mut expected: Vec<(u64, u32)> = first
                .iter()
                .map(|k| (*k, u32::try_from(keys.iter().filter(|&&(s, n)| in_shard(s, n) == *k).count()).unwrap()))
                .collect();
            expected.sort_unstable();
            prop_assert_eq!(map.len(), first.len());
            prop_assert_eq!(&stored, &expected);
            let on_stored: u32 = expected.iter().map(|(_, c)| c).sum();
            prop_assert_eq!(
                map.overflow().load(Ordering::Relaxed) + on_stored,
                u32::try_from(keys.len()).unwrap()
            );
        }
    }
}
