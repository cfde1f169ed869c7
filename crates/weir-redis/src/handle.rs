//! [`RedisHandle`]: counters and the health of a [`RedisStore`](crate::RedisStore).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The shared health of a store: when Redis failed, when to probe it again, what was counted.
#[derive(Debug)]
pub(crate) struct Health {
    origin: Instant,
    /// Nanoseconds since `origin` + 1 of the first failure of the current outage; 0: healthy.
    down_since: AtomicU64,
    /// Nanoseconds since `origin` before which Redis is not asked (one probe passes after it).
    skip_until: AtomicU64,
    /// Nanoseconds since `origin` of the last warning logged.
    logged_at: AtomicU64,
    suppressed: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decisions: AtomicU64,
    pub(crate) leased: AtomicU64,
}

impl Health {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            down_since: AtomicU64::new(0),
            skip_until: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            decisions: AtomicU64::new(0),
            leased: AtomicU64::new(0),
        }
    }

    fn at(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Whether to skip Redis now (an outage, and this request is not the one probe).
    pub(crate) fn skip(&self, now: Instant, probe_every: Duration) -> bool {
        let until = self.skip_until.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        let t = self.at(now);
        if t < until {
            return true;
        }
        // One request wins the probe; the others keep the fallback until it answers.
        let next = t.saturating_add(u64::try_from(probe_every.as_nanos()).unwrap_or(u64::MAX));
        self.skip_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }

    /// Records a failure; Redis is not asked again for `probe_every`.
    pub(crate) fn failed(&self, now: Instant, probe_every: Duration) {
        let t = self.at(now);
        self.errors.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .down_since
            .compare_exchange(0, t, Ordering::AcqRel, Ordering::Acquire);
        let next = t.saturating_add(u64::try_from(probe_every.as_nanos()).unwrap_or(u64::MAX));
        self.skip_until.store(next, Ordering::Release);
    }

    /// Records an answer; returns the outage it ends, if any.
    pub(crate) fn answered(&self, now: Instant) -> Option<Duration> {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if self.down_since.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let since = self.down_since.swap(0, Ordering::AcqRel);
        self.skip_until.store(0, Ordering::Release);
        (since != 0).then(|| Duration::from_nanos(self.at(now).saturating_sub(since)))
    }

    /// Whether to log this fallback (at most one warning per second); returns how many were
    /// suppressed since the last one.
    pub(crate) fn should_log(&self, now: Instant) -> Option<u64> {
        let t = self.at(now);
        let last = self.logged_at.load(Ordering::Relaxed);
        if last != 0 && t.saturating_sub(last) < 1_000_000_000 {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.logged_at
            .compare_exchange(last, t, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| self.suppressed.swap(0, Ordering::AcqRel))
    }

    pub(crate) fn is_degraded(&self) -> bool {
        self.down_since.load(Ordering::Acquire) != 0
    }
}

/// A read handle on a [`RedisStore`](crate::RedisStore)'s counters, from
/// [`RedisStoreBuilder::build_with_handle`](crate::RedisStoreBuilder::build_with_handle) or
/// [`RedisStore::handle`](crate::RedisStore::handle). Cheap to clone.
#[derive(Clone)]
pub struct RedisHandle {
    pub(crate) health: Arc<Health>,
}

impl RedisHandle {
    /// Decisions made by Redis.
    #[must_use]
    pub fn decisions(&self) -> u64 {
        self.health.decisions.load(Ordering::Relaxed)
    }

    /// Decisions made in this instance's memory from a lease (lease mode), without a round trip.
    #[must_use]
    pub fn leased(&self) -> u64 {
        self.health.leased.load(Ordering::Relaxed)
    }

    /// Decisions made by the failure policy because Redis was unreachable, slow or degraded.
    #[must_use]
    pub fn fallbacks(&self) -> u64 {
        self.health.fallbacks.load(Ordering::Relaxed)
    }

    /// Calls to Redis that failed or timed out.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    /// Whether the store is in an outage (Redis failed and has not answered since).
    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.health.is_degraded()
    }
}

impl fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHandle")
            .field("decisions", &self.decisions())
            .field("leased", &self.leased())
            .field("fallbacks", &self.fallbacks())
            .field("errors", &self.errors())
            .field("degraded", &self.is_degraded())
            .finish()
    }
}
