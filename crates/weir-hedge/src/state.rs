//! The pure algorithms: the hedge budget and the latency histogram behind the percentile
//! trigger. No tokio, no `Service`: time is a number of microseconds since the layer was built,
//! passed in, so both are unit-tested with plain numbers. Lock-free: atomics only.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One hedge, in the budget's milli-tokens.
const HEDGE: u64 = 1000;

/// The hedge budget: a balance of milli-tokens.
///
/// Every request adds `ratio` of a hedge, every second adds `min_per_second` hedges (credited
/// lazily, when a hedge asks), the balance never exceeds `burst` hedges and starts full. A hedge
/// takes one. So over any run, hedges sent <= burst + ratio x requests + min_per_second x seconds.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Milli-tokens per request (ratio x 1000); 0 for none.
    per_request: u64,
    /// Milli-tokens per second (min_per_second x 1000).
    per_second: u64,
    /// Milli-tokens at most (burst x 1000); `u64::MAX` for an unlimited budget.
    cap: u64,
    balance: AtomicU64,
    /// Up to when (microseconds) the per-second floor has been credited.
    credited_us: AtomicU64,
}

impl Budget {
    /// `None` for `burst`: unlimited.
    pub(crate) fn new(ratio: f64, min_per_second: u32, burst: Option<u32>) -> Self {
        let cap = burst.map_or(u64::MAX, |b| u64::from(b) * HEDGE);
        Self {
            // Validated finite and within 0..=1000 by the builder.
            per_request: (ratio * HEDGE as f64) as u64,
            per_second: u64::from(min_per_second) * HEDGE,
            cap,
            balance: AtomicU64::new(cap),
            credited_us: AtomicU64::new(0),
        }
    }

    const fn is_unlimited(&self) -> bool {
        self.cap == u64::MAX
    }

    fn credit(&self, amount: u64) {
        if amount == 0 {
            return;
        }
        let before = self.balance.fetch_add(amount, Ordering::AcqRel);
        if before.saturating_add(amount) > self.cap {
            // A race may lose a few milli-tokens here: the budget errs on the side of fewer
            // hedges, never more.
            self.balance.fetch_min(self.cap, Ordering::AcqRel);
        }
    }

    /// A request starts. A full balance (the usual state when hedges are rare) costs one
    /// atomic load and no write, so clones on many threads do not fight over the cache line;
    /// otherwise one atomic add. Nothing when the budget is unlimited.
    #[inline]
    pub(crate) fn deposit(&self) {
        if !self.is_unlimited()
            && self.per_request > 0
            && self.balance.load(Ordering::Relaxed) < self.cap
        {
            self.credit(self.per_request);
        }
    }

    /// A hedge asks to start at `now_us`: `true` if the budget pays for it.
    pub(crate) fn withdraw(&self, now_us: u64) -> bool {
        if self.is_unlimited() {
            return true;
        }
        let before = self.credited_us.fetch_max(now_us, Ordering::AcqRel);
        if now_us > before {
            // At most one microsecond's worth lost to rounding per call.
            let earned = u128::from(now_us - before) * u128::from(self.per_second) / 1_000_000;
            self.credit(u64::try_from(earned).unwrap_or(u64::MAX).min(self.cap));
        }
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                b.checked_sub(HEDGE)
            })
            .is_ok()
    }

    /// Whole hedges available now (without the floor not yet credited); `None` if unlimited.
    pub(crate) fn available(&self) -> Option<u64> {
        (!self.is_unlimited()).then(|| self.balance.load(Ordering::Acquire) / HEDGE)
    }
}

/// Sub-buckets per power of two (2 bits): a bucket is at most 25 % wide.
const SUB_BITS: u32 = 2;
const SUB: u64 = 1 << SUB_BITS;
/// Latencies are kept up to 2^40 us (about 12.7 days); longer ones land in the last bucket.
const MAX_EXP: u32 = 40;
pub(crate) const BUCKETS: usize = (MAX_EXP as usize - 1) * SUB as usize;

/// The bucket of a latency in microseconds: log-spaced, four per power of two.
pub(crate) const fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros();
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (us >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// The largest latency (us) that falls in a bucket: a percentile read from the histogram never
/// understates.
pub(crate) const fn bucket_upper(index: usize) -> u64 {
    if index < SUB as usize {
        return index as u64;
    }
    let exp = (index / SUB as usize) as u32 + SUB_BITS - 1;
    let sub = (index % SUB as usize) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((SUB + sub) << (exp - SUB_BITS)) + width - 1
}

/// One window's counts.
#[derive(Debug)]
struct Bank {
    /// The window this bank counts (window index + 1; 0: never used).
    window: AtomicU64,
    total: AtomicU32,
    counts: [AtomicU32; BUCKETS],
}

impl Bank {
    fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            total: AtomicU32::new(0),
            counts: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// No delay known yet (fewer samples than the minimum).
const NO_DELAY: u64 = u64::MAX;
/// The percentile is recomputed every this many samples, and at each window rotation.
const RECOMPUTE_EVERY: u32 = 16;

/// One immediate answer in this many is recorded with a clock reading.
const UNTIMED_EVERY: u32 = 64;

/// Recent latencies in a rotating window of two banks (the current window and the one before):
/// the percentile reads between one and two windows of history. Recording is a few relaxed
/// atomic adds; the percentile is recomputed every 16 samples and cached in one atomic, so the
/// request path reads one atomic to know its delay.
///
/// A sample recorded while another thread clears a bank at a rotation may be lost: the
/// histogram is a statistic, and that loss is bounded by the threads recording at that instant.
#[derive(Debug)]
pub(crate) struct Latency {
    window_us: u64,
    /// Percentile in millionths (p95 = 950_000).
    percentile_ppm: u64,
    min_samples: u32,
    floor_us: u64,
    banks: [Bank; 2],
    delay_us: AtomicU64,
    /// Samples recorded without a clock reading (see [`record_at_once`](Self::record_at_once)).
    untimed: AtomicU32,
}

impl Latency {
    pub(crate) fn new(window_us: u64, percentile: f64, min_samples: u32, floor_us: u64) -> Self {
        Self {
            window_us: window_us.max(1),
            // Validated within (0, 100) by the builder.
            percentile_ppm: (percentile * 10_000.0) as u64,
            min_samples,
            floor_us,
            banks: [Bank::new(), Bank::new()],
            delay_us: AtomicU64::new(NO_DELAY),
            untimed: AtomicU32::new(0),
        }
    }

    /// Records one latency observed at `now_us`.
    pub(crate) fn record(&self, now_us: u64, latency_us: u64) {
        let window = now_us / self.window_us + 1;
        let bank = &self.banks[(window % 2) as usize];
        let seen = bank.window.load(Ordering::Acquire);
        let mut rotated = false;
        if seen < window
            && bank
                .window
                .compare_exchange(seen, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for count in &bank.counts {
                count.store(0, Ordering::Relaxed);
            }
            bank.total.store(0, Ordering::Release);
            rotated = true;
        } else if seen > window {
            // A stale clock reading from a slow thread: the bank has moved on.
            return;
        }
        bank.counts[bucket(latency_us)].fetch_add(1, Ordering::Relaxed);
        let total = bank.total.fetch_add(1, Ordering::AcqRel) + 1;
        if rotated || total.is_multiple_of(RECOMPUTE_EVERY) || total <= self.min_samples {
            self.recompute(window);
        }
    }

    /// Records a latency of zero (an answer on the first poll) without reading the clock, into
    /// the newest window. `false`: record this one with the time instead ([`record`](Self::record));
    /// one sample in 64 is, so the window still rotates when every answer is immediate.
    pub(crate) fn record_at_once(&self) -> bool {
        if self
            .untimed
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(UNTIMED_EVERY)
        {
            return false;
        }
        let window = self.banks[0]
            .window
            .load(Ordering::Acquire)
            .max(self.banks[1].window.load(Ordering::Acquire));
        if window == 0 {
            return false;
        }
        let bank = &self.banks[(window % 2) as usize];
        bank.counts[0].fetch_add(1, Ordering::Relaxed);
        let total = bank.total.fetch_add(1, Ordering::AcqRel) + 1;
        if total.is_multiple_of(RECOMPUTE_EVERY) || total <= self.min_samples {
            self.recompute(window);
        }
        true
    }

    fn recompute(&self, window: u64) {
        let live = |bank: &Bank| {
            let w = bank.window.load(Ordering::Acquire);
            w == window || w + 1 == window
        };
        let banks = self.banks.iter().filter(|b| live(b));
        let total: u64 = banks
            .clone()
            .map(|b| u64::from(b.total.load(Ordering::Acquire)))
            .sum();
        if total < u64::from(self.min_samples) || total == 0 {
            self.delay_us.store(NO_DELAY, Ordering::Release);
            return;
        }
        // The smallest latency at or above which `percentile` of the samples fall.
        let rank = (total * self.percentile_ppm).div_ceil(1_000_000).max(1);
        let mut seen = 0u64;
        let mut at = BUCKETS - 1;
        for index in 0..BUCKETS {
            seen += banks
                .clone()
                .map(|b| u64::from(b.counts[index].load(Ordering::Relaxed)))
                .sum::<u64>();
            if seen >= rank {
                at = index;
                break;
            }
        }
        let delay = bucket_upper(at).max(self.floor_us);
        self.delay_us.store(delay, Ordering::Release);
    }

    /// The delay before a hedge, in microseconds: the percentile (never below the floor), or
    /// `None` while fewer than `min_samples` latencies are known.
    #[inline]
    pub(crate) fn delay_us(&self) -> Option<u64> {
        let delay = self.delay_us.load(Ordering::Acquire);
        (delay != NO_DELAY).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_latency_in_order() {
        let mut last = 0;
        for us in [0, 1, 3, 4, 5, 7, 8, 100, 1_000, 65_535, 1 << 39, u64::MAX] {
            let b = bucket(us);
            assert!(b >= last, "bucket({us}) went back");
            assert!(b < BUCKETS);
            if us < 1 << 40 {
                assert!(bucket_upper(b) >= us, "upper of bucket({us}) below it");
                // At most 25 % above the value (plus one for the tiny buckets).
                assert!(bucket_upper(b) <= us + us / 4 + 1, "bucket({us}) too wide");
            }
            last = b;
        }
        for index in 1..BUCKETS {
            assert_eq!(bucket(bucket_upper(index)), index);
            assert_eq!(bucket(bucket_upper(index - 1) + 1), index);
        }
    }

    /// #21.3: no delay before `min_samples`; then the p95 of the window, never below the floor.
    #[test]
    fn percentile_after_min_samples() {
        let latency = Latency::new(1_000_000, 95.0, 20, 500);
        for i in 0..19 {
            latency.record(10, 1_000 + i);
        }
        assert_eq!(latency.delay_us(), None);
        latency.record(10, 1_000);
        let p95 = latency.delay_us().unwrap();
        assert!((1_000..=1_300).contains(&p95), "{p95}");
        // 100 more, 10 % of them slow: the p95 is now in the slow ones.
        for i in 0..100 {
            latency.record(20, if i % 10 == 0 { 80_000 } else { 1_000 });
        }
        let p95 = latency.delay_us().unwrap();
        assert!((80_000..=100_000).contains(&p95), "{p95}");
        // The floor.
        let floored = Latency::new(1_000_000, 50.0, 1, 5_000);
        floored.record(0, 10);
        assert_eq!(floored.delay_us(), Some(5_000));
    }

    /// #21.3: the window rotates: samples older than two windows are forgotten.
    #[test]
    fn old_windows_are_forgotten() {
        let latency = Latency::new(1_000, 50.0, 4, 0);
        for _ in 0..4 {
            latency.record(0, 50_000);
        }
        assert!(latency.delay_us().unwrap() >= 50_000);
        // Two windows later: only the new fast samples count.
        for _ in 0..4 {
            latency.record(2_500, 100);
        }
        assert!(latency.delay_us().unwrap() <= 125);
    }

    /// #21.3: immediate answers are recorded without a clock reading, and still rotate the
    /// window once in a while.
    #[test]
    fn immediate_answers_count_as_zero() {
        let latency = Latency::new(1_000, 50.0, 4, 0);
        assert!(
            !latency.record_at_once(),
            "the first is recorded with the time"
        );
        latency.record(0, 0);
        for _ in 0..3 {
            assert!(latency.record_at_once());
        }
        assert_eq!(latency.delay_us(), Some(0));
        for _ in 0..4 {
            latency.record(10, 50_000);
        }
        for _ in 0..60 {
            assert!(latency.record_at_once());
        }
        // The 65th call (64 after the first) asks for the clock again.
        assert!(!latency.record_at_once());
        assert_eq!(latency.delay_us(), Some(0));
    }

    /// #21.2: hedges never exceed burst + ratio x requests + floor x seconds.
    #[test]
    fn budget_bounds_hedges() {
        let budget = Budget::new(0.1, 0, Some(2));
        assert!(budget.withdraw(0));
        assert!(budget.withdraw(0));
        assert!(!budget.withdraw(0));
        for _ in 0..10 {
            budget.deposit();
        }
        assert!(budget.withdraw(0));
        assert!(!budget.withdraw(0));
        // The floor: 1 per second.
        let floor = Budget::new(0.0, 1, Some(1));
        assert!(floor.withdraw(0));
        assert!(!floor.withdraw(500_000));
        assert!(floor.withdraw(1_000_000));
        assert!(!floor.withdraw(1_000_000));
        // Never above the burst, however long the quiet.
        assert!(floor.withdraw(100_000_000));
        assert!(!floor.withdraw(100_000_000));
        assert_eq!(Budget::new(0.0, 0, None).available(), None);
    }
}
