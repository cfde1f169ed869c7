//! The settings a running load shedder reads and a handle changes (issue #25): each read whole
//! with no lock (the two load-level thresholds as one versioned pair, a duration in one atomic
//! word), [`LoadShedTuning`] as the handle takes them, and [`Retune`], what the handle asks of
//! the shared state (below `shared` and `reconfigure`, which both use them).

use std::hint;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, fence};
use std::time::Duration;

use weir_core::ConfigError;

use crate::limit::ConfigLimit;
use crate::settings::{Levels, LoadShedSettings};

/// `elevated_at` and `critical_at`, read as one pair: a sequence lock over two atomic words. The
/// one writer at a time (an `apply`, under the algorithm's lock) makes the version odd, stores
/// both and makes it even again; a reader reads the version, both words and the version again,
/// and repeats only if a write was under way (two stores long).
#[derive(Debug)]
pub(crate) struct LevelCell {
    version: AtomicU64,
    elevated_at: AtomicU64,
    critical_at: AtomicU64,
}

impl LevelCell {
    pub(crate) fn new(levels: Levels) -> Self {
        Self {
            version: AtomicU64::new(0),
            elevated_at: AtomicU64::new(levels.elevated_at.to_bits()),
            critical_at: AtomicU64::new(levels.critical_at.to_bits()),
        }
    }

    /// `(elevated_at, critical_at)`, both of one version.
    #[inline]
    pub(crate) fn get(&self) -> (f64, f64) {
        loop {
            let before = self.version.load(Acquire);
            if before & 1 == 0 {
                let elevated_at = self.elevated_at.load(Relaxed);
                let critical_at = self.critical_at.load(Relaxed);
                fence(Acquire);
                if self.version.load(Relaxed) == before {
                    return (f64::from_bits(elevated_at), f64::from_bits(critical_at));
                }
            }
            hint::spin_loop();
        }
    }

    /// Replaces both thresholds; the caller is the only writer (it holds the algorithm's lock).
    pub(crate) fn set(&self, levels: Levels) {
        let version = self.version.load(Relaxed);
        self.version.store(version.wrapping_add(1), Relaxed);
        fence(Release);
        self.elevated_at
            .store(levels.elevated_at.to_bits(), Relaxed);
        self.critical_at
            .store(levels.critical_at.to_bits(), Relaxed);
        self.version.store(version.wrapping_add(2), Release);
    }
}

/// `None` as a word: no duration is this long in nanoseconds (584 years).
const NONE: u64 = u64::MAX;

/// An optional duration in one atomic word, as nanoseconds (saturated just below 584 years).
#[derive(Debug)]
pub(crate) struct DurationCell(AtomicU64);

impl DurationCell {
    fn word(duration: Option<Duration>) -> u64 {
        duration.map_or(NONE, |d| {
            u64::try_from(d.as_nanos()).map_or(NONE - 1, |n| n.min(NONE - 1))
        })
    }

    pub(crate) fn new(duration: Option<Duration>) -> Self {
        Self(AtomicU64::new(Self::word(duration)))
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<Duration> {
        let word = self.0.load(Relaxed);
        (word != NONE).then(|| Duration::from_nanos(word))
    }

    pub(crate) fn set(&self, duration: Option<Duration>) {
        self.0.store(Self::word(duration), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cells_read_back_what_was_set() {
        let cell = LevelCell::new(Levels::default());
        assert_eq!(cell.get(), (0.7, 0.9));
        cell.set(Levels {
            elevated_at: 0.5,
            critical_at: 0.6,
        });
        assert_eq!(cell.get(), (0.5, 0.6));
        let wait = DurationCell::new(None);
        assert_eq!(wait.get(), None);
        wait.set(Some(Duration::from_millis(50)));
        assert_eq!(wait.get(), Some(Duration::from_millis(50)));
        wait.set(Some(Duration::MAX));
        assert!(
            wait.get().is_some(),
            "a huge wait saturates, never reads as none"
        );
    }
}

/// What a running load shedder's handle reads and takes
/// ([`Reconfigure`](weir_core::reconfigure::Reconfigure) for [`LoadShedHandle`](crate::LoadShedHandle)): the plain settings and the limit.
///
/// ```
/// use weir_core::reconfigure::Reconfigure;
/// use weir_load_shed::{ConfigLimit, Fixed, LoadShedLayer};
///
/// let (_layer, handle) = LoadShedLayer::builder().max_in_flight(64).build_with_handle().unwrap();
/// let mut tuning = handle.settings();
/// tuning.limit = Some(ConfigLimit::Fixed(Fixed::new(16)));
/// tuning.settings.share.normal = 0.75;
/// handle.apply(tuning).unwrap();
/// assert_eq!(handle.limit(), 16);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LoadShedTuning {
    /// `share`, `levels`, `max_ready_wait` and `retry_after` as they are to be; `name` must be
    /// the layer's own.
    pub settings: LoadShedSettings,
    /// The limit as it is to be: a fixed one, or an adaptive algorithm's bounds and parameters
    /// (its estimate is carried over, clamped into the new bounds). `None` keeps the running
    /// algorithm as it is; [`settings`](weir_core::reconfigure::Reconfigure::settings) reads `None` for an algorithm
    /// that is none of the crate's.
    pub limit: Option<ConfigLimit>,
}

impl LoadShedTuning {
    /// `settings` and `limit` as one value.
    #[must_use]
    pub const fn new(settings: LoadShedSettings, limit: Option<ConfigLimit>) -> Self {
        Self { settings, limit }
    }
}

/// What the handle asks of the shared state, without its type parameters.
pub(crate) trait Retune {
    fn tuning(&self) -> LoadShedTuning;
    fn retune(&self, tuning: LoadShedTuning) -> Result<(), ConfigError>;
}
