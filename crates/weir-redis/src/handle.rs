//! [`RedisHandle`]: counters and the health of a [`RedisStore`](crate::RedisStore).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::BoxError;

use crate::connection::Connection;

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
    /// The same for recoveries (one per slot on a Cluster): units back since the last report,
    /// and the longest of their outages, in nanoseconds.
    recovery_logged_at: AtomicU64,
    recovered: AtomicU64,
    longest_outage: AtomicU64,
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
            recovered: AtomicU64::new(0),
            longest_outage: AtomicU64::new(0),
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

    /// Coalesces the recovery of one unit (`outage` long) with the others: returns the units
    /// back since the last report and the longest of their outages when a report is due: at
    /// most one a second (a Cluster node coming back ends the outage of each of its slots, up
    /// to thousands), and one when the last unit in an outage answers.
    pub(crate) fn recovery(&self, now: Instant, outage: Duration) -> Option<(u64, Duration)> {
        self.recovered.fetch_add(1, Ordering::AcqRel);
        self.longest_outage.fetch_max(
            u64::try_from(outage.as_nanos()).unwrap_or(u64::MAX),
            Ordering::AcqRel,
        );
        let t = self.at(now);
        let last = self.recovery_logged_at.load(Ordering::Acquire);
        if self.is_degraded() {
            if last != 0 && t.saturating_sub(last) < 1_000_000_000 {
                return None;
            }
            if self
                .recovery_logged_at
                .compare_exchange(last, t, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return None;
            }
        } else {
            self.recovery_logged_at.store(t, Ordering::Release);
        }
        let units = self.recovered.swap(0, Ordering::AcqRel);
        let longest = self.longest_outage.swap(0, Ordering::AcqRel);
        (units != 0).then(|| (units, Duration::from_nanos(longest)))
    }

    /// Every unit in an outage is probed by its next request (after the connection was
    /// rebuilt: the next answer may come from the node that took over).
    pub(crate) fn probe_now(&self) {
        for c in &*self.circuits {
            if c.down_since.load(Ordering::Acquire) != 0 {
                // 1 is the earliest time: the next `skip` lets one request through.
                c.skip_until.store(1, Ordering::Release);
            }
        }
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
    pub(crate) conn: Arc<Connection>,
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

    /// How many times the connection was rebuilt (by [`refresh`](Self::refresh), or by the
    /// store after repeated failures of a server or slot).
    #[must_use]
    pub fn refreshes(&self) -> u64 {
        self.conn.rebuilds.load(Ordering::Relaxed)
    }

    /// Rebuilds the connection now: new connections and, on a Cluster, a slot map read afresh
    /// from the nodes (`CLUSTER SLOTS`), in place of the current one; every slot or server in
    /// an outage is then probed by its next request. The store does it by itself after
    /// repeated failures; call it when you know the topology changed (a failover, a DNS
    /// change). Requests in flight finish on the old connection.
    ///
    /// # Errors
    ///
    /// No new connection could be made (the current one stays).
    pub async fn refresh(&self) -> Result<(), BoxError> {
        self.conn.rebuild().await?;
        self.health.probe_now();
        Ok(())
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
            .field("refreshes", &self.refreshes())
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

    /// #28.3: a whole Cluster node coming back (here 100 of its slots answering at once)
    /// makes two reports, not one per slot, and together they count every slot.
    #[tokio::test(start_paused = true)]
    async fn recoveries_of_many_slots_are_coalesced() {
        let health = Health::new(16_384);
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        for slot in 0..100 {
            health.failed(slot, t0, every);
        }
        let back = t0 + Duration::from_millis(2_500);
        let mut reports = Vec::new();
        for slot in 0..100 {
            let outage = health.answered(slot, back).expect("an outage ends");
            if let Some(report) = health.recovery(back, outage) {
                reports.push(report);
            }
        }
        // The first slot back is reported at once; the last one (nothing is down any more)
        // reports the 99 others.
        assert_eq!(
            reports,
            [
                (1, Duration::from_millis(2_500)),
                (99, Duration::from_millis(2_500))
            ]
        );
        assert!(!health.is_degraded());
        // A second later, with another slot down, the next recovery is reported again.
        health.failed(7, back, every);
        health.failed(8, back, every);
        let later = back + Duration::from_secs(1);
        let outage = health.answered(7, later).expect("an outage ends");
        assert_eq!(health.recovery(later, outage), Some((1, every)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rebuilt_connection_lets_every_failed_unit_probe_at_once() {
        let health = Health::new(16_384);
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        health.failed(3, t0, every);
        health.failed(4, t0, every);
        assert!(health.skip(3, t0, every));
        health.probe_now();
        // One probe per failed unit passes now; healthy units are untouched.
        assert!(!health.skip(3, t0, every));
        assert!(health.skip(3, t0, every));
        assert!(!health.skip(4, t0, every));
        assert!(!health.skip(5, t0, every));
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
