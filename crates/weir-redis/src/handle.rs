//! [`RedisHandle`]: counters and the health of a [`RedisStore`](crate::RedisStore).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The circuit of one unit of Redis that fails alone: the whole server, or one Cluster slot.
#[derive(Debug, Default)]
struct Circuit {
    /// Nanoseconds since `origin` + 1 of the first failure of the current outage; 0: healthy.
    down_since: AtomicU64,
    /// Nanoseconds since `origin` before which Redis is not asked (one probe passes after it).
    skip_until: AtomicU64,
}

/// The shared health of a store: when Redis failed, when to probe it again, what was counted.
/// One circuit for a single server; on a Cluster one per slot, so a dead node sends only the
/// decisions of its own slots to the failure policy.
#[derive(Debug)]
pub(crate) struct Health {
    origin: Instant,
    circuits: Box<[Circuit]>,
    /// Circuits in an outage.
    degraded: AtomicU64,
    /// Nanoseconds since `origin` of the last warning logged.
    logged_at: AtomicU64,
    suppressed: AtomicU64,
    /// The same for recoveries (one per slot on a Cluster).
    recovery_logged_at: AtomicU64,
    recoveries_suppressed: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decisions: AtomicU64,
    pub(crate) leased: AtomicU64,
}

impl Health {
    /// The health of a store whose Redis fails as `circuits` independent units (1 for one
    /// server, 16 384 for a Cluster's slots).
    pub(crate) fn new(circuits: usize) -> Self {
        Self {
            origin: Instant::now(),
            circuits: (0..circuits.max(1)).map(|_| Circuit::default()).collect(),
            degraded: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            recovery_logged_at: AtomicU64::new(0),
            recoveries_suppressed: AtomicU64::new(0),
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

    fn circuit(&self, unit: usize) -> &Circuit {
        &self.circuits[unit % self.circuits.len()]
    }

    /// Whether to skip Redis now for `unit` (an outage, and this request is not the one probe).
    pub(crate) fn skip(&self, unit: usize, now: Instant, probe_every: Duration) -> bool {
        let c = self.circuit(unit);
        let until = c.skip_until.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        let t = self.at(now);
        if t < until {
            return true;
        }
        // One request wins the probe; the others keep the fallback until it answers.
        let next = t.saturating_add(u64::try_from(probe_every.as_nanos()).unwrap_or(u64::MAX));
        c.skip_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }

    /// Records a failure of `unit`; it is not asked again for `probe_every`.
    pub(crate) fn failed(&self, unit: usize, now: Instant, probe_every: Duration) {
        let c = self.circuit(unit);
        let t = self.at(now);
        self.errors.fetch_add(1, Ordering::Relaxed);
        if c.down_since
            .compare_exchange(0, t, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.degraded.fetch_add(1, Ordering::AcqRel);
        }
        let next = t.saturating_add(u64::try_from(probe_every.as_nanos()).unwrap_or(u64::MAX));
        c.skip_until.store(next, Ordering::Release);
    }

    /// Records an answer of `unit`; returns the outage it ends, if any.
    pub(crate) fn answered(&self, unit: usize, now: Instant) -> Option<Duration> {
        let c = self.circuit(unit);
        self.decisions.fetch_add(1, Ordering::Relaxed);
        if c.down_since.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let since = c.down_since.swap(0, Ordering::AcqRel);
        c.skip_until.store(0, Ordering::Release);
        if since == 0 {
            return None;
        }
        self.degraded.fetch_sub(1, Ordering::AcqRel);
        Some(Duration::from_nanos(self.at(now).saturating_sub(since)))
    }

    /// Whether to log this fallback (at most one warning per second); returns how many were
    /// suppressed since the last one.
    pub(crate) fn should_log(&self, now: Instant) -> Option<u64> {
        once_a_second(self.at(now), &self.logged_at, &self.suppressed)
    }

    /// Whether to log this recovery (at most one per second: a Cluster node coming back ends
    /// the outage of each of its slots); returns how many were suppressed since the last one.
    pub(crate) fn should_log_recovery(&self, now: Instant) -> Option<u64> {
        once_a_second(
            self.at(now),
            &self.recovery_logged_at,
            &self.recoveries_suppressed,
        )
    }

    /// Whether any unit is in an outage.
    pub(crate) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire) != 0
    }

    /// Whether `unit` is in an outage.
    pub(crate) fn is_down(&self, unit: usize) -> bool {
        self.circuit(unit).down_since.load(Ordering::Acquire) != 0
    }
}

/// `Some(suppressed)` when the last log (at `logged_at`) is a second old or more.
fn once_a_second(t: u64, logged_at: &AtomicU64, suppressed: &AtomicU64) -> Option<u64> {
    let last = logged_at.load(Ordering::Relaxed);
    if last != 0 && t.saturating_sub(last) < 1_000_000_000 {
        suppressed.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    logged_at
        .compare_exchange(last, t, Ordering::AcqRel, Ordering::Relaxed)
        .ok()
        .map(|_| suppressed.swap(0, Ordering::AcqRel))
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

    /// Whether the store is in an outage (Redis failed and has not answered since). On a
    /// Cluster: whether some slot failed and has not answered since (a slot is only asked
    /// again when a request for one of its keys comes).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_fails_and_recovers_on_its_own() {
        let health = Health::new(16_384);
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        health.failed(5, t0, every);
        assert!(health.is_degraded() && health.is_down(5));
        // Slot 5 is skipped until the probe time; slot 6 is asked as usual.
        assert!(health.skip(5, t0 + Duration::from_millis(10), every));
        assert!(!health.skip(6, t0 + Duration::from_millis(10), every));
        assert!(!health.is_down(6));
        // Slot 6 answering ends nothing; slot 5 answering ends its outage.
        assert_eq!(health.answered(6, t0 + Duration::from_millis(20)), None);
        assert!(health.is_degraded());
        assert_eq!(
            health.answered(5, t0 + Duration::from_millis(30)),
            Some(Duration::from_millis(30))
        );
        assert!(!health.is_degraded());
        assert_eq!(health.decisions.load(Ordering::Relaxed), 2);
        assert_eq!(health.errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn one_server_is_one_unit() {
        let health = Health::new(1);
        let t0 = Instant::now();
        health.failed(0, t0, Duration::from_secs(1));
        assert!(health.skip(0, t0, Duration::from_secs(1)));
        assert!(health.is_down(0));
    }
}
