//! The pure algorithm: which deadline is in force, and whether any time is left. No runtime, no
//! `Service`; the clock reading is an argument.

use std::time::Duration;

use tokio::time::Instant;
use weir_core::Deadline;

/// When a call's timer starts, as decided at `call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// No deadline at all: no timer, ever.
    Never,
    /// `timeout` from the moment the inner future is first pending. For a request with no HTTP
    /// parts, whose deadline nobody else reads, this saves the clock reading on every call that
    /// is answered at once.
    After(Duration),
    /// A deadline fixed at `call` (an HTTP request's, which is stored in its extensions), and
    /// whether it is the caller's rather than this layer's own timeout.
    At(Deadline, Whose),
}

/// Whose deadline a call runs against: what a timeout means for the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whose {
    /// This layer's own timeout (or an earlier one of equal time): the upstream was too slow.
    Own,
    /// The caller's deadline (an incoming header, an outer deadline), strictly earlier than this
    /// layer's own timeout: the caller's budget ran out, which says nothing of the upstream.
    Caller,
}

/// Whose deadline `in_force` is, given this layer's own deadline.
#[inline]
pub(crate) fn whose(in_force: Deadline, own: Option<Deadline>) -> Whose {
    match own {
        Some(own) if own <= in_force => Whose::Own,
        _ => Whose::Caller,
    }
}

/// What server mode does with an incoming deadline shorter than its floor
/// ([`TimeoutBuilder::incoming_floor`](crate::TimeoutBuilder::incoming_floor)).
///
/// In a configuration file (feature `serde`): `"reject"` or `"raise"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum BelowFloor {
    /// Refuse the request at once, before the handler runs: a timeout of the caller's own
    /// deadline (`Error::is_caller_deadline`: 504 / `DEADLINE_EXCEEDED`).
    Reject,
    /// Raise the deadline to the floor: the request gets at least that much time.
    Raise,
}

/// An incoming deadline held to a floor of `floor` from `now`: unchanged at or above it, raised to
/// it, or (`Err`) refused.
#[inline]
pub(crate) fn apply_floor(
    incoming: Deadline,
    now: Instant,
    floor: Duration,
    below: BelowFloor,
) -> Result<Deadline, Deadline> {
    if incoming.remaining_at(now) >= floor {
        return Ok(incoming);
    }
    match below {
        BelowFloor::Reject => Err(incoming),
        BelowFloor::Raise => Ok(now.checked_add(floor).map_or(incoming, Deadline::at)),
    }
}

/// The start of a call with no HTTP parts: only the layer's own timeout counts. `None` when
/// the timeout is zero (no time at all: the call is refused).
#[inline]
pub(crate) fn start_relative(timeout: Option<Duration>) -> Option<Start> {
    match timeout {
        None => Some(Start::Never),
        Some(t) if t.is_zero() => None,
        Some(t) => Some(Start::After(t)),
    }
}

/// The start of a call whose deadline was worked out at `call` (`own` is this layer's own part
/// of it); `None` if it has passed.
#[inline]
pub(crate) fn start_at(
    deadline: Option<Deadline>,
    own: Option<Deadline>,
    now: Instant,
) -> Option<Start> {
    match deadline {
        None => Some(Start::Never),
        Some(d) if d.instant() <= now => None,
        Some(d) => Some(Start::At(d, whose(d, own))),
    }
}

/// The deadline `timeout` after `now`; `None` when there is no timeout, or when it lies beyond
/// what an `Instant` can hold (that is, never).
#[inline]
pub(crate) fn deadline_after(now: Instant, timeout: Option<Duration>) -> Option<Deadline> {
    now.checked_add(timeout?).map(Deadline::at)
}

/// The earlier of two optional deadlines: a deadline is never extended by a later one, and
/// "none" is later than any.
#[inline]
pub(crate) fn earliest(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.earliest(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(base: Instant, ms: u64) -> Deadline {
        Deadline::at(base + Duration::from_millis(ms))
    }

    #[test]
    fn the_deadline_counts_from_now() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Some(Duration::from_millis(100))),
            Some(at(now, 100))
        );
        assert_eq!(deadline_after(now, None), None);
        // Beyond what an Instant holds: no deadline, never a panic.
        assert_eq!(deadline_after(now, Some(Duration::MAX)), None);
    }

    #[test]
    fn the_earlier_deadline_wins_and_none_is_latest() {
        let now = Instant::now();
        assert_eq!(
            earliest(Some(at(now, 5)), Some(at(now, 9))),
            Some(at(now, 5))
        );
        assert_eq!(
            earliest(Some(at(now, 9)), Some(at(now, 5))),
            Some(at(now, 5))
        );
        assert_eq!(earliest(None, Some(at(now, 9))), Some(at(now, 9)));
        assert_eq!(earliest(Some(at(now, 9)), None), Some(at(now, 9)));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn a_call_starts_relative_or_at_a_deadline() {
        let now = Instant::now();
        assert_eq!(start_relative(None), Some(Start::Never));
        assert_eq!(start_relative(Some(Duration::ZERO)), None);
        assert_eq!(
            start_relative(Some(Duration::from_millis(3))),
            Some(Start::After(Duration::from_millis(3)))
        );
        assert_eq!(start_at(None, None, now), Some(Start::Never));
        assert_eq!(start_at(Some(at(now, 0)), None, now), None);
        assert_eq!(
            start_at(Some(at(now, 1)), Some(at(now, 1)), now),
            Some(Start::At(at(now, 1), Whose::Own))
        );
        // #16.1: the caller's deadline, earlier than the layer's own, is the caller's.
        assert_eq!(
            start_at(Some(at(now, 1)), Some(at(now, 5)), now),
            Some(Start::At(at(now, 1), Whose::Caller))
        );
        assert_eq!(
            start_at(Some(at(now, 1)), None, now),
            Some(Start::At(at(now, 1), Whose::Caller))
        );
    }

    /// #16.2: a deadline below the floor is refused or raised; one at or above it is kept.
    #[test]
    fn an_incoming_deadline_is_held_to_the_floor() {
        let now = Instant::now();
        let floor = Duration::from_millis(50);
        assert_eq!(
            apply_floor(at(now, 1), now, floor, BelowFloor::Reject),
            Err(at(now, 1))
        );
        assert_eq!(
            apply_floor(at(now, 1), now, floor, BelowFloor::Raise),
            Ok(at(now, 50))
        );
        for below in [BelowFloor::Reject, BelowFloor::Raise] {
            assert_eq!(apply_floor(at(now, 50), now, floor, below), Ok(at(now, 50)));
            assert_eq!(apply_floor(at(now, 90), now, floor, below), Ok(at(now, 90)));
        }
    }

    proptest! {
        #[test]
        fn earliest_never_extends_either_deadline(
            a in proptest::option::of(0_u64..10_000),
            b in proptest::option::of(0_u64..10_000),
        ) {
            let now = Instant::now();
            let (da, db) = (a.map(|ms| at(now, ms)), b.map(|ms| at(now, ms)));
            let e = earliest(da, db);
            prop_assert_eq!(e.is_some(), a.is_some() || b.is_some());
            if let Some(e) = e {
                for d in [da, db].into_iter().flatten() {
                    prop_assert!(e <= d);
                }
                prop_assert!(Some(e) == da || Some(e) == db);
            }
        }

        #[test]
        fn a_deadline_starts_a_call_until_it_has_passed(
            timeout in 1_u64..1_000_000,
            elapsed in 0_u64..2_000_000,
        ) {
            let now = Instant::now();
            let deadline = deadline_after(now, Some(Duration::from_micros(timeout)));
            let later = now + Duration::from_micros(elapsed);
            prop_assert_eq!(start_at(deadline, deadline, later).is_none(), elapsed >= timeout);
        }
    }
}
