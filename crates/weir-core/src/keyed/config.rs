//! How big a keyed map grows and how it tells an idle key.
use std::time::Duration;

/// How many keys a [`KeyedMap`](crate::keyed::KeyedMap) stores and how soon it forgets an idle one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyedConfig {
    pub(super) max_keys: usize,
    pub(super) idle_timeout: Duration,
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
    /// open time), or use [`KeyedMap::evict_if`](crate::keyed::KeyedMap::evict_if).
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

/// How a [`KeyedMap`](crate::keyed::KeyedMap) tells that a key has gone idle: [`LastSeen`] (the default) or
/// [`ByState`]. Sealed: the map's storage depends on it.
pub trait Idleness: sealed::Sealed {}

/// The map records the time of each key's last request (4 bytes per key, stored at most once per
/// millisecond by a request) and evicts a key after [`KeyedConfig::idle_timeout`] without one, if
/// [`KeyedMap::evict_if`](crate::keyed::KeyedMap::evict_if) agrees. The default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastSeen;

/// The map records nothing per key: a key is idle when [`KeyedMap::evict_if`](crate::keyed::KeyedMap::evict_if)'s predicate says
/// so, reading the time from the state itself (a rate limiter's bucket that has been full again
/// for the idle timeout). A hit then writes nothing but the state, and each key costs up to 8
/// bytes less (the stamp and its padding). [`KeyedConfig::idle_timeout`] still sets how often the
/// map sweeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByState;

impl Idleness for LastSeen {}
impl Idleness for ByState {}

pub(super) mod sealed {
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
