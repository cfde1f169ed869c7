//! One quota: a rate per period, with a burst.

use std::time::Duration;

use weir_core::Name;

use crate::builder::ConfigError;

/// `rate` units per `period`, with up to `burst` units at once.
///
/// The presets allow `n` units per second, minute, hour or day with a burst of `n`:
///
/// ```
/// use std::time::Duration;
/// use weir_rate_limit::Quota;
///
/// let q = Quota::per_second(10).burst(20).named("edge");
/// assert_eq!(q.rate(), 10);
/// assert_eq!(q.period(), Duration::from_secs(1));
/// assert_eq!(q.burst_size(), 20);
/// assert_eq!(q.name(), "edge");
/// // One unit is restored every 100 ms.
/// assert_eq!(q.emission_interval(), Duration::from_millis(100));
/// ```
///
/// What `burst` means depends on the algorithm (see the crate docs): for GCRA and the token
/// bucket it is the bucket's capacity, for the leaky bucket the length of its queue; the window
/// algorithms allow `rate` per window and ignore it.
///
/// A quota is checked by [`RateLimitBuilder::build`](crate::RateLimitBuilder::build) (or
/// [`Quota::validate`]): every number must be at least 1 and `period × burst` must fit in 500
/// years of nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: u32,
    name: Name,
    /// `period / rate` in nanoseconds, rounded up (at least 1), computed once: the hot path
    /// divides nothing to get it.
    interval: u64,
    /// `interval × burst` in nanoseconds, saturating: the span of a full bucket, computed once
    /// (with `interval`, a function of the other fields, so equality and hashing are unchanged).
    span: u64,
}

const fn interval_of(rate: u32, period: Duration) -> u64 {
    let rate = if rate == 0 { 1 } else { rate as u64 };
    let nanos = period.as_nanos();
    let nanos = if nanos > u64::MAX as u128 {
        u64::MAX
    } else {
        nanos as u64
    };
    let n = nanos.div_ceil(rate);
    if n == 0 { 1 } else { n }
}

/// The longest `burst × emission interval` a quota may span: 500 years, in nanoseconds, so every
/// sum of two such spans and a timestamp fits in a `u64`.
const MAX_SPAN_NANOS: u128 = 500 * 365 * 86_400 * 1_000_000_000;

impl Quota {
    /// `rate` units per `period`, with a burst of `rate`.
    #[must_use]
    pub const fn new(rate: u32, period: Duration) -> Self {
        let interval = interval_of(rate, period);
        Self {
            rate,
            period,
            burst: rate,
            name: Name::new("default"),
            interval,
            span: interval.saturating_mul(rate as u64),
        }
    }

    /// `n` units per second, burst `n`.
    #[must_use]
    pub const fn per_second(n: u32) -> Self {
        Self::new(n, Duration::from_secs(1))
    }

    /// `n` units per minute, burst `n`.
    #[must_use]
    pub const fn per_minute(n: u32) -> Self {
        Self::new(n, Duration::from_secs(60))
    }

    /// `n` units per hour, burst `n`.
    #[must_use]
    pub const fn per_hour(n: u32) -> Self {
        Self::new(n, Duration::from_secs(3_600))
    }

    /// `n` units per day, burst `n`.
    #[must_use]
    pub const fn per_day(n: u32) -> Self {
        Self::new(n, Duration::from_secs(86_400))
    }

    /// Sets the burst: the units that may be spent at once after a quiet period.
    #[must_use]
    pub const fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self.span = self.interval.saturating_mul(burst as u64);
        self
    }

    /// Names the policy, as the `RateLimit` header fields and events report it (`"default"`
    /// unless set).
    #[must_use]
    pub fn named(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Units per period.
    #[must_use]
    pub const fn rate(&self) -> u32 {
        self.rate
    }

    /// The period.
    #[must_use]
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The burst.
    #[must_use]
    pub const fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The policy name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub(crate) const fn name_ref(&self) -> &Name {
        &self.name
    }

    /// The time one unit takes to be restored: `period / rate`, rounded **up** to a whole
    /// nanosecond, so rounding can only make the limiter stricter, never looser (by less than
    /// 1 ns per unit).
    #[must_use]
    pub const fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    pub(crate) const fn period_nanos(&self) -> u64 {
        let n = self.period.as_nanos();
        if n > u64::MAX as u128 {
            u64::MAX
        } else {
            n as u64
        }
    }

    /// `period / rate` in nanoseconds, rounded up; at least 1.
    #[inline]
    pub(crate) const fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// `interval × burst` in nanoseconds, saturating: how far ahead of now a full burst reaches.
    #[inline]
    pub(crate) const fn span_nanos(&self) -> u64 {
        self.span
    }

    /// Checks the rules; [`RateLimitBuilder::build`](crate::RateLimitBuilder::build) calls it on
    /// every quota.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroRate`], [`ConfigError::ZeroPeriod`], [`ConfigError::ZeroBurst`] or
    /// [`ConfigError::SpanTooLong`].
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.rate == 0 {
            return Err(ConfigError::ZeroRate);
        }
        if self.period.is_zero() {
            return Err(ConfigError::ZeroPeriod);
        }
        if self.burst == 0 {
            return Err(ConfigError::ZeroBurst);
        }
        let burst_span = self.interval_nanos() as u128 * self.burst as u128;
        if burst_span > MAX_SPAN_NANOS || self.period.as_nanos() > MAX_SPAN_NANOS {
            return Err(ConfigError::SpanTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_named_period_and_burst_equal_to_rate() {
        assert_eq!(Quota::per_minute(6).period(), Duration::from_secs(60));
        assert_eq!(Quota::per_hour(6).period(), Duration::from_secs(3600));
        assert_eq!(Quota::per_day(6).period(), Duration::from_secs(86_400));
        assert_eq!(Quota::per_day(6).burst_size(), 6);
        assert_eq!(Quota::per_minute(6).name(), "default");
    }

    #[test]
    fn interval_rounds_up_never_down() {
        let q = Quota::per_second(3);
        assert_eq!(q.interval_nanos(), 333_333_334);
        let sub_ms = Quota::new(1, Duration::from_micros(100));
        assert_eq!(sub_ms.interval_nanos(), 100_000);
        let tiny = Quota::new(10, Duration::from_nanos(1));
        assert_eq!(tiny.interval_nanos(), 1);
    }

    #[test]
    fn the_span_follows_the_burst() {
        assert_eq!(Quota::per_second(4).span_nanos(), 1_000_000_000);
        assert_eq!(Quota::per_second(4).burst(6).span_nanos(), 1_500_000_000);
        assert_eq!(Quota::per_day(1).burst(u32::MAX).span_nanos(), u64::MAX);
    }

    #[test]
    fn validation_names_each_rule() {
        assert_eq!(Quota::per_second(0).validate(), Err(ConfigError::ZeroRate));
        assert_eq!(
            Quota::new(1, Duration::ZERO).validate(),
            Err(ConfigError::ZeroPeriod)
        );
        assert_eq!(
            Quota::per_second(1).burst(0).validate(),
            Err(ConfigError::ZeroBurst)
        );
        assert_eq!(
            Quota::new(1, Duration::from_secs(86_400 * 365 * 400))
                .burst(2)
                .validate(),
            Err(ConfigError::SpanTooLong)
        );
        assert_eq!(Quota::per_day(u32::MAX).validate(), Ok(()));
    }
}
