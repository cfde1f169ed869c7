//! [`FailurePolicy`]: what a decision is when Redis is unreachable or slow.

/// What the store decides when Redis does not answer within the timeout.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit every request (availability first; the limit is not enforced during the outage).
    FailOpen,
    /// Refuse every request with a rate-limit error whose retry-after is the probe interval.
    FailClosed,
    /// The default: decide locally, in this instance's memory (weir-rate-limit's
    /// `MemoryStore`, same algorithm), with this instance's share of every quota: `1 / n` of
    /// its rate and of its burst (rounded down, at least 1), where `n` is the number of
    /// instances sharing the limit, set with
    /// [`RedisStoreBuilder::instances`](crate::RedisStoreBuilder::instances) (1 by default:
    /// set it to the fleet's size, or an outage multiplies the limit by the fleet's size).
    Local,
    /// Decide locally as [`Local`](Self::Local), with an explicit `share` (in `(0, 1]`) of
    /// every quota's rate and burst (rounded down, at least 1), whatever the instance count.
    LocalShare(f64),
}

impl FailurePolicy {
    /// The policy in `snake_case`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::Local | Self::LocalShare(_) => "local",
        }
    }
}

/// The part of each quota the local fallback keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Share {
    /// `1 / n` (integer division, exact).
    Instances(u32),
    /// A fraction in `(0, 1]`.
    Fraction(f64),
}

impl Share {
    /// This instance's part of `n` units: never more than its share, at least 1.
    pub(crate) fn part(self, n: u32) -> u32 {
        let part = match self {
            Self::Instances(k) => n / k.max(1),
            Self::Fraction(f) => {
                // Rounded down, with room for the representation error of fractions such as
                // 0.1 (0.1 × 30 is 3.0000000000000004, 0.3 × 10 is 2.9999999999999996).
                let x = (f64::from(n) * f + 1e-9).floor();
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "f is in (0, 1]: x lies in [0, u32::MAX]"
                )]
                let x = x.min(f64::from(n)) as u32;
                x
            }
        };
        part.max(1)
    }
}
