//! The most limited keys: a space-saving top-16 of the keys refused, updated only on a refusal.
//!
//! A key is never a metric label (one series per client is unbounded), so an operator asks the
//! handle instead: [`RateLimitHandle::top_limited`](crate::RateLimitHandle::top_limited).

use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, PoisonError};

/// How many keys the table follows.
pub(crate) const TRACKED: usize = 16;

/// How many bytes of a key's `Debug` form are kept.
const LABEL_BYTES: usize = 64;

/// One of the most limited keys, from
/// [`RateLimitHandle::top_limited`](crate::RateLimitHandle::top_limited).
///
/// Counts are a space-saving estimate: the key was refused at least `rejected - error` times and
/// at most `rejected` times since it entered the table. Any key refused more than `1 / 16` of all
/// refusals is in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limited {
    /// The key's `Debug` form (a `String` key is quoted), cut to 64 bytes.
    pub key: String,
    /// Refusals counted for it (an overestimate by at most `error`).
    pub rejected: u64,
    /// How much of `rejected` it may have inherited from the key it replaced.
    pub error: u64,
}

/// The table: 16 slots behind a `Mutex` touched only on a refusal, and never waited for (a
/// refusal that finds it busy goes uncounted: the estimate is approximate anyway, and a flood
/// on many threads must not queue on it).
pub(crate) struct TopLimited {
    hasher: RandomState,
    slots: Mutex<Vec<Slot>>,
}

struct Slot {
    hash: u64,
    count: u64,
    error: u64,
    label: Label,
}

impl Default for TopLimited {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            slots: Mutex::new(Vec::with_capacity(TRACKED)),
        }
    }
}

impl TopLimited {
    /// Counts one refusal of `key`. Allocates nothing: a key's label is written into the slot.
    pub(crate) fn record<K: Hash + fmt::Debug + ?Sized>(&self, key: &K) {
        let hash = self.hasher.hash_one(key);
        let Ok(mut slots) = self.slots.try_lock() else {
            return;
        };
        if let Some(slot) = slots.iter_mut().find(|s| s.hash == hash) {
            slot.count += 1;
            return;
        }
        let slot = Slot {
            hash,
            count: 1,
            error: 0,
            label: Label::of(key),
        };
        if slots.len() < TRACKED {
            slots.push(slot);
            return;
        }
        // Space-saving: the new key takes the least-counted slot and inherits its count.
        let least = slots
            .iter_mut()
            .min_by_key(|s| s.count)
            .expect("the table is full");
        *least = Slot {
            count: least.count + 1,
            error: least.count,
            ..slot
        };
    }

    /// The `n` most refused keys (at most 16), most refused first.
    pub(crate) fn top(&self, n: usize) -> Vec<Limited> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut top: Vec<Limited> = slots
            .iter()
            .map(|s| Limited {
                key: s.label.as_str().to_owned(),
                rejected: s.count,
                error: s.error,
            })
            .collect();
        drop(slots);
        top.sort_by(|a, b| b.rejected.cmp(&a.rejected).then(a.key.cmp(&b.key)));
        top.truncate(n);
        top
    }
}

impl fmt::Debug for TopLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopLimited").finish_non_exhaustive()
    }
}

/// A key's `Debug` form, cut at a character boundary within 64 bytes, held inline.
#[derive(Clone, Copy)]
struct Label {
    bytes: [u8; LABEL_BYTES],
    len: usize,
}

impl Label {
    fn of<K: fmt::Debug + ?Sized>(key: &K) -> Self {
        let mut label = Self {
            bytes: [0; LABEL_BYTES],
            len: 0,
        };
        // `write_str` stops taking text once full; the error only ends the formatting early.
        let _ = write!(label, "{key:?}");
        label
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for Label {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LABEL_BYTES - self.len;
        if s.len() <= room {
            self.bytes[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
            return Ok(());
        }
        let cut = (0..=room)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        self.bytes[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
        self.len += cut;
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_keys_survive_a_flood_of_single_refusals() {
        let top = TopLimited::default();
        // 2 200 refusals: a key refused more than 2 200 / 16 times is guaranteed a slot.
        for round in 0..1000_u32 {
            top.record(&format!("flood-{round}"));
            if round % 2 == 0 {
                top.record("heavy-a");
                top.record("heavy-b");
            }
            if round % 5 == 0 {
                top.record("heavy-c");
            }
        }
        let found = top.top(3);
        let keys: Vec<_> = found.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys[2], "\"heavy-c\"");
        assert!(keys[..2].contains(&"\"heavy-a\"") && keys[..2].contains(&"\"heavy-b\""));
        for limited in &found {
            let truth = if limited.key == "\"heavy-c\"" {
                200
            } else {
                500
            };
            assert!(limited.rejected - limited.error <= truth, "{limited:?}");
            assert!(limited.rejected >= truth, "{limited:?}");
        }
        assert_eq!(top.top(100).len(), TRACKED);
    }

    #[test]
    fn a_long_key_is_cut_at_a_character_boundary() {
        let top = TopLimited::default();
        let key = "é".repeat(100);
        top.record(&key);
        let label = &top.top(1)[0].key;
        assert!(label.len() <= LABEL_BYTES, "{}", label.len());
        assert!(label.starts_with("\"éé"));
        assert_eq!(label.len(), 63, "a quote and 31 two-byte characters");
    }
}
