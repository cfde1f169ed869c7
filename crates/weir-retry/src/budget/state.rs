//! The running budget: the pure accounting behind [`RetryBudget`](super::RetryBudget), on a few
//! atomics, with the clock passed in (read now and then by [`BudgetState::deposit_now`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::Outcome;

use super::word::Word;

/// The running budget.
#[derive(Debug)]
pub(crate) enum BudgetState {
    Ratio(Box<RatioState>),
    Throttle {
        /// The maximum (tokens × 1000, high 32 bits) and the token ratio (× 1000, low 32 bits,
        /// at most the maximum): one word, so new settings change both at once.
        limits: AtomicU64,
        /// Tokens × 1000.
        tokens: AtomicU64,
    },
    Unlimited,
}

impl BudgetState {
    /// A new request (not a retry) starts.
    #[inline]
    #[cfg(test)]
    pub(crate) fn deposit(&self, now: Instant) {
        if let Self::Ratio(state) = self {
            let epoch = state.epoch(now);
            state.current.fetch_max(epoch, Ordering::AcqRel);
            state.requests[0].0.add(epoch, 1);
        }
    }

    /// A new request starts, reading the clock only now and then: the first call on each thread
    /// and every [`CLOCK_EVERY`]th after read it and advance the shared epoch; the others count
    /// in the last epoch seen. An epoch that lags only makes requests leave the window early, so
    /// the budget errs on the side of fewer retries; a refused or granted retry always reads the
    /// clock. The request is counted in this thread's stripe of the counts (see
    /// [`RatioState::requests`]).
    #[inline]
    pub(crate) fn deposit_now(&self) {
        if let Self::Ratio(state) = self {
            let (read_clock, stripe) = THREAD.with(|thread| {
                let mut word = thread.get();
                if word & STRIPE_MASK == 0 {
                    word |= first_stripe();
                }
                // The count is in the high bits: adding one wraps off the top, never into the
                // stripe, so no mask is needed (#18: 5 instructions fewer per request).
                word = word.wrapping_add(ONE_REQUEST);
                thread.set(word);
                (
                    (word >> COUNT_SHIFT) % u64::from(CLOCK_EVERY) == 1,
                    (word & STRIPE_MASK) as usize - 1,
                )
            });
            let epoch = if read_clock {
                state.advance_now()
            } else {
                state.current.load(Ordering::Acquire)
            };
            state.requests[stripe % STRIPES].0.add(epoch, 1);
        }
    }

    /// An attempt finished with `outcome` (gRPC throttling counts successes and failures).
    #[inline]
    pub(crate) fn record(&self, outcome: &Outcome) {
        if let Self::Throttle { limits, tokens } = self {
            match outcome {
                Outcome::Success => {
                    let (max, ratio) = unpack_limits(limits.load(Ordering::Acquire));
                    let _ = tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                        (t < max).then(|| t.saturating_add(ratio).min(max))
                    });
                }
                Outcome::Failure(failure)
                    if failure.is_transient()
                        || matches!(
                            failure.hint(),
                            Some(weir_core::wire::ServerHint::DoNotRetry)
                        ) =>
                {
                    let _ = tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                        (t > 0).then(|| t.saturating_sub(1000))
                    });
                }
                Outcome::Failure(_) | Outcome::Ignored => {}
            }
        }
    }

    /// Asks for one retry; `true` spends it.
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        match self {
            Self::Ratio(state) => state.withdraw(now),
            Self::Throttle { limits, tokens } => {
                let (max, _) = unpack_limits(limits.load(Ordering::Acquire));
                tokens.load(Ordering::Acquire) > max / 2
            }
            Self::Unlimited => true,
        }
    }

    /// Retries the budget would allow right now (`None` when unlimited).
    pub(crate) fn available(&self, now: Instant) -> Option<u64> {
        match self {
            Self::Ratio(state) => {
                let epoch = state.epoch(now);
                Some(
                    state
                        .allowed(epoch)
                        .saturating_sub(state.retries.sum(epoch)),
                )
            }
            Self::Throttle { limits, tokens } => {
                // Each retry needs the count above max / 2; each failure takes one token.
                let (max, _) = unpack_limits(limits.load(Ordering::Acquire));
                let tokens = tokens.load(Ordering::Acquire);
                Some(tokens.saturating_sub(max / 2).div_ceil(1000))
            }
            Self::Unlimited => None,
        }
    }
}

/// Slots per window: the window slides in tenths.
const SLOTS: u32 = 10;

/// A thread reads the clock for a deposit once every this many requests.
const CLOCK_EVERY: u32 = 32;

/// Stripes of a ratio budget's request counts (see [`RatioState::requests`]).
const STRIPES: usize = 8;
// A stripe plus one fits in the low bits of a `THREAD` word.
const _: () = assert!(STRIPES < STRIPE_MASK as usize);

/// The stripe the next thread to deposit takes.
static NEXT_STRIPE: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// For [`BudgetState::deposit_now`]: the requests started on this thread (the bits from
    /// [`COUNT_SHIFT`] up, for its sampling of the clock; they wrap) and its stripe plus one (the
    /// low bits, [`STRIPE_MASK`]; 0 until its first request). One word: one thread-local access
    /// per request.
    static THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Where the request count starts in a [`THREAD`] word.
const COUNT_SHIFT: u32 = 8;
/// One request in a [`THREAD`] word.
const ONE_REQUEST: u64 = 1 << COUNT_SHIFT;
/// The stripe plus one in a [`THREAD`] word.
const STRIPE_MASK: u64 = ONE_REQUEST - 1;

/// This thread's stripe plus one, in the low bits of its [`THREAD`] word: consecutive threads
/// (a runtime's workers) take consecutive stripes.
#[cold]
#[inline(never)]
fn first_stripe() -> u64 {
    let stripe = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES as u32;
    u64::from(stripe + 1)
}

/// One stripe of the request counts, on a 128-byte block of its own (adjacent-line
/// prefetching pairs lines), so threads on different stripes never write one line.
#[derive(Debug)]
#[repr(align(128))]
struct Stripe<A = AtomicU64>(Window<A>);

/// The ratio budget's state: requests and retries counted per slot of a sliding window.
/// Generic over the atomic word of its counters (`std`'s, the default; `shuttle`'s in the model
/// tests, `tests.rs`).
#[derive(Debug)]
pub(crate) struct RatioState<A = AtomicU64> {
    start: Instant,
    /// The latest epoch any request or retry has seen.
    current: AtomicU32,
    slot_nanos: u64,
    /// Ratio × 1000.
    /// The floor (retries per window, high 44 bits) and the ratio (× 1000, low 20 bits): one
    /// word, so new settings change both at once.
    rates: AtomicU64,
    /// The requests, counted per thread stripe: each request counts once, in its thread's
    /// stripe, and the budget reads their sum (on a retry only). One shared counter would be
    /// written by every request of every thread, and two threads would contend on it.
    requests: [Stripe<A>; STRIPES],
    retries: Window<A>,
}

impl<A: Word> RatioState<A> {
    pub(super) fn new(ratio: f64, min_per_second: u32, window: Duration, now: Instant) -> Self {
        let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            start: now,
            current: AtomicU32::new(0),
            slot_nanos: (window_nanos / u64::from(SLOTS)).max(1),
            rates: AtomicU64::new(pack_rates(ratio, min_per_second, window)),
            requests: std::array::from_fn(|_| Stripe(Window::new())),
            retries: Window::new(),
        }
    }

    pub(super) fn epoch(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        // Wraps after 2^32 slots (over 13 years at 0.1 s): only the distance between epochs
        // matters.
        (elapsed / u128::from(self.slot_nanos)) as u32
    }

    /// Reads the clock and moves the latest epoch up to it; returns the clock's epoch. Out of
    /// line: a deposit reads the clock once every [`CLOCK_EVERY`] requests.
    #[cold]
    #[inline(never)]
    fn advance_now(&self) -> u32 {
        let epoch = self.epoch(Instant::now());
        self.current.fetch_max(epoch, Ordering::AcqRel);
        epoch
    }

    /// The requests in the window ending with `epoch`, every stripe's.
    pub(super) fn requests(&self, epoch: u32) -> u64 {
        self.requests.iter().map(|stripe| stripe.0.sum(epoch)).sum()
    }

    pub(super) fn allowed(&self, epoch: u32) -> u64 {
        let (floor, ratio_milli) = unpack_rates(self.rates.load(Ordering::Acquire));
        floor.saturating_add(self.requests(epoch).saturating_mul(ratio_milli) / 1000)
    }

    pub(super) fn withdraw(&self, now: Instant) -> bool {
        let epoch = self.epoch(now);
        self.current.fetch_max(epoch, Ordering::AcqRel);
        // Take first, then check: under a race two retries may both be refused, never both
        // admitted past the budget.
        self.retries.add(epoch, 1);
        if self.retries.sum(epoch) <= self.allowed(epoch) {
            true
        } else {
            self.retries.undo(epoch);
            false
        }
    }
}

#[cfg(test)]
impl<A: Word> RatioState<A> {
    /// A request counted in `stripe` at `epoch`: what [`BudgetState::deposit_now`] does on the
    /// thread that owns the stripe (the model tests give each thread its own).
    pub(super) fn deposit_in(&self, stripe: usize, epoch: u32) {
        self.requests[stripe % STRIPES].0.add(epoch, 1);
    }

    /// The retries counted in the window ending with `epoch`.
    pub(super) fn retries(&self, epoch: u32) -> u64 {
        self.retries.sum(epoch)
    }
}

/// Counters per slot, each an atomic holding `(epoch << 32) | count`.
#[derive(Debug)]
pub(super) struct Window<A = AtomicU64> {
    slots: [A; SLOTS as usize],
}

const fn pack(epoch: u32, count: u32) -> u64 {
    ((epoch as u64) << 32) | count as u64
}

const fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl<A: Word> Window<A> {
    pub(super) fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| A::new(0)),
        }
    }

    fn slot(&self, epoch: u32) -> &A {
        &self.slots[(epoch % SLOTS) as usize]
    }

    #[inline]
    pub(super) fn add(&self, epoch: u32, n: u32) {
        let slot = self.slot(epoch);
        if unpack(slot.load(Ordering::Acquire)).0 == epoch {
            // The common case, one `fetch_add`: the count sits in the low bits and a slot never
            // sees 2^32 requests. Should the slot move to a newer epoch meanwhile, the request
            // counts in the newer one, which is as good.
            slot.fetch_add(u64::from(n), Ordering::AcqRel);
            return;
        }
        self.add_to_new_epoch(epoch, n);
    }

    /// [`add`](Self::add) when the slot does not count `epoch`: once per slot and epoch. A
    /// slot that counts an older epoch starts counting this one; a slot that already counts a
    /// newer one (this thread's epoch lags, see [`BudgetState::deposit_now`]) keeps it and
    /// counts the `n` there, as `add` does, rather than wiping the newer epoch's counts (found
    /// by the shuttle model `a_slot_moving_to_a_new_epoch_keeps_the_new_epochs_requests`).
    #[cold]
    #[inline(never)]
    fn add_to_new_epoch(&self, epoch: u32, n: u32) {
        let _ = self
            .slot(epoch)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (e, count) = unpack(word);
                // Epochs wrap: `e` is newer when it is less than half the range ahead.
                let newer = e.wrapping_sub(epoch) < u32::MAX / 2;
                Some(if newer {
                    pack(e, count.saturating_add(n))
                } else {
                    pack(epoch, n)
                })
            });
    }

    pub(super) fn undo(&self, epoch: u32) {
        let _ = self
            .slot(epoch)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (e, count) = unpack(word);
                (e == epoch && count > 0).then(|| pack(e, count - 1))
            });
    }

    pub(super) fn sum(&self, epoch: u32) -> u64 {
        self.slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Acquire)))
            .filter(|(e, _)| epoch.wrapping_sub(*e) < SLOTS)
            .map(|(_, count)| u64::from(count))
            .sum()
    }
}

/// Bits of a ratio budget's `rates` word that hold the ratio × 1000 (at most 1 000 000).
const RATIO_BITS: u32 = 20;

/// A ratio budget's floor and ratio in one word.
pub(super) fn pack_rates(ratio: f64, min_per_second: u32, window: Duration) -> u64 {
    let ratio_milli = ((ratio * 1000.0).round() as u64).min((1 << RATIO_BITS) - 1);
    let floor = u64::from(min_per_second)
        .saturating_mul(window.as_secs().max(1))
        .min((1 << (64 - RATIO_BITS)) - 1);
    (floor << RATIO_BITS) | ratio_milli
}

/// The floor and the ratio × 1000 of a `rates` word.
const fn unpack_rates(word: u64) -> (u64, u64) {
    (word >> RATIO_BITS, word & ((1 << RATIO_BITS) - 1))
}

/// A throttle's maximum and token ratio (both × 1000) in one word.
pub(super) fn pack_limits(max_tokens: u32, token_ratio: f64) -> u64 {
    let max = u64::from(max_tokens)
        .saturating_mul(1000)
        .min(u64::from(u32::MAX));
    // Three decimal places, as A6 says; at least 0.001 so it always gives back; no more than
    // the maximum (a success never gives back more than there is room for).
    let ratio = ((token_ratio * 1000.0).round() as u64).clamp(1, max.max(1));
    (max << 32) | ratio
}

/// The maximum and the token ratio (× 1000) of a `limits` word.
const fn unpack_limits(word: u64) -> (u64, u64) {
    (word >> 32, word & 0xffff_ffff)
}

/// New settings for a running budget (the layer's handle).
impl BudgetState {
    /// Puts a ratio budget's new floor and ratio in force at once; the requests and retries
    /// counted so far are kept (the window is unchanged: the caller checked).
    pub(super) fn set_rates(&self, word: u64) {
        if let Self::Ratio(state) = self {
            state.rates.store(word, Ordering::Release);
        }
    }

    /// Puts a throttle's new maximum and ratio in force; its tokens are carried over, clamped
    /// to the new maximum.
    pub(super) fn set_limits(&self, word: u64) {
        if let Self::Throttle { limits, tokens } = self {
            limits.store(word, Ordering::Release);
            let (max, _) = unpack_limits(word);
            tokens.fetch_min(max, Ordering::AcqRel);
        }
    }
}
