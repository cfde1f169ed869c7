//! One quota: a rate per period, with a burst.

use std::num::NonZeroU32;
use std::time::Duration;

use weir_core::Name;

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
/// **Valid by construction**: the rate and the burst are [`NonZeroU32`]s and the period is never
/// zero, so a `Quota` needs no checking and [`RateLimitLayer::new`](crate::RateLimitLayer::new)
/// cannot fail. The constructors are `const` and take plain integers, so call sites stay
/// readable: a zero rate or burst is raised to 1 and a zero period to 1 ms (the rule of every
/// `new` in weir), and a period, or `burst × emission interval`, longer than 500 years is
/// shortened to 500 years (so every sum of two spans and a timestamp fits in a `u64` of
/// nanoseconds). A configuration file refuses the same values with a
/// [`ConfigError`](weir_core::ConfigError) instead.
///
/// ```
/// use std::time::Duration;
/// use weir_rate_limit::Quota;
///
/// const EDGE: Quota = Quota::per_second(100).burst(20);
/// assert_eq!(EDGE.burst_size(), 20);
/// assert_eq!(Quota::per_second(0).rate(), 1);
/// assert_eq!(Quota::new(5, Duration::ZERO).period(), Duration::from_millis(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: NonZeroU32,
    /// Between 1 ns and 500 years.
    period: Duration,
    burst: NonZeroU32,
    name: Name,
    /// `period / rate` in nanoseconds, rounded up (at least 1), computed once: the hot path
    /// divides nothing to get it.
    interval: u64,
    /// `interval × burst` in nanoseconds, at most 500 years: the span of a full bucket,
    /// computed once (with `interval`, a function of the other fields, so equality and hashing
    /// are unchanged).
    span: u64,
}

const fn interval_of(rate: NonZeroU32, period: Duration) -> u64 {
    // The period is at most 500 years: its nanoseconds fit in a u64.
    let n = (period.as_nanos() as u64).div_ceil(rate.get() as u64);
    if n == 0 { 1 } else { n }
}

/// The longest `burst × emission interval` (and period) a quota may span: 500 years, in
/// nanoseconds, so every sum of two such spans and a timestamp fits in a `u64`.
pub(crate) const MAX_SPAN_NANOS: u64 = 500 * 365 * 86_400 * 1_000_000_000;

/// `n`, or 1 for 0.
const fn at_least_one(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// `period`, raised to 1 ms if zero and shortened to 500 years if longer.
const fn valid_period(period: Duration) -> Duration {
    if period.is_zero() {
        Duration::from_millis(1)
    } else if period.as_nanos() > MAX_SPAN_NANOS as u128 {
        Duration::from_nanos(MAX_SPAN_NANOS)
    } else {
        period
    }
}

impl Quota {
    /// `rate` units per `period`, with a burst of `rate`; zero is raised to 1 (the rate) or
    /// 1 ms (the period), and a period longer than 500 years shortened to 500 years (the rule of
    /// every `new` in weir).
    #[must_use]
    pub const fn new(rate: u32, period: Duration) -> Self {
        let rate = at_least_one(rate);
        let period = valid_period(period);
        let interval = interval_of(rate, period);
        Self {
            rate,
            period,
            burst: rate,
            name: Name::new("default"),
            interval,
            span: 0,
        }
        .with_span()
    }

    /// `n` units per second, burst `n` (0 is taken as 1).
    #[must_use]
    pub const fn per_second(n: u32) -> Self {
        Self::new(n, Duration::from_secs(1))
    }

    /// `n` units per minute, burst `n` (0 is taken as 1).
    #[must_use]
    pub const fn per_minute(n: u32) -> Self {
        Self::new(n, Duration::from_secs(60))
    }

    /// `n` units per hour, burst `n` (0 is taken as 1).
    #[must_use]
    pub const fn per_hour(n: u32) -> Self {
        Self::new(n, Duration::from_secs(3_600))
    }

    /// `n` units per day, burst `n` (0 is taken as 1).
    #[must_use]
    pub const fn per_day(n: u32) -> Self {
        Self::new(n, Duration::from_secs(86_400))
    }

    /// Sets the burst: the units that may be spent at once after a quiet period. 0 is taken as
    /// 1, and a burst whose span (`burst × emission interval`) would pass 500 years is lowered
    /// to the largest that does not.
    #[must_use]
    pub const fn burst(mut self, burst: u32) -> Self {
        self.burst = at_least_one(burst);
        self.with_span()
    }

    /// `span` from the burst and the interval, the burst lowered if the span would pass 500
    /// years.
    const fn with_span(mut self) -> Self {
        let most = MAX_SPAN_NANOS / self.interval;
        if self.burst.get() as u64 > most {
            // `most` is below `burst`, a u32, and at least 1 (the interval is at most 500 years).
            self.burst = at_least_one(most as u32);
        }
        self.span = self.interval * self.burst.get() as u64;
        self
    }

    /// Names the policy, as the `RateLimit` header fields and events report it (`"default"`
    /// unless set).
    #[must_use]
    pub fn named(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Units per period (at least 1).
    #[must_use]
    pub const fn rate(&self) -> u32 {
        self.rate.get()
    }

    /// The period (never zero).
    #[must_use]
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The burst (at least 1).
    #[must_use]
    pub const fn burst_size(&self) -> u32 {
        self.burst.get()
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
        // At most 500 years.
        self.period.as_nanos() as u64
    }

    /// `period / rate` in nanoseconds, rounded up; at least 1.
    #[inline]
    pub(crate) const fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// `interval × burst` in nanoseconds (at most 500 years): how far ahead of now a full burst
    /// reaches.
    #[inline]
    pub(crate) const fn span_nanos(&self) -> u64 {
        self.span
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
    }

    #[test]
    fn zero_is_raised_and_what_spans_past_500_years_is_shortened() {
        assert_eq!(Quota::per_second(0), Quota::per_second(1));
        assert_eq!(Quota::per_second(5).burst(0).burst_size(), 1);
        assert_eq!(
            Quota::new(1, Duration::ZERO).period(),
            Duration::from_millis(1)
        );
        let long = Quota::new(1, Duration::from_secs(86_400 * 365 * 600));
        assert_eq!(long.period_nanos(), MAX_SPAN_NANOS);
        let day = Quota::per_day(1).burst(u32::MAX);
        assert_eq!(day.burst_size(), 500 * 365);
        assert!(day.span_nanos() <= MAX_SPAN_NANOS);
        assert_eq!(Quota::per_day(u32::MAX).burst_size(), u32::MAX);
    }
}
