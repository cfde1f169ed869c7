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
            // Validated finite and within 0..=1000 by the builder; none for an unlimited
            // budget, so `deposit` needs no check of its own for it.
            per_request: if burst.is_some() {
                (ratio * HEDGE as f64) as u64
            } else {
                0
            },
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
    /// otherwise one atomic add. Nothing when the budget is unlimited (`per_request` is 0).
    #[inline]
    pub(crate) fn deposit(&self) {
        if self.per_request > 0 && self.balance.load(Ordering::Relaxed) < self.cap {
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

/// gRFC A6's retry throttling, applied to hedges: a token count (in milli-tokens) that starts
/// at `max`; each attempt that fails (transiently, or with a server's "do not retry") takes one
/// token, each success gives back `ratio`; no hedge goes while the count is at or below half.
/// The same rule as weir-retry's `RetryBudget::grpc_throttle`.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// Tokens x 1000.
    max: u64,
    /// Token ratio x 1000.
    ratio: u64,
    /// Tokens x 1000.
    tokens: AtomicU64,
}

impl Throttle {
    /// `max_tokens` tokens, each success gives back `token_ratio` of one (kept to three decimal
    /// places, as gRPC does; validated by the builder).
    pub(crate) fn new(max_tokens: u32, token_ratio: f64) -> Self {
        let max = u64::from(max_tokens) * HEDGE;
        Self {
            max,
            ratio: (token_ratio * HEDGE as f64) as u64,
            tokens: AtomicU64::new(max),
        }
    }

    /// A success: gives back `ratio` of a token. Full (the usual state): one load, no write.
    #[inline]
    pub(crate) fn success(&self) {
        if self.tokens.load(Ordering::Relaxed) < self.max {
            let _ = self
                .tokens
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    (t < self.max).then(|| t.saturating_add(self.ratio).min(self.max))
                });
        }
    }

    /// A failure: takes one token (never below zero).
    pub(crate) fn failure(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t > 0).then(|| t.saturating_sub(HEDGE))
            });
    }

    /// Whether a hedge may go: the count above half.
    pub(crate) fn allows(&self) -> bool {
        self.tokens.load(Ordering::Acquire) > self.max / 2
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
    /// Samples recorded with a latency (the sum of `counts`).
    total: AtomicU32,
    counts: [AtomicU32; BUCKETS],
}

/// Stripes of the immediate counts.
const STRIPES: usize = 8;

/// One stripe of the counts of answers on the first poll, recorded as latency zero without a
/// clock reading (bucket 0, counted apart so that recording one is a single relaxed store):
/// its count for each bank, on a 128-byte block of its own (adjacent-line prefetching pairs
/// lines), so threads on different stripes never write one line. Each answer counts once, in
/// its thread's stripe, and the percentile reads their sum: one counter would be written by
/// every immediate answer of every thread, and two threads would contend on its cache line.
/// Both banks' counts share the stripe's block, so an answer finds its count with the stripe
/// and the bank's parity alone.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU32; 2]);

impl Bank {
    fn new(window: u64) -> Self {
        Self {
            window: AtomicU64::new(window),
            total: AtomicU32::new(0),
            counts: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// No delay known yet (fewer samples than the minimum).
const NO_DELAY: u64 = u64::MAX;
/// The percentile is recomputed every this many timed samples, and at each window rotation.
const RECOMPUTE_EVERY: u32 = 16;

/// One immediate answer in this many (of a stripe) reads the clock (so the window rotates)
/// and recomputes the percentile. An immediate answer is a sample at the minimum, which can
/// only lower the percentile (or keep it): the delay in force between two recomputations errs
/// late (fewer hedges), never early.
const UNTIMED_EVERY: u32 = 64;

/// A value alone on a 128-byte block: the percentile, written when it changes, is kept off
/// the line the immediate path reads.
#[derive(Debug)]
#[repr(align(128))]
struct Apart<T>(T);

/// Recent latencies in a rotating window of two banks (the current window and the one before):
/// the percentile reads between one and two windows of history. Recording a timed latency is a
/// few relaxed atomic adds, an immediate answer a relaxed load and store in the caller's stripe;
/// the percentile is recomputed every 16 timed samples and every 64 immediate answers of a
/// stripe, and cached in one atomic (stored only when it changes), so the request path reads
/// one atomic to know its delay.
///
/// A sample recorded while another thread clears a bank at a rotation may be lost, as may an
/// immediate answer of two threads sharing a stripe at one instant: the histogram is a
/// statistic, and that loss is bounded by the threads recording at that instant.
#[derive(Debug)]
pub(crate) struct Latency {
    window_us: u64,
    /// Percentile in millionths (p95 = 950_000).
    percentile_ppm: u64,
    min_samples: u32,
    floor_us: u64,
    banks: [Bank; 2],
    /// The immediate answers of each bank, by stripe.
    immediate: [Stripe; STRIPES],
    /// The percentile in microseconds, or `NO_DELAY`: stored only when it changes, and apart
    /// from `current`, which every immediate answer reads.
    delay_us: Apart<AtomicU64>,
    /// The newest window a sample was recorded in (window index + 1): where
    /// [`record_at_once`](Self::record_at_once) counts, without a clock. The first window (1,
    /// the layer's build) is set up by `new`, so the immediate path has no first case.
    current: AtomicU64,
}

impl Latency {
    pub(crate) fn new(window_us: u64, percentile: f64, min_samples: u32, floor_us: u64) -> Self {
        Self {
            window_us: window_us.max(1),
            // Validated within (0, 100) by the builder.
            percentile_ppm: (percentile * 10_000.0) as u64,
            min_samples,
            floor_us,
            // Window 1 (time zero: the layer's build) is bank 1's from the start.
            banks: [Bank::new(0), Bank::new(1)],
            immediate: Default::default(),
            delay_us: Apart(AtomicU64::new(NO_DELAY)),
            current: AtomicU64::new(1),
        }
    }

    /// Records one latency observed at `now_us`.
    pub(crate) fn record(&self, now_us: u64, latency_us: u64) {
        let Some((window, rotated)) = self.rotate(now_us) else {
            return;
        };
        let bank = &self.banks[(window % 2) as usize];
        bank.counts[bucket(latency_us)].fetch_add(1, Ordering::Relaxed);
        let total = bank.total.fetch_add(1, Ordering::AcqRel) + 1;
        if rotated || total.is_multiple_of(RECOMPUTE_EVERY) || total <= self.min_samples {
            self.recompute(window);
        }
    }

    /// Moves to the window of `now_us`, clearing its bank if it held an older window: the
    /// window, and whether this call cleared it; `None` for a stale reading (a slow thread's
    /// clock, the bank has moved on).
    fn rotate(&self, now_us: u64) -> Option<(u64, bool)> {
        let window = now_us / self.window_us + 1;
        let bank = &self.banks[(window % 2) as usize];
        let seen = bank.window.load(Ordering::Acquire);
        if seen < window
            && bank
                .window
                .compare_exchange(seen, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for count in &bank.counts {
                count.store(0, Ordering::Relaxed);
            }
            for stripe in &self.immediate {
                stripe.0[(window % 2) as usize].store(0, Ordering::Relaxed);
            }
            bank.total.store(0, Ordering::Release);
            self.current.fetch_max(window, Ordering::AcqRel);
            return Some((window, true));
        }
        (seen <= window).then_some((window, false))
    }

    /// Records a latency of zero (an answer on the first poll) without reading the clock: one
    /// relaxed load and store (no read-modify-write, so no locked instruction) into stripe
    /// `stripe` (the caller's lane: one per few threads) of the newest window's count of such
    /// answers. `now_us` is called (the clock read) only for one immediate answer in 64 of each
    /// stripe, so that the window still rotates when every answer is immediate; the percentile
    /// is recomputed then (from the sum of the stripes), and for each of a stripe's first
    /// `min_samples` answers. Until a stripe's 64th answer (or a timed sample) reads the clock,
    /// its answers count in the newest window known: after a quiet spell, in a window the next
    /// rotation finds too old to count.
    ///
    /// Two threads that share a stripe (more threads than stripes, or than lanes) and record
    /// at the same instant may count one answer where there were two: a lost sample at the
    /// minimum, so the percentile errs high (later hedges, fewer of them), as a sample lost to a
    /// rotation does. Threads on different stripes lose nothing.
    #[inline]
    pub(crate) fn record_at_once(&self, stripe: usize, now_us: impl FnOnce() -> u64) {
        let window = self.current.load(Ordering::Relaxed);
        let stripe = &self.immediate[stripe % STRIPES].0[(window % 2) as usize];
        let n = stripe.load(Ordering::Relaxed).wrapping_add(1);
        stripe.store(n, Ordering::Relaxed);
        if n.is_multiple_of(UNTIMED_EVERY) || n <= self.min_samples {
            self.refresh(window, n, now_us);
        }
    }

    /// Every 64th immediate answer of a stripe (and each while the stripe's answers are fewer
    /// than the minimum): the percentile recomputed, and on the 64th the clock read and the
    /// window rotated first.
    #[cold]
    fn refresh(&self, window: u64, n: u32, now_us: impl FnOnce() -> u64) {
        if n.is_multiple_of(UNTIMED_EVERY)
            && let Some((now, true)) = self.rotate(now_us())
        {
            self.recompute(now);
            return;
        }
        self.recompute(window);
    }

    /// The immediate answers counted in bank `bank`, over every stripe.
    fn immediate_of(&self, bank: usize) -> u64 {
        self.immediate
            .iter()
            .map(|stripe| u64::from(stripe.0[bank].load(Ordering::Relaxed)))
            .sum()
    }

    fn recompute(&self, window: u64) {
        let live = |bank: &Bank| {
            let w = bank.window.load(Ordering::Acquire);
            w == window || w + 1 == window
        };
        let banks = self.banks.iter().filter(|b| live(b));
        let immediate: u64 = (0..2)
            .filter(|&b| live(&self.banks[b]))
            .map(|b| self.immediate_of(b))
            .sum();
        let total: u64 = immediate
            + banks
                .clone()
                .map(|b| u64::from(b.total.load(Ordering::Acquire)))
                .sum::<u64>();
        if total < u64::from(self.min_samples) || total == 0 {
            self.set_delay(NO_DELAY);
            return;
        }
        // The smallest latency at or above which `percentile` of the samples fall.
        let rank = (total * self.percentile_ppm).div_ceil(1_000_000).max(1);
        let mut seen = immediate;
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
        self.set_delay(bucket_upper(at).max(self.floor_us));
    }

    /// Stores the delay if it changed: in a steady state it does not, and no line is written.
    fn set_delay(&self, delay: u64) {
        if self.delay_us.0.load(Ordering::Relaxed) != delay {
            self.delay_us.0.store(delay, Ordering::Release);
        }
    }

    /// The delay before a hedge, in microseconds: the percentile (never below the floor), or
    /// `None` while fewer than `min_samples` latencies are known.
    #[inline]
    pub(crate) fn delay_us(&self) -> Option<u64> {
        let delay = self.delay_us.0.load(Ordering::Acquire);
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

    /// #21.3: immediate answers are recorded without a clock reading (but for one in 64 of a
    /// stripe, which rotates the window), as latency zero.
    #[test]
    fn immediate_answers_count_as_zero() {
        use std::cell::Cell;

        let reads = Cell::new(0);
        let clock = |now: u64| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                now
            }
        };
        let latency = Latency::new(1_000, 50.0, 16, 0);
        for _ in 0..8 {
            latency.record_at_once(0, clock(0));
        }
        assert_eq!(reads.get(), 0, "the first window is set up at build");
        assert_eq!(latency.delay_us(), None, "8 samples of 16");
        for _ in 0..9 {
            latency.record(10, 50_000);
        }
        assert!(latency.delay_us().unwrap() >= 50_000, "9 slow of 17");
        // Two windows later: immediate answers count in the newest window known, without a
        // clock, until the 64th of that window reads it.
        for _ in 0..55 {
            latency.record_at_once(0, clock(2_500));
        }
        assert_eq!(reads.get(), 0);
        assert_eq!(latency.delay_us(), Some(0), "63 immediate of 72");
        latency.record_at_once(0, clock(2_500));
        assert_eq!(reads.get(), 1, "the 64th reads the clock");
        assert_eq!(
            latency.delay_us(),
            None,
            "rotated: the old samples are forgotten"
        );
        for _ in 0..16 {
            latency.record_at_once(0, clock(2_500));
        }
        assert_eq!(reads.get(), 1);
        assert_eq!(latency.delay_us(), Some(0));
        // Past the minimum, the percentile follows immediate answers every 64th of a stripe:
        // a slow spell raises it at once (timed samples), and the immediate answers after it
        // lower it only at the stripe's next 64th (the delay errs late, never early).
        for _ in 0..40 {
            latency.record(2_600, 50_000);
        }
        let slow = latency.delay_us().unwrap();
        assert!(slow >= 50_000, "{slow}");
        for _ in 0..(64 - 17) {
            latency.record_at_once(0, clock(2_700));
        }
        assert_eq!(latency.delay_us(), Some(slow), "not yet recomputed");
        latency.record_at_once(0, clock(2_700));
        assert_eq!(latency.delay_us(), Some(0), "the 64th: 64 immediate of 104");
    }

    /// Immediate answers recorded on several threads land in their threads' stripes, and the
    /// percentile counts every one of them: none is lost to the striping.
    #[test]
    fn immediate_answers_of_every_thread_count() {
        let latency = Latency::new(1_000_000, 50.0, 16, 0);
        latency.record_at_once(0, || 0);
        std::thread::scope(|s| {
            for stripe in 0..4 {
                let latency = &latency;
                s.spawn(move || {
                    for _ in 0..3 {
                        latency.record_at_once(stripe, || 0);
                    }
                });
            }
        });
        let window = latency.current.load(Ordering::Relaxed);
        assert_eq!(
            latency.immediate_of((window % 2) as usize),
            13,
            "the first, then 4 x 3"
        );
        assert_eq!(latency.delay_us(), None, "13 samples of 16");
        for _ in 0..3 {
            latency.record(10, 50_000);
        }
        // 13 at zero of 16: the median is zero; without the other threads' 12 it would be
        // 50 ms (and fewer than 16 samples: no delay at all).
        assert_eq!(latency.delay_us(), Some(0));
        for _ in 0..14 {
            latency.record(20, 50_000);
        }
        assert!(latency.delay_us().unwrap() >= 50_000, "17 slow of 30");
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
