//! The pure decisions of the load shedder: which priority may take the next slot, and how loaded
//! the service is. No runtime, no service.

/// How important a request is: the lower the priority, the earlier it is shed.
///
/// Each priority may use only a share of the limit (by default critical 100%, normal 80%,
/// sheddable 50%), so critical requests are shed last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Shed first: background jobs, prefetches, health checks from crawlers.
    Sheddable,
    /// Ordinary traffic (what the default classifier says of every request).
    #[default]
    Normal,
    /// Shed last: logins, payments, the control plane.
    Critical,
}

impl Priority {
    /// `"sheddable"`, `"normal"` or `"critical"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sheddable => "sheddable",
            Self::Normal => "normal",
            Self::Critical => "critical",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Sheddable => 0,
            Self::Normal => 1,
            Self::Critical => 2,
        }
    }
}

/// How loaded the service is: defined in `weir-core` (so a fallback layer can read it without
/// depending on the load shedder) and re-exported here.
pub use weir_core::degrade::LoadLevel;

/// How many calls a priority may have in flight under `limit`: `ceil(limit * share)`, at least 1
/// for a positive share (a critical request is never locked out by rounding).
pub(crate) fn cap(limit: usize, share: f64) -> usize {
    if share <= 0.0 || share.is_nan() {
        return 0;
    }
    let cap = (limit as f64 * share).ceil();
    if cap >= limit as f64 {
        limit
    } else {
        (cap as usize).max(1)
    }
}

/// The load level of `in_flight` calls under `limit`, with thresholds as fractions of the limit.
pub(crate) fn level(
    in_flight: usize,
    limit: usize,
    elevated_at: f64,
    critical_at: f64,
) -> LoadLevel {
    let used = in_flight as f64 / limit.max(1) as f64;
    if used >= critical_at {
        LoadLevel::Critical
    } else if used >= elevated_at {
        LoadLevel::Elevated
    } else {
        LoadLevel::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn caps_are_shares_of_the_limit_rounded_up() {
        assert_eq!(cap(10, 1.0), 10);
        assert_eq!(cap(10, 0.8), 8);
        assert_eq!(cap(10, 0.55), 6);
        assert_eq!(cap(1, 0.5), 1, "never locked out by rounding");
        assert_eq!(cap(10, 0.0), 0);
        assert_eq!(cap(10, f64::NAN), 0);
        assert_eq!(cap(usize::MAX, 1.0), usize::MAX);
    }

    #[test]
    fn levels_follow_utilisation() {
        assert_eq!(level(0, 10, 0.7, 0.9), LoadLevel::Normal);
        assert_eq!(level(6, 10, 0.7, 0.9), LoadLevel::Normal);
        assert_eq!(level(7, 10, 0.7, 0.9), LoadLevel::Elevated);
        assert_eq!(level(9, 10, 0.7, 0.9), LoadLevel::Critical);
        assert_eq!(level(50, 10, 0.7, 0.9), LoadLevel::Critical);
        assert_eq!(level(0, 0, 0.7, 0.9), LoadLevel::Normal);
    }

    #[test]
    fn priorities_order_from_sheddable_to_critical() {
        assert!(Priority::Sheddable < Priority::Normal);
        assert!(Priority::Normal < Priority::Critical);
        assert_eq!(Priority::default(), Priority::Normal);
    }

    proptest! {
        #[test]
        fn a_higher_share_never_gets_a_lower_cap(limit in 1_usize..10_000, a in 0.0_f64..1.0, b in 0.0_f64..1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(cap(limit, lo) <= cap(limit, hi));
            prop_assert!(cap(limit, hi) <= limit);
        }
    }

    /// The names events and metrics label priorities with.
    #[test]
    fn priorities_have_their_names() {
        assert_eq!(Priority::Sheddable.as_str(), "sheddable");
        assert_eq!(Priority::Normal.as_str(), "normal");
        assert_eq!(Priority::Critical.as_str(), "critical");
        assert_eq!(Priority::default(), Priority::Normal);
    }
}
