//! [`Origin`]: a `tokio::time::Instant` turned into nanoseconds since a fixed instant, the time
//! every in-memory state counts in.

use std::time::Duration;

use tokio::time::Instant;

/// A fixed instant and the conversion of later instants into nanoseconds since it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    instant: std::time::Instant,
}

impl Origin {
    /// The origin `instant`.
    pub(crate) const fn new(instant: std::time::Instant) -> Self {
        Self { instant }
    }

    /// The origin.
    pub(crate) const fn instant(&self) -> std::time::Instant {
        self.instant
    }

    /// Nanoseconds from the origin to `now` (zero if `now` is earlier), saturating at about 584
    /// years.
    #[inline]
    pub(crate) fn nanos(&self, now: Instant) -> u64 {
        nanos_of(now.into_std().saturating_duration_since(self.instant))
    }
}

impl Origin {
    /// The instant `t` nanoseconds after the origin: the inverse of [`nanos`](Self::nanos)
    /// (exact for every instant not before the origin).
    #[inline]
    pub(crate) fn instant_at(&self, t: u64) -> Instant {
        Instant::from_std(self.instant + Duration::from_nanos(t))
    }
}

fn nanos_of(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nanos_count_from_the_origin_and_never_go_below_zero() {
        let start = Instant::now();
        let origin = Origin::new(start.into_std());
        assert_eq!(origin.nanos(start), 0);
        assert_eq!(origin.nanos(start + Duration::new(1, 5)), 1_000_000_005);
        let later = Origin::new((start + Duration::from_secs(1)).into_std());
        assert_eq!(later.nanos(start), 0);
        let at = start + Duration::new(3, 7);
        assert_eq!(origin.instant_at(origin.nanos(at)), at);
    }
}
