//! Retry budgets: how many retries the whole layer may make, so an outage does not become a retry
//! storm. Lock-free: a few atomics, shared by every clone and every service the layer makes.

use std::any::Any;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::{KeyedConfig, KeyedMap, Outcome};

/// How many retries a layer may make, across every request, clone and service it makes.
///
/// - [`RetryBudget::ratio`] (the default, `ratio(0.2)`): as Finagle's `RetryBudget` and Envoy's
///   retry budget, retries over the last `window` (10 s) may not exceed `ratio` × the requests
///   made in that window plus a floor of `min_per_second` × the window's seconds (10 per second),
///   so a quiet client can still retry and a busy one in an outage adds at most 20 % load. A
///   retry counts from the moment it is scheduled, so retries waiting in backoff count.
/// - [`RetryBudget::grpc_throttle`]: gRPC's `retryThrottling` (gRFC A6): a token count starts at
///   `max_tokens`; every failed attempt (retryable, or pushback "do not retry") takes 1, every
///   success gives back `token_ratio`; retrying is allowed while the count is above half of
///   `max_tokens`.
/// - [`RetryBudget::unlimited`]: only `max_attempts` bounds retries.
///
/// When the budget refuses a retry, the layer returns the failed attempt's own response or error
/// (never an error of its own) and emits [`Event::GaveUp`](crate::Event::GaveUp) with
/// [`GiveUp::Budget`](crate::GiveUp::Budget); [`RetryHandle`](crate::RetryHandle) counts it.
///
/// ```
/// use std::time::Duration;
/// use weir_retry::{RetryBudget, RetryLayer};
///
/// let layer = RetryLayer::builder()
///     .budget(RetryBudget::ratio(0.1).min_per_second(5).window(Duration::from_secs(30)))
///     .build()
///     .unwrap();
/// let grpc = RetryLayer::grpc().budget(RetryBudget::grpc_throttle(10, 0.1)).build().unwrap();
/// # let _ = (layer, grpc);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ratio {
        ratio: f64,
        min_per_second: u32,
        window: Duration,
    },
    Throttle {
        max_tokens: u32,
        token_ratio: f64,
    },
    Unlimited,
}

impl RetryBudget {
    /// Retries may be `ratio` of the requests over the window (plus the floor). `ratio` must be
    /// finite and within `0.0..=1000.0` (checked by `build()`).
    #[must_use]
    pub const fn ratio(ratio: f64) -> Self {
        Self {
            kind: Kind::Ratio {
                ratio,
                min_per_second: 10,
                window: Duration::from_secs(10),
            },
        }
    }

    /// The floor: this many retries per second are allowed whatever the traffic (10 unless set).
    /// Only for [`ratio`](Self::ratio) budgets.
    #[must_use]
    pub const fn min_per_second(mut self, n: u32) -> Self {
        if let Kind::Ratio { min_per_second, .. } = &mut self.kind {
            *min_per_second = n;
        }
        self
    }

    /// How far back requests and retries are remembered (10 s unless set; 1 s to 60 s, checked by
    /// `build()`). Only for [`ratio`](Self::ratio) budgets.
    #[must_use]
    pub const fn window(mut self, d: Duration) -> Self {
        if let Kind::Ratio { window, .. } = &mut self.kind {
            *window = d;
        }
        self
    }

    /// gRPC's `retryThrottling` (gRFC A6): `max_tokens` in `1..=1000`, `token_ratio` finite and
    /// above 0, kept to three decimal places (checked by `build()`).
    #[must_use]
    pub const fn grpc_throttle(max_tokens: u32, token_ratio: f64) -> Self {
        Self {
            kind: Kind::Throttle {
                max_tokens,
                token_ratio,
            },
        }
    }

    /// No budget: only `max_attempts` bounds retries.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            kind: Kind::Unlimited,
        }
    }

    /// Checks the configuration: `Err` names the first broken rule.
    pub(crate) fn validate(&self) -> Result<(), crate::ConfigError> {
        use crate::ConfigError;
        match self.kind {
            Kind::Ratio { ratio, window, .. } => {
                if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
                    return Err(ConfigError::BudgetRatio);
                }
                if window < Duration::from_secs(1) || window > Duration::from_secs(60) {
                    return Err(ConfigError::BudgetWindow);
                }
            }
            Kind::Throttle {
                max_tokens,
                token_ratio,
            } => {
                if !(1..=1000).contains(&max_tokens) {
                    return Err(ConfigError::ThrottleMaxTokens);
                }
                if !(token_ratio.is_finite() && token_ratio > 0.0) {
                    return Err(ConfigError::ThrottleTokenRatio);
                }
            }
            Kind::Unlimited => {}
        }
        Ok(())
    }

    /// The running state, created once when the layer is built.
    pub(crate) fn start(&self, now: Instant) -> BudgetState {
        match self.kind {
            Kind::Ratio {
                ratio,
                min_per_second,
                window,
            } => BudgetState::Ratio(Box::new(RatioState::new(
                ratio,
                min_per_second,
                window,
                now,
            ))),
            Kind::Throttle {
                max_tokens,
                token_ratio,
            } => {
                let max = u64::from(max_tokens) * 1000;
                // Three decimal places, as A6 says; at least 0.001 so it always gives back.
                let ratio = ((token_ratio * 1000.0) as u64).max(1);
                BudgetState::Throttle {
                    max,
                    ratio,
                    tokens: AtomicU64::new(max),
                }
            }
            Kind::Unlimited => BudgetState::Unlimited,
        }
    }
}

impl Default for RetryBudget {
    /// `RetryBudget::ratio(0.2)`: 20 % of the requests over 10 s, plus 10 retries per second.
    fn default() -> Self {
        Self::ratio(0.2)
    }
}

/// One retry budget that every clone shares: hand it to several layers (two retry layers, or a
/// retry layer and a `weir-hedge` layer with `HedgeBuilder::shared_budget`) and their retries
/// and hedges draw on one budget.
///
/// Made from a [`RetryBudget`] with [`SharedBudget::new`] (which checks it); given to a retry
/// layer with [`RetryBuilder::shared_budget`](crate::RetryBuilder::shared_budget). Each layer
/// counts the requests it sees: in a stack where hedges sit outside retry, a request is counted
/// once by the hedge layer and once per attempt by the retry layer, which a ratio budget
/// allows for. A layer that keys its budget per server
/// ([`RetryBuilder::budget_per_server`](crate::RetryBuilder::budget_per_server)) keeps the
/// servers' budgets here too, so layers sharing a `SharedBudget` share those as well.
///
/// ```
/// use weir_retry::{RetryBudget, RetryLayer, SharedBudget};
///
/// let budget = SharedBudget::new(RetryBudget::ratio(0.1))?;
/// let reads = RetryLayer::builder().shared_budget(budget.clone()).build()?;
/// let writes = RetryLayer::builder().shared_budget(budget.clone()).build()?;
/// // Both layers (and `budget`) see one budget: 10 retries per second over 10 s, plus 10 %.
/// assert_eq!(budget.available(), Some(100));
/// assert!(budget.withdraw());
/// assert_eq!(reads.handle().available(), Some(99));
/// # let _ = writes;
/// # Ok::<(), weir_retry::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SharedBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    spec: RetryBudget,
    state: BudgetState,
    /// The budgets per server (per key), with their key type erased: made by the first
    /// request of a layer keyed per server.
    keyed: OnceLock<Box<dyn KeyedBudgets>>,
}

impl SharedBudget {
    /// A budget that clones share, as `budget` describes.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`](crate::ConfigError) when `budget` breaks one of its rules (see
    /// [`RetryBudget`]).
    pub fn new(budget: RetryBudget) -> Result<Self, crate::ConfigError> {
        budget.validate()?;
        Ok(Self::start(budget))
    }

    /// A running budget (the caller checked `spec`).
    pub(crate) fn start(spec: RetryBudget) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                spec,
                state: spec.start(Instant::now()),
                keyed: OnceLock::new(),
            }),
        }
    }

    /// The budget's settings.
    #[must_use]
    pub fn budget(&self) -> RetryBudget {
        self.inner.spec
    }

    /// Counts a request (a first call, not a retry or a hedge): what a ratio budget grows with.
    #[inline]
    pub fn deposit(&self) {
        self.inner.state.deposit_now();
    }

    /// Asks for one retry (or hedge); `true` spends it.
    #[must_use]
    pub fn withdraw(&self) -> bool {
        self.inner.state.withdraw(Instant::now())
    }

    /// Records an attempt's outcome (gRPC throttling counts successes and failures; a ratio
    /// budget counts nothing here). Pass [`Outcome::for_upstream`]'s: one caller's quota is
    /// not the upstream's failure.
    #[inline]
    pub fn record(&self, outcome: &Outcome) {
        self.inner.state.record(outcome);
    }

    /// Retries the budget would allow now (`None` when it is unlimited).
    #[must_use]
    pub fn available(&self) -> Option<u64> {
        self.inner.state.available(Instant::now())
    }

    /// How many servers (keys) have a budget of their own now, for layers keyed per server.
    #[must_use]
    pub fn servers(&self) -> usize {
        self.inner.keyed.get().map_or(0, |keyed| keyed.len())
    }

    pub(crate) fn state(&self) -> &BudgetState {
        &self.inner.state
    }

    /// The budgets per key of type `Key`, made on first use with `config` (bounded as it says);
    /// `None` when this budget is keyed with another key type already (a layer used with two
    /// request types whose keys differ: those requests use this budget).
    pub(crate) fn keyed<Key>(&self, config: KeyedConfig) -> Option<&KeyedMap<Key, Self>>
    where
        Key: Hash + Eq + Send + Sync + 'static,
    {
        let store = self.inner.keyed.get_or_init(|| {
            let overflow = Self::start(self.inner.spec);
            Box::new(KeyedMap::<Key, Self>::new(config, overflow))
        });
        store.as_any().downcast_ref()
    }
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("budget", &self.inner.spec)
            .field("available", &self.available())
            .field("servers", &self.servers())
            .finish()
    }
}

/// A map of budgets per key, its key type erased: the key type depends on the request type,
/// which the layer does not know until it is called.
trait KeyedBudgets: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn len(&self) -> usize;
}

impl<Key> KeyedBudgets for KeyedMap<Key, SharedBudget>
where
    Key: Hash + Eq + Send + Sync + 'static,
{
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len(&self) -> usize {
        Self::len(self)
    }
}

/// The running budget.
#[derive(Debug)]
pub(crate) enum BudgetState {
    Ratio(Box<RatioState>),
    Throttle {
        /// Tokens × 1000.
        max: u64,
        /// Token ratio × 1000.
        ratio: u64,
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
                if word >> 32 == 0 {
                    word |= first_stripe();
                }
                let n = (word as u32).wrapping_add(1);
                thread.set((word & !u64::from(u32::MAX)) | u64::from(n));
                (n % CLOCK_EVERY == 1, (word >> 32) as usize - 1)
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
        if let Self::Throttle { max, ratio, tokens } = self {
            match outcome {
                Outcome::Success => {
                    let _ = tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                        (t < *max).then(|| t.saturating_add(*ratio).min(*max))
                    });
                }
                Outcome::Failure(failure)
                    if failure.is_transient()
                        || matches!(failure.hint(), Some(weir_core::ServerHint::DoNotRetry)) =>
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
            Self::Throttle { max, tokens, .. } => tokens.load(Ordering::Acquire) > max / 2,
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
            Self::Throttle { max, tokens, .. } => {
                // Each retry needs the count above max / 2; each failure takes one token.
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

/// The stripe the next thread to deposit takes.
static NEXT_STRIPE: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// For [`BudgetState::deposit_now`]: the requests started on this thread (low 32 bits, for
    /// its sampling of the clock) and its stripe plus one (high 32 bits; 0 until its first
    /// request). One word: one thread-local access per request.
    static THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// This thread's stripe plus one, in the high 32 bits: consecutive threads (a runtime's
/// workers) take consecutive stripes.
#[cold]
#[inline(never)]
fn first_stripe() -> u64 {
    let stripe = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES as u32;
    u64::from(stripe + 1) << 32
}

/// One stripe of the request counts, on a 128-byte block of its own (adjacent-line
/// prefetching pairs lines), so threads on different stripes never write one line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(Window);

/// The ratio budget's state: requests and retries counted per slot of a sliding window.
#[derive(Debug)]
pub(crate) struct RatioState {
    start: Instant,
    /// The latest epoch any request or retry has seen.
    current: AtomicU32,
    slot_nanos: u64,
    /// Ratio × 1000.
    ratio_milli: u64,
    floor: u64,
    /// The requests, counted per thread stripe: each request counts once, in its thread's
    /// stripe, and the budget reads their sum (on a retry only). One shared counter would be
    /// written by every request of every thread, and two threads would contend on it.
    requests: [Stripe; STRIPES],
    retries: Window,
}

impl RatioState {
    fn new(ratio: f64, min_per_second: u32, window: Duration, now: Instant) -> Self {
        let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            start: now,
            current: AtomicU32::new(0),
            slot_nanos: (window_nanos / u64::from(SLOTS)).max(1),
            ratio_milli: (ratio * 1000.0) as u64,
            floor: u64::from(min_per_second).saturating_mul(window.as_secs().max(1)),
            requests: Default::default(),
            retries: Window::default(),
        }
    }

    fn epoch(&self, now: Instant) -> u32 {
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
    fn requests(&self, epoch: u32) -> u64 {
        self.requests.iter().map(|stripe| stripe.0.sum(epoch)).sum()
    }

    fn allowed(&self, epoch: u32) -> u64 {
        self.floor
            .saturating_add(self.requests(epoch).saturating_mul(self.ratio_milli) / 1000)
    }

    fn withdraw(&self, now: Instant) -> bool {
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

/// Counters per slot, each an atomic holding `(epoch << 32) | count`.
#[derive(Debug, Default)]
struct Window {
    slots: [AtomicU64; SLOTS as usize],
}

const fn pack(epoch: u32, count: u32) -> u64 {
    ((epoch as u64) << 32) | count as u64
}

const fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl Window {
    fn slot(&self, epoch: u32) -> &AtomicU64 {
        &self.slots[(epoch % SLOTS) as usize]
    }

    #[inline]
    fn add(&self, epoch: u32, n: u32) {
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

    /// [`add`](Self::add) when the slot still counts an older epoch: once per slot and epoch.
    #[cold]
    #[inline(never)]
    fn add_to_new_epoch(&self, epoch: u32, n: u32) {
        let _ = self
            .slot(epoch)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (e, count) = unpack(word);
                Some(if e == epoch {
                    pack(e, count.saturating_add(n))
                } else {
                    pack(epoch, n)
                })
            });
    }

    fn undo(&self, epoch: u32) {
        let _ = self
            .slot(epoch)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (e, count) = unpack(word);
                (e == epoch && count > 0).then(|| pack(e, count - 1))
            });
    }

    fn sum(&self, epoch: u32) -> u64 {
        self.slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Acquire)))
            .filter(|(e, _)| epoch.wrapping_sub(*e) < SLOTS)
            .map(|(_, count)| u64::from(count))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use weir_core::Failure;

    use super::*;

    #[test]
    fn requests_from_every_thread_count_once() {
        // Ratio 1, no floor: the budget allows exactly as many retries as requests were made,
        // whichever thread (hence stripe) counted them.
        let budget = RetryBudget::ratio(1.0)
            .min_per_second(0)
            .start(Instant::now());
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        budget.deposit_now();
                    }
                });
            }
        });
        assert_eq!(budget.available(Instant::now()), Some(300));
    }

    #[test]
    fn ratio_allows_the_floor_plus_the_ratio() {
        let now = Instant::now();
        let budget = RetryBudget::ratio(0.2).min_per_second(1).start(now);
        // Floor: 1/s × 10 s = 10.
        assert_eq!(budget.available(now), Some(10));
        for _ in 0..100 {
            budget.deposit(now);
        }
        assert_eq!(budget.available(now), Some(30));
        let granted = (0..100).filter(|_| budget.withdraw(now)).count();
        assert_eq!(granted, 30);
        assert_eq!(budget.available(now), Some(0));
    }

    #[test]
    fn ratio_forgets_after_the_window() {
        let now = Instant::now();
        let budget = RetryBudget::ratio(0.5).min_per_second(0).start(now);
        for _ in 0..10 {
            budget.deposit(now);
        }
        assert_eq!((0..10).filter(|_| budget.withdraw(now)).count(), 5);
        // Half a window later, still remembered.
        let later = now + Duration::from_secs(5);
        assert!(!budget.withdraw(later));
        // A full window later, both requests and retries are forgotten.
        let much_later = now + Duration::from_secs(10);
        assert_eq!(budget.available(much_later), Some(0));
        budget.deposit(much_later);
        budget.deposit(much_later);
        assert!(budget.withdraw(much_later));
        assert!(!budget.withdraw(much_later));
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_read_the_clock_now_and_then() {
        let budget = RetryBudget::ratio(0.2).start(Instant::now());
        // Long after the layer was built: the first deposit on this thread reads the clock, so
        // the requests count in the current window, not in one long gone.
        tokio::time::advance(Duration::from_secs(35)).await;
        for _ in 0..100 {
            budget.deposit_now();
        }
        assert_eq!(budget.available(Instant::now()), Some(100 + 20));
        // A window later they are forgotten, even though most deposits never read the clock.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(budget.available(Instant::now()), Some(100));
    }

    #[test]
    fn throttle_follows_grfc_a6() {
        let now = Instant::now();
        let budget = RetryBudget::grpc_throttle(10, 0.5).start(now);
        let failure = Outcome::Failure(Failure::transient());
        assert!(budget.withdraw(now));
        // 10 -> 6 tokens: still above 5.
        for _ in 0..4 {
            budget.record(&failure);
        }
        assert!(budget.withdraw(now));
        budget.record(&failure); // 5: not above 5
        assert!(!budget.withdraw(now));
        budget.record(&Outcome::Success); // 5.5
        assert!(budget.withdraw(now));
        // Permanent failures and ignored results do not count.
        budget.record(&Outcome::Failure(Failure::permanent()));
        budget.record(&Outcome::Ignored);
        assert!(budget.withdraw(now));
        // Never above max, never below zero.
        for _ in 0..100 {
            budget.record(&Outcome::Success);
        }
        assert_eq!(budget.available(now), Some(5));
        for _ in 0..100 {
            budget.record(&failure);
        }
        assert_eq!(budget.available(now), Some(0));
        for _ in 0..11 {
            budget.record(&Outcome::Success); // 5.5 tokens
        }
        assert!(budget.withdraw(now));
    }

    #[test]
    fn validation_names_the_rule() {
        use crate::ConfigError;
        assert_eq!(
            RetryBudget::ratio(f64::NAN).validate(),
            Err(ConfigError::BudgetRatio)
        );
        assert_eq!(
            RetryBudget::ratio(0.1)
                .window(Duration::from_millis(10))
                .validate(),
            Err(ConfigError::BudgetWindow)
        );
        assert_eq!(
            RetryBudget::grpc_throttle(0, 1.0).validate(),
            Err(ConfigError::ThrottleMaxTokens)
        );
        assert_eq!(
            RetryBudget::grpc_throttle(10, 0.0).validate(),
            Err(ConfigError::ThrottleTokenRatio)
        );
        assert_eq!(RetryBudget::default().validate(), Ok(()));
    }
}
