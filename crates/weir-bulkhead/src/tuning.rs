//! The queue settings a running bulkhead reads and a handle changes (issue #25): the queue's
//! length, the longest wait and the `Retry-After`, in one versioned record that a request reads
//! whole, with no lock.
//!
//! The record is a sequence lock over atomic words: the one writer at a time (an `apply`, which
//! holds `Tuning::apply_lock`) makes the version odd, stores the words and makes it even again;
//! a reader reads the version, the words and the version again, and reads once more if a write
//! was under way. Only the queueing and refusing paths read it (the happy path takes a free
//! permit and never does), and a write is three stores, so a reader practically never repeats.

use std::hint;
use std::sync::Mutex;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, fence};
use std::time::Duration;

use weir_core::Name;

/// The queue settings of a bulkhead (or of every partition of a partitioned one), as one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) max_queue: usize,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) retry_after: Duration,
}

/// `None` as a word: no duration is this long in nanoseconds (584 years).
const NONE: u64 = u64::MAX;

/// A duration as a word: its nanoseconds, saturated just below [`NONE`].
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).map_or(NONE - 1, |n| n.min(NONE - 1))
}

impl Policy {
    fn to_words(self) -> [u64; 3] {
        [
            self.max_queue as u64,
            self.max_wait.map_or(NONE, nanos),
            nanos(self.retry_after),
        ]
    }

    fn from_words([max_queue, max_wait, retry_after]: [u64; 3]) -> Self {
        Self {
            max_queue: usize::try_from(max_queue).unwrap_or(usize::MAX),
            max_wait: (max_wait != NONE).then(|| Duration::from_nanos(max_wait)),
            retry_after: Duration::from_nanos(retry_after),
        }
    }
}

/// What a running bulkhead's handle can change besides its size, and what it cannot (kept to
/// answer `settings()` and to refuse a change of it).
pub(crate) struct Tuning {
    version: AtomicU64,
    words: [AtomicU64; 3],
    /// Serialises `apply`s: a resize and the record's write happen as one change.
    pub(crate) apply_lock: Mutex<()>,
    pub(crate) name: Name,
    pub(crate) backpressure: bool,
    pub(crate) release_at_head: bool,
}

impl Tuning {
    pub(crate) fn new(
        policy: Policy,
        name: Name,
        backpressure: bool,
        release_at_head: bool,
    ) -> Self {
        Self {
            version: AtomicU64::new(0),
            words: policy.to_words().map(AtomicU64::new),
            apply_lock: Mutex::new(()),
            name,
            backpressure,
            release_at_head,
        }
    }

    /// The queue settings in force, read whole.
    pub(crate) fn policy(&self) -> Policy {
        loop {
            let before = self.version.load(Acquire);
            if before & 1 == 0 {
                let words = [0, 1, 2].map(|i| self.words[i].load(Relaxed));
                fence(Acquire);
                if self.version.load(Relaxed) == before {
                    return Policy::from_words(words);
                }
            }
            hint::spin_loop();
        }
    }

    /// Replaces the queue settings. The caller holds `apply_lock` (one writer at a time).
    pub(crate) fn set_policy(&self, policy: Policy) {
        let version = self.version.load(Relaxed);
        self.version.store(version.wrapping_add(1), Relaxed);
        fence(Release);
        for (slot, word) in self.words.iter().zip(policy.to_words()) {
            slot.store(word, Relaxed);
        }
        self.version.store(version.wrapping_add(2), Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_round_trips_through_its_words() {
        let policies = [
            Policy {
                max_queue: 0,
                max_wait: None,
                retry_after: Duration::from_secs(1),
            },
            Policy {
                max_queue: 64,
                max_wait: Some(Duration::from_millis(250)),
                retry_after: Duration::from_nanos(1),
            },
        ];
        for policy in policies {
            let tuning = Tuning::new(policy, Name::default(), false, false);
            assert_eq!(tuning.policy(), policy);
        }
        let tuning = Tuning::new(policies[0], Name::default(), false, false);
        tuning.set_policy(policies[1]);
        assert_eq!(tuning.policy(), policies[1]);
        // A wait too long for 64 bits of nanoseconds saturates at 584 years, never reads as none.
        let huge = Policy {
            max_wait: Some(Duration::MAX),
            ..policies[1]
        };
        assert!(Policy::from_words(huge.to_words()).max_wait.is_some());
    }
}
