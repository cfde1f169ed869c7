//! The pure decisions of the bulkhead: how long a request may wait for a permit, and the bounded
//! counter behind the queue limit. No runtime, no service: `now` is an argument.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::Counter;

/// The longest wait weir arms a timer for when neither a maximum wait nor a deadline bounds it
/// (Tokio's timer wheel tops out at about two years).
pub(crate) const FOREVER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a request found no permit and may not wait for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Every permit was taken and the queue was full (or the bulkhead has no queue).
    QueueFull,
    /// The request waited `max_wait` in the queue without getting a permit.
    MaxWait,
    /// The request's [`Deadline`](weir_core::Deadline) left no time to wait, or ran out while it
    /// waited.
    Deadline,
}

impl RejectReason {
    /// `"queue_full"`, `"max_wait"` or `"deadline"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::MaxWait => "max_wait",
            Self::Deadline => "deadline",
        }
    }
}

/// Until when a request that found no permit may wait: the earlier of `now + max_wait` and its
/// deadline, and which of the two ends the wait. `Err` when there is no time to wait at all.
pub(crate) fn wait_until(
    now: Instant,
    max_wait: Option<Duration>,
    deadline: Option<Instant>,
) -> Result<(Instant, RejectReason), RejectReason> {
    let by_wait = now + max_wait.unwrap_or(FOREVER);
    match deadline {
        Some(deadline) if deadline <= now => Err(RejectReason::Deadline),
        Some(deadline) if deadline < by_wait => Ok((deadline, RejectReason::Deadline)),
        _ => Ok((by_wait, RejectReason::MaxWait)),
    }
}

/// Adds one to `counter` unless it is already `max`; says whether it did.
pub(crate) fn bounded_increment<C: Counter>(counter: &C, max: usize) -> bool {
    counter
        .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_wait_ends_at_max_wait_or_the_deadline_whichever_is_first() {
        let now = Instant::now();
        assert_eq!(
            wait_until(now, Some(ms(100)), None),
            Ok((now + ms(100), RejectReason::MaxWait))
        );
        assert_eq!(
            wait_until(now, Some(ms(100)), Some(now + ms(40))),
            Ok((now + ms(40), RejectReason::Deadline))
        );
        assert_eq!(
            wait_until(now, Some(ms(100)), Some(now + ms(400))),
            Ok((now + ms(100), RejectReason::MaxWait))
        );
        assert_eq!(
            wait_until(now, None, Some(now + ms(400))),
            Ok((now + ms(400), RejectReason::Deadline))
        );
        assert_eq!(
            wait_until(now, None, None),
            Ok((now + FOREVER, RejectReason::MaxWait))
        );
    }

    #[test]
    fn an_expired_deadline_leaves_no_time_to_wait() {
        let now = Instant::now() + ms(10);
        assert_eq!(
            wait_until(now, Some(ms(100)), Some(now)),
            Err(RejectReason::Deadline)
        );
        assert_eq!(
            wait_until(now, None, Some(now - ms(5))),
            Err(RejectReason::Deadline)
        );
    }

    #[test]
    fn bounded_increment_stops_at_the_bound() {
        let counter = AtomicUsize::new(0);
        assert!(bounded_increment(&counter, 2));
        assert!(bounded_increment(&counter, 2));
        assert!(!bounded_increment(&counter, 2));
        assert_eq!(counter.load(SeqCst), 2);
        assert!(!bounded_increment(&AtomicUsize::new(0), 0));
    }

    proptest! {
        #[test]
        fn the_wait_never_passes_either_bound(wait in 1_u64..10_000, deadline in 0_u64..10_000) {
            let now = Instant::now();
            match wait_until(now, Some(ms(wait)), Some(now + ms(deadline))) {
                Ok((until, _)) => {
                    prop_assert!(until > now);
                    prop_assert!(until <= now + ms(wait));
                    prop_assert!(until <= now + ms(deadline));
                }
                Err(reason) => {
                    prop_assert_eq!(reason, RejectReason::Deadline);
                    prop_assert_eq!(deadline, 0);
                }
            }
        }
    }
}
