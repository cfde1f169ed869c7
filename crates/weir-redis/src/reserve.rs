//! [`Reservations`]: what each wait-mode reservation booked, so that cancelling it can give
//! its turn back only where no later request was booked after it (#15.4).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

/// The most reservations remembered at once: past it (after forgetting those whose end has
/// passed), a new reservation is not remembered, and cancelling it gives nothing back, which
/// never admits more.
const MAX_RESERVATIONS: usize = 65_536;

/// What one reservation booked.
#[derive(Debug)]
pub(crate) enum Booked {
    /// In Redis: the value the decision left in each quota's key. A cancel gives back only in
    /// the keys that still hold it.
    Redis(Box<[Box<[u8]>]>),
    /// In the local fallback, whose decision ends at this instant (its own clock reading).
    Local(Instant),
    /// Two reservations of one key with the same end: neither is given back.
    Ambiguous,
}

/// Reservations by the key's base name and the instant the limiter was told the reservation
/// ends (the instant it passed to `decide` plus the decision's `reset`), as the limiter hands
/// them back to `cancel_reserved`.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    map: Mutex<HashMap<(Box<[u8]>, Instant), Booked>>,
}

impl Reservations {
    fn lock(&self) -> MutexGuard<'_, HashMap<(Box<[u8]>, Instant), Booked>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers what the reservation of `base` ending at `end` booked.
    pub(crate) fn book(&self, base: &[u8], end: Instant, booked: Booked, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_RESERVATIONS {
            // A reservation whose end has passed can no longer be given back usefully.
            map.retain(|(_, end), _| *end > now);
            if map.len() >= MAX_RESERVATIONS {
                return;
            }
        }
        map.entry((base.into(), end))
            .and_modify(|b| *b = Booked::Ambiguous)
            .or_insert(booked);
    }

    /// What the reservation of `base` ending at `end` booked, forgotten; `None` when it was
    /// not remembered.
    pub(crate) fn take(&self, base: &[u8], end: Instant) -> Option<Booked> {
        self.lock().remove(&(Box::<[u8]>::from(base), end))
    }

    /// The number of reservations remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reservation_is_taken_once_and_twins_are_ambiguous() {
        let book = Reservations::default();
        let now = Instant::now();
        let end = now + Duration::from_secs(1);
        book.book(b"k", end, Booked::Local(end), now);
        assert!(matches!(book.take(b"k", end), Some(Booked::Local(_))));
        assert!(book.take(b"k", end).is_none());
        book.book(b"k", end, Booked::Local(end), now);
        book.book(b"k", end, Booked::Local(end), now);
        assert!(matches!(book.take(b"k", end), Some(Booked::Ambiguous)));
        // Past the cap, ended reservations are forgotten first.
        for i in 0..MAX_RESERVATIONS {
            book.book(&i.to_le_bytes(), now, Booked::Ambiguous, now);
        }
        book.book(b"new", end, Booked::Local(end), now);
        assert_eq!(book.len(), 1);
    }
}
