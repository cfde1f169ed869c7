//! [`Tables`]: the limiter's tiers, replaced whole at run time by
//! [`RateLimitHandle::apply`](crate::RateLimitHandle), read with no lock and no reference
//! count.
//!
//! Every table the limiter ever had is kept until the limiter is dropped, at the index it was
//! given: a request reads the index of the current table (one atomic load) and borrows that
//! table for as long as it needs it, and an index it carries (a decision answered later, by
//! Redis) still names the same table. A table is a few hundred bytes and is replaced only by an
//! operator's change, so what the kept tables cost is bounded by the changes made, never by the
//! traffic. The first table sits inline: until the first change, a request reads one atomic
//! word and the field beside it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::store::Tier;

/// Segments of the later tables: segment `k` holds `2^k` of them, made when first needed.
const SEGMENTS: usize = 48;

/// One table: the tiers in their order, the default tier first.
pub(crate) type Table = Box<[Tier]>;

type Segment = Box<[OnceLock<Table>]>;

/// The limiter's tables: the first, and every one an apply installed since.
pub(crate) struct Tables {
    first: Table,
    later: [OnceLock<Segment>; SEGMENTS],
    /// The index of the current table: 0 the first, `i` the `i`-th installed since.
    current: AtomicUsize,
    /// Serialises installs (never taken by a request).
    install: Mutex<usize>,
}

/// Where later table `i` (0-based) sits: its segment and its place in it.
const fn locate(i: usize) -> (usize, usize) {
    let n = i + 1;
    let segment = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (segment, n - (1 << segment))
}

impl Tables {
    pub(crate) fn new(first: Table) -> Self {
        Self {
            first,
            later: [const { OnceLock::new() }; SEGMENTS],
            current: AtomicUsize::new(0),
            install: Mutex::new(0),
        }
    }

    /// The index of the current table.
    #[inline(always)]
    pub(crate) fn current_index(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// The current table.
    #[inline(always)]
    pub(crate) fn current(&self) -> &[Tier] {
        self.at(self.current_index())
    }

    /// Where `tier`, read from one of the tables, sits: the table's index and its place in it
    /// (for what outlives the request's borrow: a reservation's give-back, a decision answered
    /// later). The current table is looked at first; older ones only if an apply came between.
    pub(crate) fn locate(&self, tier: &Tier) -> (usize, usize) {
        let find = |i: usize| {
            self.at(i)
                .iter()
                .position(|t| std::ptr::eq(t, tier))
                .map(|place| (i, place))
        };
        let current = self.current_index();
        find(current)
            .or_else(|| (0..current).rev().find_map(find))
            .unwrap_or((0, 0))
    }

    /// The table at `index` (as [`current`](Self::current) gave it); the first table for an
    /// index never given.
    #[inline(always)]
    pub(crate) fn at(&self, index: usize) -> &[Tier] {
        if index == 0 {
            &self.first
        } else {
            self.later_at(index - 1)
        }
    }

    #[inline(never)]
    fn later_at(&self, i: usize) -> &[Tier] {
        let (segment, place) = locate(i);
        self.later
            .get(segment)
            .and_then(OnceLock::get)
            .and_then(|s| s.get(place))
            .and_then(OnceLock::get)
            .map_or(&self.first, |t| t)
    }

    /// Installs `table` as the current one: requests that read the index from now on use it;
    /// a request that read an older index finishes on that table. `check` runs under the
    /// install lock against the current table (so two applies never both pass a check against
    /// the table the other replaces); its error installs nothing.
    pub(crate) fn install<E>(
        &self,
        table: Table,
        check: impl FnOnce(&[Tier], &[Tier]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut count = self.install.lock().unwrap_or_else(PoisonError::into_inner);
        check(self.at(*count), &table)?;
        let (segment, place) = locate(*count);
        let Some(slots) = self.later.get(segment) else {
            // 2^48 changes: never in practice; the table stays as it is.
            return Ok(());
        };
        let slots = slots.get_or_init(|| (0..1usize << segment).map(|_| OnceLock::new()).collect());
        if slots[place].set(table).is_ok() {
            *count += 1;
            self.current.store(*count, Ordering::Release);
        }
        Ok(())
    }

    /// How many tables were installed after the first.
    pub(crate) fn installed(&self) -> usize {
        *self.install.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.current()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;

    fn table(rate: u32) -> Table {
        Box::new([Tier::new("default", [Quota::per_second(rate)])])
    }

    #[test]
    fn every_installed_table_stays_at_its_index() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1), (1, 0));
        assert_eq!(locate(2), (1, 1));
        assert_eq!(locate(3), (2, 0));
        let tables = Tables::new(table(1));
        for rate in 2..40 {
            tables.install(table(rate), |_, _| Ok::<_, ()>(())).unwrap();
            let now = tables.current();
            assert_eq!(tables.current_index(), rate as usize - 1);
            assert_eq!(now[0].quotas()[0].rate(), rate);
            assert_eq!(tables.locate(&now[0]), (rate as usize - 1, 0));
        }
        for i in 0..39 {
            assert_eq!(tables.at(i)[0].quotas()[0].rate(), i as u32 + 1);
        }
        assert_eq!(tables.installed(), 38);
        assert_eq!(
            tables.install(table(99), |_, _| Err("no")),
            Err("no"),
            "a refused check installs nothing"
        );
        assert_eq!(tables.current_index(), 38);
        assert_eq!(
            tables.locate(&tables.at(5)[0]),
            (5, 0),
            "an older table's tier"
        );
    }
}
