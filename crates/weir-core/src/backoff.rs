//! Backoff: how long to wait before trying again, growing with each try, with jitter that
//! survives the cap; and a small, seedable random source for it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the delay grows with each retry, before the cap and the jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Growth {
    Constant,
    Linear { step: Duration },
    Exponential { factor: f64 },
}

/// A backoff strategy: how long to wait before retry number `n`.
///
/// A delay is computed in three steps, always in this order:
///
/// 1. **growth**, from the retry number `n` (0 for the first retry):
///    [`constant`](Self::constant) `base`; [`linear`](Self::linear) `base + n × step`;
///    [`exponential`](Self::exponential) `base × factor^n` (factor 2 unless [`factor`](Self::factor)
///    says otherwise);
/// 2. **cap**: the grown delay is limited to [`max`](Self::max) (no cap unless set);
/// 3. **jitter**, applied *after* the cap (see [`Jitter`]), so clients that have all reached the
///    cap still wait different times and do not retry in lock-step.
///
/// Every step saturates: no retry number (up to `u32::MAX`) overflows, panics or gives a negative
/// delay, and [`bounds`](Self::bounds) says exactly which range a delay falls in.
///
/// ```
/// use std::time::Duration;
/// use weir_core::backoff::{Backoff, FastRandom, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_millis(100))
///     .max(Duration::from_secs(2))
///     .jitter(Jitter::Full);
/// let mut rng = FastRandom::seeded(7);
///
/// // The third retry waits somewhere in [0, 400 ms]; the 40th in [0, 2 s], never exactly 2 s
/// // for everyone.
/// assert_eq!(backoff.bounds(2, Duration::ZERO), (Duration::ZERO, Duration::from_millis(400)));
/// assert!(backoff.delay(2, Duration::ZERO, &mut rng) <= Duration::from_millis(400));
/// assert_eq!(backoff.bounds(40, Duration::ZERO), (Duration::ZERO, Duration::from_secs(2)));
/// assert_eq!(backoff.bounds(u32::MAX, Duration::ZERO).1, Duration::from_secs(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    growth: Growth,
    base: Duration,
    max: Duration,
    jitter: Jitter,
}

/// How a delay is randomised, after the cap.
///
/// With `d` the grown and capped delay:
///
/// | jitter | delay |
/// |---|---|
/// | `None` | exactly `d` |
/// | `Full` | uniform in `[0, d]` (AWS "full jitter"; gRPC before 2024; Envoy) |
/// | `Equal` | uniform in `[d / 2, d]` |
/// | `Proportional(p)` | uniform in `[d × (1 − p%), d × (1 + p%)]`, `p` at most 100 (gRPC since 2024: `Proportional(20)`); the only mode that may go past the cap, by at most `p%` |
/// | `Decorrelated` | uniform in `[base, min(max, 3 × previous delay)]` (AWS "decorrelated jitter", Finagle): it ignores the growth and grows from the previous delay instead; the cap bounds the range, not the draw, so the jitter survives it |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: every client waits the same time.
    #[default]
    None,
    /// Uniform between zero and the delay.
    Full,
    /// Uniform between half the delay and the delay.
    Equal,
    /// Uniform between `base` and three times the previous delay, capped.
    Decorrelated,
    /// Uniform within plus or minus this percentage of the delay (clamped to 100).
    Proportional(u8),
}

impl Backoff {
    /// The same delay before every retry.
    #[must_use]
    pub const fn constant(delay: Duration) -> Self {
        Self::with_growth(Growth::Constant, delay)
    }

    /// `base`, then `base + step`, `base + 2 × step`, ...; `step` is `base` unless
    /// [`step`](Self::step) says otherwise.
    #[must_use]
    pub const fn linear(base: Duration) -> Self {
        Self::with_growth(Growth::Linear { step: base }, base)
    }

    /// `base`, then `base × factor`, `base × factor²`, ...; `factor` is 2 unless
    /// [`factor`](Self::factor) says otherwise.
    #[must_use]
    pub const fn exponential(base: Duration) -> Self {
        Self::with_growth(Growth::Exponential { factor: 2.0 }, base)
    }

    const fn with_growth(growth: Growth, base: Duration) -> Self {
        Self {
            growth,
            base,
            max: Duration::MAX,
            jitter: Jitter::None,
        }
    }

    /// Caps the grown delay (before jitter). No cap unless set.
    #[must_use]
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the jitter, applied after the cap. [`Jitter::None`] unless set.
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the growth factor of an exponential backoff. A factor that is not finite or is below
    /// 1 is taken as 1 (no growth); other strategies ignore it.
    #[must_use]
    pub const fn factor(mut self, factor: f64) -> Self {
        if let Growth::Exponential { .. } = self.growth {
            let factor = if factor.is_finite() && factor >= 1.0 {
                factor
            } else {
                1.0
            };
            self.growth = Growth::Exponential { factor };
        }
        self
    }

    /// Sets the step of a linear backoff; other strategies ignore it.
    #[must_use]
    pub const fn step(mut self, step: Duration) -> Self {
        if let Growth::Linear { .. } = self.growth {
            self.growth = Growth::Linear { step };
        }
        self
    }

    /// The first delay, before growth.
    #[must_use]
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The cap on the grown delay ([`Duration::MAX`] when there is none).
    #[must_use]
    pub const fn cap(&self) -> Duration {
        self.max
    }

    /// The jitter mode.
    #[must_use]
    pub const fn jitter_mode(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry number `retry` (0 for the first retry), grown and capped, before
    /// jitter.
    #[must_use]
    pub fn grown(&self, retry: u32) -> Duration {
        let grown = match self.growth {
            Growth::Constant => self.base,
            Growth::Linear { step } => step
                .checked_mul(retry)
                .and_then(|extra| self.base.checked_add(extra))
                .unwrap_or(Duration::MAX),
            Growth::Exponential { factor } => exponential(self.base, factor, retry),
        };
        grown.min(self.max)
    }

    /// The range `(low, high)`, both inclusive, that the delay before retry number `retry` falls
    /// in, given the delay actually waited before the previous retry (`previous`, read only by
    /// [`Jitter::Decorrelated`]; pass [`Duration::ZERO`] or the base for the first retry).
    #[must_use]
    pub fn bounds(&self, retry: u32, previous: Duration) -> (Duration, Duration) {
        match self.jitter {
            Jitter::None => {
                let d = self.grown(retry);
                (d, d)
            }
            Jitter::Full => (Duration::ZERO, self.grown(retry)),
            Jitter::Equal => {
                let d = self.grown(retry);
                (d - d / 2, d)
            }
            Jitter::Proportional(percent) => {
                let d = self.grown(retry);
                let percent = u128::from(percent.min(100));
                let nanos = d.as_nanos();
                (
                    from_nanos(nanos * (100 - percent) / 100),
                    from_nanos(nanos * (100 + percent) / 100),
                )
            }
            Jitter::Decorrelated => {
                let low = self.base.min(self.max);
                let high = previous.saturating_mul(3).clamp(low, self.max);
                (low, high)
            }
        }
    }

    /// The delay before retry number `retry` (0 for the first retry): a uniform draw from
    /// [`bounds`](Self::bounds)`(retry, previous)`, using `rng`.
    ///
    /// `previous` is the delay waited before the previous retry; only [`Jitter::Decorrelated`]
    /// reads it.
    #[must_use]
    pub fn delay<R: Random + ?Sized>(
        &self,
        retry: u32,
        previous: Duration,
        rng: &mut R,
    ) -> Duration {
        let (low, high) = self.bounds(retry, previous);
        uniform(low, high, rng)
    }
}

/// `base × factor^retry`, saturating at [`Duration::MAX`].
fn exponential(base: Duration, factor: f64, retry: u32) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    if factor == 2.0 {
        // Exact for the common case: a shift, saturating.
        return match 1_u32.checked_shl(retry) {
            Some(multiple) => base.checked_mul(multiple).unwrap_or(Duration::MAX),
            None => Duration::MAX,
        };
    }
    let power = factor.powi(i32::try_from(retry).unwrap_or(i32::MAX));
    Duration::try_from_secs_f64(base.as_secs_f64() * power).unwrap_or(Duration::MAX)
}

fn from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below one billion, so it fits a u32.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// A uniform draw in `[low, high]` (both inclusive); `low` when `high <= low`.
fn uniform<R: Random + ?Sized>(low: Duration, high: Duration, rng: &mut R) -> Duration {
    let Some(span) = high.checked_sub(low) else {
        return low;
    };
    if span.is_zero() {
        return low;
    }
    let span = span.as_nanos();
    let draw = u128::from(rng.next_u64());
    // span + 1 values; for spans that fit 64 bits the multiply-shift is exact enough and
    // unbiased to within 2^-64; larger spans (over 584 years) are drawn in two halves.
    let offset = if let Ok(span) = u64::try_from(span) {
        ((u128::from(span) + 1) * draw) >> 64
    } else {
        let high_bits = (((span >> 64) + 1) * draw) >> 64;
        ((high_bits << 64) | u128::from(rng.next_u64())).min(span)
    };
    low.saturating_add(from_nanos(offset))
}

/// A source of random numbers for jitter.
///
/// Injectable so tests and simulations are deterministic: [`FastRandom::seeded`] gives a
/// reproducible sequence, and any type with a `next_u64` can stand in. Nothing here is
/// cryptographic; jitter does not need it.
pub trait Random {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

impl<R: Random + ?Sized> Random for &mut R {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed from the process's hash keys (random per process, read once from the OS by the standard
/// library) and a counter, so two calls never return the same seed. No lock, no system call after
/// the first.
fn entropy() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one(n)
}

/// A fast, seedable random source (SplitMix64) for one owner.
///
/// [`FastRandom::new`] seeds it from a cheap per-process source; [`FastRandom::seeded`] makes it
/// reproducible.
///
/// ```
/// use weir_core::backoff::{FastRandom, Random};
///
/// let mut a = FastRandom::seeded(42);
/// let mut b = FastRandom::seeded(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct FastRandom {
    state: u64,
}

impl FastRandom {
    /// A source seeded from a cheap, per-process random value.
    #[must_use]
    pub fn new() -> Self {
        Self::seeded(entropy())
    }

    /// A reproducible source: the same seed gives the same sequence.
    #[must_use]
    pub const fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl Default for FastRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl Random for FastRandom {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }
}

/// The same generator as [`FastRandom`], shared between threads without a lock: its state is one
/// atomic, advanced with `fetch_add`. `&SharedRandom` is a [`Random`].
///
/// A layer keeps one in its shared state so every clone draws from it; with a seed, a
/// single-threaded test or simulation sees the same sequence every run, and the same sequence as
/// [`FastRandom::seeded`] with that seed.
///
/// ```
/// use weir_core::backoff::{FastRandom, Random, SharedRandom};
///
/// let shared = SharedRandom::seeded(9);
/// let mut single = FastRandom::seeded(9);
/// assert_eq!((&shared).next_u64(), single.next_u64());
/// assert_eq!(shared.next(), single.next_u64());
/// ```
#[derive(Debug)]
pub struct SharedRandom {
    state: AtomicU64,
}

impl SharedRandom {
    /// A source seeded from a cheap, per-process random value.
    #[must_use]
    pub fn new() -> Self {
        Self::seeded(entropy())
    }

    /// A reproducible source.
    #[must_use]
    pub const fn seeded(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next(&self) -> u64 {
        mix(self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }
}

impl Default for SharedRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl Random for &SharedRandom {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A "random" source that always returns the same bits.
    struct Fixed(u64);

    impl Random for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    /// A factor only shapes an exponential backoff, and one below 1 (or not finite) is 1.
    #[test]
    fn factor_is_exponential_only_and_at_least_one() {
        let constant = Backoff::constant(100 * MS);
        assert_eq!(constant.factor(3.0), constant);
        let exp = Backoff::exponential(100 * MS);
        assert_eq!(exp.factor(0.5).grown(3), 100 * MS);
        assert_eq!(exp.factor(f64::INFINITY).grown(3), 100 * MS);
        assert_eq!(exp.factor(3.0).grown(2), 900 * MS);
        assert_eq!(exp.jitter(Jitter::Full).jitter_mode(), Jitter::Full);
        assert_eq!(exp.jitter_mode(), Jitter::None);
    }

    /// Every source of randomness works through `&mut` and the shared one through `&`; the
    /// defaults are fresh sources.
    #[test]
    fn random_sources_by_reference_and_by_default() {
        let full = Backoff::constant(100 * MS).jitter(Jitter::Full);
        let mut seeded = FastRandom::seeded(7);
        let mut again = FastRandom::seeded(7);
        let by_ref = full.delay(0, Duration::ZERO, &mut &mut seeded);
        assert_eq!(by_ref, full.delay(0, Duration::ZERO, &mut again));
        let shared = SharedRandom::seeded(7);
        let other = SharedRandom::seeded(7);
        assert_eq!(
            full.delay(0, Duration::ZERO, &mut &shared),
            full.delay(0, Duration::ZERO, &mut &other)
        );
        for rng in [
            &mut FastRandom::default() as &mut dyn Random,
            &mut &SharedRandom::new(),
        ] {
            assert!(full.delay(0, Duration::ZERO, rng) <= 100 * MS);
        }
        let _ = SharedRandom::default().next();
    }

    #[test]
    fn growth_without_jitter() {
        let base = 100 * MS;
        let exp = Backoff::exponential(base);
        let got: Vec<_> = (0..5).map(|n| exp.grown(n)).collect();
        assert_eq!(got, [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1600 * MS]);

        let exp = Backoff::exponential(base).factor(1.5).max(300 * MS);
        let got: Vec<_> = (0..4).map(|n| exp.grown(n)).collect();
        assert_eq!(got, [100 * MS, 150 * MS, 225 * MS, 300 * MS]);

        let lin = Backoff::linear(base).step(50 * MS);
        let got: Vec<_> = (0..3).map(|n| lin.grown(n)).collect();
        assert_eq!(got, [100 * MS, 150 * MS, 200 * MS]);

        let constant = Backoff::constant(base);
        assert_eq!(constant.grown(u32::MAX), base);
        let mut rng = FastRandom::seeded(1);
        assert_eq!(constant.delay(3, Duration::ZERO, &mut rng), base);
    }

    #[test]
    fn bad_factors_mean_no_growth() {
        for factor in [f64::NAN, f64::INFINITY, 0.5, -2.0] {
            let b = Backoff::exponential(MS).factor(factor);
            assert_eq!(b.grown(30), MS, "{factor}");
        }
    }

    #[test]
    fn saturates_without_a_cap() {
        assert_eq!(Backoff::exponential(MS).grown(u32::MAX), Duration::MAX);
        assert_eq!(
            Backoff::exponential(MS).factor(3.0).grown(u32::MAX),
            Duration::MAX
        );
        assert_eq!(Backoff::linear(MS).grown(u32::MAX), MS * u32::MAX + MS);
        assert_eq!(Backoff::linear(Duration::MAX).grown(2), Duration::MAX);
        let b = Backoff::exponential(MS).jitter(Jitter::Proportional(50));
        assert_eq!(b.bounds(u32::MAX, Duration::ZERO).1, Duration::MAX);
        assert_eq!(
            Backoff::exponential(Duration::ZERO).grown(u32::MAX),
            Duration::ZERO
        );
    }

    #[test]
    fn jitter_bounds_at_the_cap() {
        let cap = Duration::from_secs(10);
        let b = Backoff::exponential(100 * MS).max(cap);
        let at = |j: Jitter| b.jitter(j).bounds(1000, Duration::ZERO);
        assert_eq!(at(Jitter::None), (cap, cap));
        assert_eq!(at(Jitter::Full), (Duration::ZERO, cap));
        assert_eq!(at(Jitter::Equal), (cap / 2, cap));
        assert_eq!(at(Jitter::Proportional(20)), (8 * cap / 10, 12 * cap / 10));
        assert_eq!(at(Jitter::Proportional(255)), (Duration::ZERO, 2 * cap));
        let d = b.jitter(Jitter::Decorrelated);
        assert_eq!(d.bounds(0, Duration::ZERO), (100 * MS, 100 * MS));
        assert_eq!(d.bounds(0, 100 * MS), (100 * MS, 300 * MS));
        assert_eq!(d.bounds(9, Duration::from_secs(9)), (100 * MS, cap));
    }

    #[test]
    fn uniform_reaches_both_ends() {
        assert_eq!(uniform(MS, 3 * MS, &mut Fixed(0)), MS);
        assert_eq!(uniform(MS, 3 * MS, &mut Fixed(u64::MAX)), 3 * MS);
        assert_eq!(uniform(3 * MS, MS, &mut Fixed(u64::MAX)), 3 * MS);
        assert_eq!(
            uniform(Duration::ZERO, Duration::MAX, &mut Fixed(u64::MAX)),
            Duration::MAX
        );
        assert_eq!(
            uniform(Duration::ZERO, Duration::MAX, &mut Fixed(0)),
            Duration::ZERO
        );
    }

    #[test]
    fn seeded_sources_repeat_and_differ() {
        let a: Vec<_> = {
            let mut r = FastRandom::seeded(5);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let shared = SharedRandom::seeded(5);
        let b: Vec<_> = (0..4).map(|_| shared.next()).collect();
        assert_eq!(a, b);
        let mut other = FastRandom::seeded(6);
        assert_ne!(a[0], other.next_u64());
        assert_ne!(FastRandom::new().next_u64(), FastRandom::new().next_u64());
    }

    /// Both sources are SplitMix64 (Steele, Lea and Flood), output for output: the reference
    /// generator's first outputs from seed 0 and from 1 234 567 (the shared one read through
    /// `&SharedRandom`, as a [`Random`]).
    #[test]
    fn sources_are_splitmix64() {
        let mut fast = FastRandom::seeded(0);
        let from_zero: Vec<_> = (0..4).map(|_| fast.next_u64()).collect();
        assert_eq!(
            from_zero,
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F,
                0xF88B_B8A8_724C_81EC
            ]
        );
        let shared = SharedRandom::seeded(1_234_567);
        let mut by_ref = &shared;
        let from_seed: Vec<_> = (0..5).map(|_| by_ref.next_u64()).collect();
        assert_eq!(
            from_seed,
            [
                0x599E_D017_FB08_FC85,
                0x2C73_F084_5854_0FA5,
                0x883E_BCE5_A3F2_7C77,
                0x3FBE_F740_E917_7B3F,
                0xE3B8_3467_08CB_5ECD
            ]
        );
    }

    #[test]
    fn full_jitter_spreads_clients_at_the_cap() {
        let b = Backoff::exponential(100 * MS)
            .max(Duration::from_secs(1))
            .jitter(Jitter::Full);
        let mut rng = FastRandom::seeded(3);
        let draws: Vec<_> = (0..100)
            .map(|_| b.delay(50, Duration::ZERO, &mut rng))
            .collect();
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 90, "{}", distinct.len());
        let mean = draws.iter().sum::<Duration>() / 100;
        assert!(mean > 350 * MS && mean < 650 * MS, "{mean:?}");
    }

    fn any_jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
            any::<u8>().prop_map(Jitter::Proportional),
        ]
    }

    fn any_backoff() -> impl Strategy<Value = Backoff> {
        let base = prop_oneof![
            Just(Duration::ZERO),
            (0_u64..10_000_000_000).prop_map(Duration::from_nanos),
            Just(Duration::MAX),
        ];
        let cap = prop_oneof![
            Just(Duration::MAX),
            (0_u64..100_000).prop_map(Duration::from_millis),
        ];
        let growth = prop_oneof![
            Just(0_u8).prop_map(|_| Growth::Constant),
            (0_u64..u64::MAX).prop_map(|n| Growth::Linear {
                step: Duration::from_nanos(n)
            }),
            prop_oneof![Just(2.0), 1.0_f64..10.0].prop_map(|factor| Growth::Exponential { factor }),
        ];
        (growth, base, cap, any_jitter()).prop_map(|(growth, base, max, jitter)| Backoff {
            growth,
            base,
            max,
            jitter,
        })
    }

    fn any_retry() -> impl Strategy<Value = u32> {
        prop_oneof![0_u32..64, any::<u32>(), Just(u32::MAX)]
    }

    proptest! {
        #[test]
        fn every_delay_is_within_its_bounds(
            backoff in any_backoff(),
            retry in any_retry(),
            previous in (0_u64..u64::MAX).prop_map(Duration::from_nanos),
            seed in any::<u64>(),
        ) {
            let (low, high) = backoff.bounds(retry, previous);
            prop_assert!(low <= high);
            let d = backoff.delay(retry, previous, &mut FastRandom::seeded(seed));
            prop_assert!(low <= d && d <= high, "{:?} not in [{:?}, {:?}]", d, low, high);
            let grown = backoff.grown(retry);
            prop_assert!(grown <= backoff.cap());
            match backoff.jitter {
                Jitter::None => prop_assert_eq!(d, grown),
                Jitter::Full => prop_assert_eq!((low, high), (Duration::ZERO, grown)),
                Jitter::Equal => prop_assert!(low >= grown / 2 && high == grown),
                Jitter::Proportional(p) => {
                    let p = u32::from(p.min(100));
                    let nanos = grown.as_nanos();
                    prop_assert!(low <= grown && grown <= high);
                    prop_assert!(low.as_nanos() >= nanos * u128::from(100 - p) / 100);
                    prop_assert!(high == Duration::MAX || high.as_nanos() <= nanos * u128::from(100 + p) / 100);
                }
                Jitter::Decorrelated => {
                    prop_assert!(high <= backoff.cap());
                    prop_assert_eq!(low, backoff.base().min(backoff.cap()));
                }
            }
        }

        #[test]
        fn growth_never_shrinks(backoff in any_backoff(), retry in 0_u32..u32::MAX) {
            prop_assert!(backoff.grown(retry) <= backoff.grown(retry + 1));
        }

        #[test]
        fn jitter_survives_the_cap(
            base_ms in 1_u64..1000,
            cap_ms in 1_u64..60_000,
            retry in 40_u32..=u32::MAX,
            jitter in prop_oneof![
                Just(Jitter::Full),
                Just(Jitter::Equal),
                Just(Jitter::Decorrelated),
                (1_u8..=100).prop_map(Jitter::Proportional),
            ],
        ) {
            // Far past the cap, the range is still wide: clients spread out.
            let cap = Duration::from_millis(cap_ms.max(base_ms * 2));
            let b = Backoff::exponential(Duration::from_millis(base_ms)).max(cap).jitter(jitter);
            let (low, high) = b.bounds(retry, cap);
            prop_assert!(high - low >= cap / 100, "[{:?}, {:?}]", low, high);
            prop_assert!(high >= cap);
        }

        #[test]
        fn decorrelated_is_finite_and_never_below_base(
            base in (1_u64..u64::MAX).prop_map(Duration::from_nanos),
            cap in prop_oneof![Just(Duration::MAX), (1_u64..u64::MAX).prop_map(Duration::from_nanos)],
            seed in any::<u64>(),
        ) {
            let b = Backoff::exponential(base).max(cap).jitter(Jitter::Decorrelated);
            let mut rng = FastRandom::seeded(seed);
            let mut previous = Duration::ZERO;
            for retry in 0..200 {
                let d = b.delay(retry, previous, &mut rng);
                prop_assert!(d >= base.min(cap) && d <= cap);
                previous = d;
            }
        }
    }
}
