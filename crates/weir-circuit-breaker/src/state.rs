//! The breaker's algorithm: a state machine over atomics, with no runtime and no `Service`.
//!
//! Time is a [`Duration`] since the breaker's origin, passed in by the caller (a closure, so the
//! closed path never reads the clock when it does not need to).
//!
//! # Layout
//!
//! - `word`: the state tag (low 8 bits) and a generation (high 32 bits), bumped by every
//!   transition. A permit remembers the word it was admitted under; an outcome reported under an
//!   older word is a late result of an earlier period and is ignored (Polly #216/#219).
//! - the closed path loads `word` (admission), and on completion records the outcome into the
//!   window with a few atomic RMWs; it never takes the lock. A success never opens the circuit,
//!   so the thresholds are judged only when a failure or a slow call is recorded.
//! - every transition takes `control` (a short `std::sync::Mutex` section), re-checks that
//!   `word` is still the one it expected, and publishes the new word last.
//! - half-open probes: `probes` holds the generation (high 32 bits) and the free probe slots
//!   (low 32 bits), taken and given back by compare-and-swap, so exactly K probes are admitted per
//!   half-open period and a slot given back late never leaks into a later period.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use weir_core::{Backoff, FastRandom};

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls go through; outcomes are counted and may open the circuit.
    Closed,
    /// Calls are rejected at once until the open time has passed.
    Open,
    /// A fixed number of probe calls go through; the others are rejected.
    HalfOpen,
    /// Set by hand: every call is rejected until the breaker is reset.
    ForcedOpen,
    /// Set by hand: every call goes through; outcomes are counted but never open the circuit.
    ForcedClosed,
    /// Set by hand: every call goes through and nothing is counted.
    Disabled,
    /// Set by hand: every call goes through; outcomes are counted, and when a threshold is
    /// crossed an event says so, but the circuit never opens.
    MetricsOnly,
}

impl State {
    /// The state in `snake_case`, as events and metrics label it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
            Self::Disabled => "disabled",
            Self::MetricsOnly => "metrics_only",
        }
    }

    /// The state's tag in a state word. The states whose calls are admitted and counted come
    /// first, so the closed path tells them apart with one comparison ([`is_counted`]).
    const fn tag(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::ForcedClosed => 1,
            Self::MetricsOnly => 2,
            Self::Open => 3,
            Self::HalfOpen => 4,
            Self::ForcedOpen => 5,
            Self::Disabled => 6,
        }
    }

    const fn of(word: u64) -> Self {
        match word & 0xff {
            0 => Self::Closed,
            1 => Self::ForcedClosed,
            2 => Self::MetricsOnly,
            3 => Self::Open,
            4 => Self::HalfOpen,
            5 => Self::ForcedOpen,
            _ => Self::Disabled,
        }
    }
}

/// Whether the state of `word` admits every call and counts its outcome: closed, forced closed
/// or metrics-only (the first three tags).
#[inline]
const fn is_counted(word: u64) -> bool {
    word & 0xff <= State::MetricsOnly.tag()
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker changed state (or, in metrics-only mode, would have opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The failure rate over the window reached its threshold.
    FailureRate,
    /// The slow-call rate over the window reached its threshold.
    SlowCallRate,
    /// The number of consecutive failures reached its threshold.
    ConsecutiveFailures,
    /// The open time passed and a call arrived: the circuit is half-open.
    OpenTimeElapsed,
    /// A half-open probe failed (or was slow).
    ProbeFailed,
    /// Every half-open probe succeeded: the circuit is closed again.
    ProbesSucceeded,
    /// The circuit stayed half-open longer than the maximum half-open wait with no probe slot
    /// free (probes that never reported back): it is open again.
    HalfOpenTimeout,
    /// A handle changed the state by hand.
    Manual,
}

impl Reason {
    /// The reason in `snake_case`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FailureRate => "failure_rate",
            Self::SlowCallRate => "slow_call_rate",
            Self::ConsecutiveFailures => "consecutive_failures",
            Self::OpenTimeElapsed => "open_time_elapsed",
            Self::ProbeFailed => "probe_failed",
            Self::ProbesSucceeded => "probes_succeeded",
            Self::HalfOpenTimeout => "half_open_timeout",
            Self::Manual => "manual",
        }
    }
}

/// Which window the rates are computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowKind {
    /// The last `n` recorded calls.
    Count(u32),
    /// `buckets` buckets of `size / buckets` each.
    Time { size: Duration, buckets: u32 },
}

/// A rate threshold, in parts per million.
pub(crate) type Ppm = u64;

/// Converts a percentage (validated by the builder to be in `(0, 100]`) to parts per million.
pub(crate) fn ppm(percent: f64) -> Ppm {
    // In (0, 100] times 10 000: at most 1 000 000, exactly representable.
    (percent * 10_000.0).round().clamp(1.0, 1_000_000.0) as Ppm
}

/// Everything the algorithm needs to know, validated by the builder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Settings {
    pub(crate) window: WindowKind,
    pub(crate) failure_rate: Option<Ppm>,
    pub(crate) slow_rate: Option<Ppm>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) minimum_calls: u32,
    pub(crate) open: Backoff,
    pub(crate) probes: u32,
    pub(crate) max_half_open: Duration,
    pub(crate) seed: Option<u64>,
}

impl Settings {
    /// The minimum number of calls, never more than a count window holds.
    fn minimum(&self) -> u64 {
        let minimum = match self.window {
            WindowKind::Count(n) => self.minimum_calls.min(n),
            WindowKind::Time { .. } => self.minimum_calls,
        };
        u64::from(minimum.max(1))
    }
}

/// What one finished call means to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) verdict: Verdict,
    /// Slower than the slow-call threshold (always `false` when none is set).
    pub(crate) slow: bool,
}

/// The classifier's verdict, reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    Ignored,
}

/// A call admitted by [`Breaker::admit`]; hand it back with [`Breaker::record`] or
/// [`Breaker::release`].
///
/// One word, so that the response future stays small and is moved with whole-word copies:
/// the state word it was admitted under (generation in the high 32 bits, state tag in the low
/// 8), its [`PermitKind`] in bits 8 to 15, and bit 16 always set (never zero, so an
/// `Option<Permit>` is one word too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Permit(NonZeroU64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum PermitKind {
    /// Closed, forced closed, metrics-only: counted in the window.
    Counted = 0,
    /// A half-open probe: holds one of the K slots.
    Probe = 1,
    /// Disabled: nothing is counted.
    Untracked = 2,
}

/// The bits of a [`Permit`] that hold the state word.
const PERMIT_WORD: u64 = 0xffff_ffff_0000_00ff;
/// The bit always set in a [`Permit`].
const PERMIT_MARK: u64 = 1 << 16;

impl Permit {
    /// A counted permit admitted under `word` (whose bits 8 to 31 are clear, as in every state
    /// word): the word and the mark, so that [`Breaker::success_is_steady`] compares it with
    /// the current word in one go.
    #[inline]
    const fn counted(word: u64) -> Self {
        match NonZeroU64::new(word | PERMIT_MARK) {
            Some(bits) => Self(bits),
            None => Self(NonZeroU64::MIN),
        }
    }

    #[inline]
    const fn new(word: u64, kind: PermitKind) -> Self {
        let bits = (word & PERMIT_WORD) | ((kind as u64) << 8) | PERMIT_MARK;
        match NonZeroU64::new(bits) {
            Some(bits) => Self(bits),
            None => Self(NonZeroU64::MIN),
        }
    }

    /// The state word the call was admitted under.
    #[inline]
    const fn word(self) -> u64 {
        self.0.get() & PERMIT_WORD
    }

    #[inline]
    const fn kind(self) -> PermitKind {
        match (self.0.get() >> 8) & 0xff {
            0 => PermitKind::Counted,
            1 => PermitKind::Probe,
            _ => PermitKind::Untracked,
        }
    }

    /// Whether dropping this permit without an outcome gives something back.
    ///
    /// One bit test: of the kinds (0, 1, 2 in bits 8 to 15) only [`PermitKind::Probe`] sets
    /// bit 8 (every guard's drop asks this).
    #[inline]
    pub(crate) const fn is_probe(self) -> bool {
        self.0.get() & (1 << 8) != 0
    }
}

/// The answer to [`Breaker::admit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Permit(Permit),
    Reject {
        state: State,
        /// The remaining open time, when the circuit is open.
        retry_after: Option<Duration>,
    },
}

/// Something the caller reports as an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    Changed {
        from: State,
        to: State,
        reason: Reason,
    },
    /// Metrics-only mode: a threshold was crossed, the circuit stays as it is.
    WouldOpen { reason: Reason },
}

/// Window counts at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

const PRESENT: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

const fn code(failed: bool, slow: bool) -> u8 {
    PRESENT | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 }
}

/// Running counters, never negative: every decrement matches an increment that happened before
/// it (see [`CountWindow::record`]), except across a reset racing a late recorder, which the
/// clamping on read absorbs.
#[derive(Debug, Default)]
struct Counters {
    total: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl Counters {
    fn add(&self, code: u8) {
        if code & PRESENT != 0 {
            self.total.fetch_add(1, Ordering::Relaxed);
            if code & FAILED != 0 {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            if code & SLOW != 0 {
                self.slow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn sub(&self, code: u8) {
        if code & PRESENT != 0 {
            self.total.fetch_sub(1, Ordering::Relaxed);
            if code & FAILED != 0 {
                self.failures.fetch_sub(1, Ordering::Relaxed);
            }
            if code & SLOW != 0 {
                self.slow.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn clear(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
    }

    /// The counts, each read as a signed number and clamped to `[0, cap]`.
    fn read(&self, cap: u64) -> Counts {
        let read = |c: &AtomicU32| {
            let v = c.load(Ordering::Relaxed).cast_signed();
            u64::from(v.max(0).cast_unsigned()).min(cap)
        };
        Counts {
            total: read(&self.total),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }
}

/// The last `n` calls: a ring of outcome codes and running counters. The outcome falling out of
/// the window is subtracted, so the window truly slides.
#[derive(Debug)]
struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    counters: Counters,
}

impl CountWindow {
    fn new(n: u32) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// Every slot holds a success (neither failed nor slow).
    #[inline]
    fn full_of_successes(&self) -> bool {
        // `&`, not `&&`: three loads and one branch (the loads have no effect to short-cut).
        (self.counters.failures.load(Ordering::Relaxed) == 0)
            & (self.counters.slow.load(Ordering::Relaxed) == 0)
            & (u64::from(self.counters.total.load(Ordering::Relaxed)) == self.slots.len() as u64)
    }

    #[inline]
    fn record(&self, code: u8) {
        let len = self.slots.len() as u64;
        // A window full of successes stays full of successes whichever slot a success lands in:
        // only loads, no write to a shared line (the healthy steady state scales across threads).
        if code == PRESENT && self.full_of_successes() {
            return;
        }
        let index = (self.next.fetch_add(1, Ordering::Relaxed) % len) as usize;
        let slot = &self.slots[index];
        // Steady state (the same outcome as N calls ago, a success in a healthy service): nothing
        // changes, nothing is written.
        if slot.load(Ordering::Relaxed) == code {
            return;
        }
        // Add before the swap, subtract after: whoever swaps our code out later has seen our
        // addition first (the swaps on one slot are ordered), so no counter goes below zero.
        self.counters.add(code);
        let old = slot.swap(code, Ordering::AcqRel);
        self.counters.sub(old);
    }

    fn counts(&self) -> Counts {
        self.counters.read(self.slots.len() as u64)
    }

    fn reset(&self) {
        for slot in &*self.slots {
            slot.store(0, Ordering::Relaxed);
        }
        self.counters.clear();
        self.next.store(0, Ordering::Relaxed);
    }
}

/// One bucket of a time window, tagged with the bucket number it counts (0: never used).
#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    counters: Counters,
}

/// Fixed buckets over a time span: O(1) to record, O(buckets) to judge (only on a failure or a
/// slow call), O(buckets) memory.
#[derive(Debug)]
struct TimeWindow {
    buckets: Box<[Bucket]>,
    bucket_nanos: u64,
    /// The bucket number (high 48 bits) and slot (low 16 bits) last worked out by `record`, so
    /// that the calls of one bucket's period find both without two divisions: a memo of a pure
    /// function of the time (0: none yet), written once per period.
    last: AtomicU64,
}

/// Bits of [`TimeWindow::last`] that hold the slot (a window has at most 1 000).
const SLOT_BITS: u32 = 16;

impl TimeWindow {
    fn new(size: Duration, buckets: u32) -> Self {
        let buckets = buckets.max(1);
        let nanos = u64::try_from(size.as_nanos()).unwrap_or(u64::MAX);
        Self {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            bucket_nanos: (nanos / u64::from(buckets)).max(1),
            last: AtomicU64::new(0),
        }
    }

    /// The bucket number of `now`, from 1.
    fn epoch(&self, now: u64) -> u64 {
        now / self.bucket_nanos + 1
    }

    /// The bucket number of `now` and its slot: from the memo when `now` falls in the period
    /// it holds (`now - start < bucket_nanos` is `now / bucket_nanos == epoch - 1`), else
    /// worked out and memoised.
    #[inline]
    fn epoch_and_slot(&self, now: u64) -> (u64, usize) {
        let last = self.last.load(Ordering::Relaxed);
        let epoch = last >> SLOT_BITS;
        if epoch != 0 {
            // `(epoch - 1) * bucket_nanos` is at most the time that produced `epoch`: no
            // overflow.
            let start = (epoch - 1) * self.bucket_nanos;
            if now >= start && now - start < self.bucket_nanos {
                return (epoch, (last & ((1 << SLOT_BITS) - 1)) as usize);
            }
        }
        self.epoch_and_slot_slow(now)
    }

    #[cold]
    #[inline(never)]
    fn epoch_and_slot_slow(&self, now: u64) -> (u64, usize) {
        let epoch = self.epoch(now);
        let slot = epoch % self.buckets.len() as u64;
        if epoch < 1 << (64 - SLOT_BITS) && slot < 1 << SLOT_BITS {
            self.last
                .store((epoch << SLOT_BITS) | slot, Ordering::Relaxed);
        }
        (epoch, slot as usize)
    }

    fn record(&self, code: u8, now: u64) {
        let (epoch, slot) = self.epoch_and_slot(now);
        let bucket = &self.buckets[slot];
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != epoch {
            if seen > epoch {
                // A call that read the clock long before it recorded; its bucket is gone.
                return;
            }
            // The first recorder of a new period claims the bucket and clears it. A call that
            // records between the claim and the clearing is lost: a few calls at most, at a
            // bucket boundary.
            if bucket
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.counters.clear();
            }
        }
        bucket.counters.add(code);
    }

    fn counts(&self, now: u64) -> Counts {
        let epoch = self.epoch(now);
        let len = self.buckets.len() as u64;
        let mut sum = Counts::default();
        for bucket in &*self.buckets {
            let seen = bucket.epoch.load(Ordering::Acquire);
            if seen != 0 && seen <= epoch && epoch - seen < len {
                let c = bucket.counters.read(u64::from(u32::MAX));
                sum.total += c.total;
                sum.failures += c.failures;
                sum.slow += c.slow;
            }
        }
        sum
    }

    fn reset(&self) {
        for bucket in &*self.buckets {
            bucket.epoch.store(0, Ordering::Relaxed);
            bucket.counters.clear();
        }
    }
}

#[derive(Debug)]
enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

/// What only transitions touch, under the lock.
#[derive(Debug)]
struct Control {
    /// Openings since the circuit was last closed: the open time's growth step.
    openings: u32,
    /// The previous open time (for decorrelated jitter).
    previous: Duration,
    rng: FastRandom,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

const fn generation(word: u64) -> u64 {
    word >> 32
}

const fn next_word(word: u64, to: State) -> u64 {
    ((generation(word).wrapping_add(1) & 0xffff_ffff) << 32) | to.tag()
}

/// One circuit breaker's state, shared by every clone of the service (and, keyed, one per key).
#[derive(Debug)]
pub(crate) struct Breaker {
    settings: Settings,
    word: AtomicU64,
    /// Nanoseconds since the origin at which an open circuit lets a probe through.
    open_until: AtomicU64,
    /// Nanoseconds since the origin at which a half-open circuit with no free slot re-opens.
    half_open_until: AtomicU64,
    /// Generation (high 32 bits) and free probe slots (low 32 bits).
    probes: AtomicU64,
    /// Generation (high 32 bits) and successful probes (low 32 bits).
    successes: AtomicU64,
    consecutive: AtomicU32,
    rejected: AtomicU64,
    opened: AtomicU64,
    window: Window,
    control: Mutex<Control>,
}

impl Breaker {
    pub(crate) fn new(settings: Settings) -> Self {
        let window = match settings.window {
            WindowKind::Count(n) => Window::Count(CountWindow::new(n)),
            WindowKind::Time { size, buckets } => Window::Time(TimeWindow::new(size, buckets)),
        };
        let rng = settings
            .seed
            .map_or_else(FastRandom::new, FastRandom::seeded);
        Self {
            settings,
            word: AtomicU64::new(State::Closed.tag()),
            open_until: AtomicU64::new(0),
            half_open_until: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            window,
            control: Mutex::new(Control {
                openings: 0,
                previous: Duration::ZERO,
                rng,
            }),
        }
    }

    pub(crate) const fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current state (an open circuit whose time is up stays `Open` until the next call).
    pub(crate) fn state(&self) -> State {
        State::of(self.word.load(Ordering::Acquire))
    }

    /// The remaining open time, when open.
    pub(crate) fn open_remaining(&self, now: Duration) -> Option<Duration> {
        (self.state() == State::Open).then(|| {
            Duration::from_nanos(
                self.open_until
                    .load(Ordering::Acquire)
                    .saturating_sub(nanos(now)),
            )
        })
    }

    pub(crate) fn counts(&self, now: Duration) -> Counts {
        match &self.window {
            Window::Count(w) => w.counts(),
            Window::Time(w) => w.counts(nanos(now)),
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides whether a call may go through. Reads the clock (`now`) only when the circuit is
    /// open or half-open.
    #[inline]
    pub(crate) fn admit(&self, now: impl Fn() -> Duration) -> (Admit, Option<Notice>) {
        match self.admit_counted() {
            Some(permit) => (Admit::Permit(permit), None),
            None => self.admit_slow(now),
        }
    }

    /// The closed path of [`admit`](Self::admit), inlined into the caller: one load. A permit
    /// when the circuit is closed, forced closed or metrics-only (the answer `admit` would give,
    /// with no notice); `None` otherwise, and then `admit` decides.
    ///
    /// `Relaxed`, as [`still_counted`](Self::still_counted): a counted permit reads nothing the
    /// word publishes (the steps that do, `record` and `success_is_steady`, load it again with
    /// `Acquire`, and `admit`'s other states are decided on an `Acquire` load of their own).
    #[inline]
    pub(crate) fn admit_counted(&self) -> Option<Permit> {
        let word = self.word.load(Ordering::Relaxed);
        is_counted(word).then(|| Permit::counted(word))
    }

    #[cold]
    #[inline(never)]
    fn admit_slow(&self, now: impl Fn() -> Duration) -> (Admit, Option<Notice>) {
        let mut notice = None;
        // Each pass either answers or follows a transition; three transitions in a row (open ->
        // half-open, then another thread's half-open -> open -> ...) are not worth chasing.
        for _ in 0..3 {
            let word = self.word.load(Ordering::Acquire);
            match State::of(word) {
                State::Closed | State::ForcedClosed | State::MetricsOnly => {
                    return (
                        Admit::Permit(Permit::new(word, PermitKind::Counted)),
                        notice,
                    );
                }
                State::Disabled => {
                    return (
                        Admit::Permit(Permit::new(word, PermitKind::Untracked)),
                        notice,
                    );
                }
                State::ForcedOpen => return (self.reject(State::ForcedOpen, None), notice),
                State::Open => {
                    let now = nanos(now());
                    let until = self.open_until.load(Ordering::Acquire);
                    if now < until {
                        let remaining = Duration::from_nanos(until - now);
                        return (self.reject(State::Open, Some(remaining)), notice);
                    }
                    if let Some(changed) = self.to_half_open(word, now) {
                        notice = Some(changed);
                    }
                }
                State::HalfOpen => {
                    if let Some(permit) = self.take_probe(word) {
                        return (Admit::Permit(permit), notice);
                    }
                    let now = nanos(now());
                    if now < self.half_open_until.load(Ordering::Acquire) {
                        return (self.reject(State::HalfOpen, None), notice);
                    }
                    // Every slot is taken and the maximum wait is over: the probes are hung.
                    if let Some(changed) = self.trip(word, now, Reason::HalfOpenTimeout) {
                        notice = Some(changed);
                    }
                }
            }
        }
        (self.reject(self.state(), None), notice)
    }

    /// Whether a closed-path permit ([`admit_counted`](Self::admit_counted)) still holds: the
    /// circuit has not moved since (one load). `false` for any other permit (the caller then
    /// decides afresh: right, if slower).
    ///
    /// `Relaxed`: the load only asks whether the word moved (coherence gives a value no older
    /// than the one `poll_ready` read) and publishes nothing to this thread; every step that
    /// reads state the word guards (`record`, `success_is_steady`) loads it again with
    /// `Acquire`. An `Acquire` load here would also make the compiler reload the pointers to
    /// the shared state it already holds (an ordering barrier for every later load): about six
    /// instructions on the closed path.
    #[inline]
    pub(crate) fn still_counted(&self, permit: Permit) -> bool {
        Permit::counted(self.word.load(Ordering::Relaxed)) == permit
    }

    /// Whether the circuit is still in the period (state and generation) `permit` was taken in:
    /// the circuit has not moved since (one load).
    #[inline]
    pub(crate) fn is_current(&self, permit: Permit) -> bool {
        self.word.load(Ordering::Acquire) == permit.word()
    }

    /// Takes back the count of a rejection that became a wait (backpressure mode).
    pub(crate) fn waited(&self) {
        self.rejected.fetch_sub(1, Ordering::Relaxed);
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Admit {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Admit::Reject { state, retry_after }
    }

    fn take_probe(&self, word: u64) -> Option<Permit> {
        let generation = generation(word);
        let mut probes = self.probes.load(Ordering::Acquire);
        loop {
            if probes >> 32 != generation || probes & 0xffff_ffff == 0 {
                return None;
            }
            match self.probes.compare_exchange_weak(
                probes,
                probes - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Permit::new(word, PermitKind::Probe));
                }
                Err(actual) => probes = actual,
            }
        }
    }

    /// Gives a probe's slot back (its call was dropped, or its outcome ignored).
    pub(crate) fn release(&self, permit: Permit) {
        if permit.kind() != PermitKind::Probe {
            return;
        }
        let generation = generation(permit.word());
        let mut probes = self.probes.load(Ordering::Acquire);
        while probes >> 32 == generation && probes & 0xffff_ffff < u64::from(self.settings.probes) {
            match self.probes.compare_exchange_weak(
                probes,
                probes + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => probes = actual,
            }
        }
    }

    /// Records the outcome of an admitted call. `now` is read only for a time window or when the
    /// circuit opens.
    #[inline]
    pub(crate) fn record(
        &self,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        match permit.kind() {
            PermitKind::Untracked => None,
            PermitKind::Probe => self.record_probe(permit, report, now),
            PermitKind::Counted => self.record_counted(permit, report, now),
        }
    }

    /// Whether recording a success (not slow) for `permit` would change nothing: a counted
    /// permit of the current period, a count window full of successes and no failure in a row.
    /// The same loads, in the same order, as [`record`](Self::record) makes for that success
    /// before it returns without a write; when this is `true`, `record` may be skipped.
    #[inline]
    pub(crate) fn success_is_steady(&self, permit: Permit) -> bool {
        let Window::Count(window) = &self.window else {
            return false;
        };
        // A counted permit of the current word is exactly the current word with the mark.
        // `&`, not `&&`: loads only, one branch.
        (Permit::counted(self.word.load(Ordering::Acquire)) == permit)
            & window.full_of_successes()
            & (self.consecutive.load(Ordering::Relaxed) == 0)
    }

    #[inline]
    fn record_counted(
        &self,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        if report.verdict == Verdict::Ignored || self.word.load(Ordering::Acquire) != permit.word()
        {
            return None;
        }
        let failed = report.verdict == Verdict::Failure;
        let code = code(failed, report.slow);
        let mut time = None;
        match &self.window {
            Window::Count(w) => w.record(code),
            Window::Time(w) => {
                let t = nanos(now());
                time = Some(t);
                w.record(code, t);
            }
        }
        let consecutive = if failed {
            self.consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1)
        } else {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            0
        };
        if !failed && !report.slow {
            // A success never opens the circuit.
            return None;
        }
        self.judge(permit, consecutive, time, now)
    }

    #[cold]
    #[inline(never)]
    fn judge(
        &self,
        permit: Permit,
        consecutive: u32,
        time: Option<u64>,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        let reason = self.crossed(consecutive, time.unwrap_or_else(|| nanos(now())))?;
        match State::of(permit.word()) {
            State::Closed => self.trip(permit.word(), nanos(now()), reason),
            State::MetricsOnly => Some(Notice::WouldOpen { reason }),
            _ => None,
        }
    }

    /// The first threshold crossed, if any.
    fn crossed(&self, consecutive: u32, now: u64) -> Option<Reason> {
        let s = &self.settings;
        if s.consecutive_failures.is_some_and(|n| consecutive >= n) {
            return Some(Reason::ConsecutiveFailures);
        }
        if s.failure_rate.is_none() && s.slow_rate.is_none() {
            return None;
        }
        let counts = self.counts(Duration::from_nanos(now));
        if counts.total < s.minimum() {
            return None;
        }
        let reached = |n: u64, ppm: Ppm| n * 1_000_000 >= ppm * counts.total;
        if s.failure_rate.is_some_and(|r| reached(counts.failures, r)) {
            return Some(Reason::FailureRate);
        }
        if s.slow_rate.is_some_and(|r| reached(counts.slow, r)) {
            return Some(Reason::SlowCallRate);
        }
        None
    }

    fn record_probe(
        &self,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        if self.word.load(Ordering::Acquire) != permit.word() {
            return None;
        }
        if report.verdict == Verdict::Failure || (report.slow && self.settings.slow_rate.is_some())
        {
            return self.trip(permit.word(), nanos(now()), Reason::ProbeFailed);
        }
        if report.verdict == Verdict::Ignored {
            self.release(permit);
            return None;
        }
        let generation = generation(permit.word());
        let mut successes = self.successes.load(Ordering::Acquire);
        loop {
            if successes >> 32 != generation {
                return None;
            }
            match self.successes.compare_exchange_weak(
                successes,
                successes + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => successes = actual,
            }
        }
        if (successes & 0xffff_ffff) + 1 >= u64::from(self.settings.probes) {
            self.transition(permit.word(), State::Closed, Reason::ProbesSucceeded)
        } else {
            None
        }
    }

    /// Opens the circuit if it is still in `expected`, for the configured open time (never a
    /// server's `Retry-After`: that speaks of one caller's request, not of every caller's).
    fn trip(&self, expected: u64, now: u64, reason: Reason) -> Option<Notice> {
        let mut control = self.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return None;
        }
        let duration = {
            let c = &mut *control;
            self.settings.open.delay(c.openings, c.previous, &mut c.rng)
        };
        control.previous = duration;
        control.openings = control.openings.saturating_add(1);
        self.open_until
            .store(now.saturating_add(nanos(duration)), Ordering::Release);
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.word
            .store(next_word(expected, State::Open), Ordering::Release);
        Some(Notice::Changed {
            from: State::of(expected),
            to: State::Open,
            reason,
        })
    }

    fn to_half_open(&self, expected: u64, now: u64) -> Option<Notice> {
        let _control = self.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return None;
        }
        let word = next_word(expected, State::HalfOpen);
        let generation = generation(word) << 32;
        self.probes.store(
            generation | u64::from(self.settings.probes),
            Ordering::Release,
        );
        self.successes.store(generation, Ordering::Release);
        self.half_open_until.store(
            now.saturating_add(nanos(self.settings.max_half_open)),
            Ordering::Release,
        );
        self.word.store(word, Ordering::Release);
        Some(Notice::Changed {
            from: State::Open,
            to: State::HalfOpen,
            reason: Reason::OpenTimeElapsed,
        })
    }

    /// Moves to `to` if the circuit is still in `expected`; closing starts a fresh window and
    /// resets the open time's growth.
    fn transition(&self, expected: u64, to: State, reason: Reason) -> Option<Notice> {
        let mut control = self.lock();
        if self.word.load(Ordering::Acquire) != expected {
            return None;
        }
        if to == State::Closed {
            self.clear(&mut control);
        }
        self.word.store(next_word(expected, to), Ordering::Release);
        Some(Notice::Changed {
            from: State::of(expected),
            to,
            reason,
        })
    }

    fn clear(&self, control: &mut Control) {
        match &self.window {
            Window::Count(w) => w.reset(),
            Window::Time(w) => w.reset(),
        }
        self.consecutive.store(0, Ordering::Relaxed);
        control.openings = 0;
        control.previous = Duration::ZERO;
    }

    /// Sets a state by hand. `Closed` is a reset: a fresh window, the open time back to its
    /// base. `Open` opens for the configured open time (grown as usual); `HalfOpen` is not
    /// settable (it is reached through `Open`). Returns a notice when the state changed.
    pub(crate) fn set(&self, to: State, now: Duration) -> Option<Notice> {
        let mut control = self.lock();
        let word = self.word.load(Ordering::Acquire);
        let from = State::of(word);
        if to == State::Closed {
            self.clear(&mut control);
        }
        if to == State::Open {
            drop(control);
            let notice = self.trip(word, nanos(now), Reason::Manual);
            return notice.map(|n| match n {
                Notice::Changed { from, to, .. } => Notice::Changed {
                    from,
                    to,
                    reason: Reason::Manual,
                },
                other @ Notice::WouldOpen { .. } => other,
            });
        }
        self.word.store(next_word(word, to), Ordering::Release);
        (from != to).then_some(Notice::Changed {
            from,
            to,
            reason: Reason::Manual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            window: WindowKind::Count(10),
            failure_rate: Some(ppm(50.0)),
            slow_rate: None,
            consecutive_failures: None,
            minimum_calls: 4,
            open: Backoff::constant(Duration::from_secs(5)),
            probes: 2,
            max_half_open: Duration::from_secs(30),
            seed: Some(1),
        }
    }

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ok() -> Report {
        Report {
            verdict: Verdict::Success,
            slow: false,
        }
    }

    fn fail() -> Report {
        Report {
            verdict: Verdict::Failure,
            slow: false,
        }
    }

    fn call(b: &Breaker, at: Duration, report: Report) -> Option<Notice> {
        match b.admit(|| at).0 {
            Admit::Permit(p) => b.record(p, report, || at),
            Admit::Reject { .. } => panic!("rejected at {at:?} in {:?}", b.state()),
        }
    }

    fn permit(b: &Breaker, at: Duration) -> Permit {
        match b.admit(|| at).0 {
            Admit::Permit(p) => p,
            Admit::Reject { .. } => panic!("rejected at {at:?} in {:?}", b.state()),
        }
    }

    fn is_rejected(b: &Breaker, at: Duration) -> bool {
        matches!(b.admit(|| at).0, Admit::Reject { .. })
    }

    #[test]
    fn count_window_slides() {
        let b = Breaker::new(settings());
        for _ in 0..1000 {
            assert_eq!(call(&b, secs(0), ok()), None);
        }
        // The last 10 calls: 4 failures out of 10 is below half.
        for _ in 0..4 {
            assert_eq!(call(&b, secs(0), fail()), None);
        }
        assert_eq!(
            b.counts(secs(0)),
            Counts {
                total: 10,
                failures: 4,
                slow: 0
            }
        );
        // The fifth failure makes it 5 out of the last 10.
        assert_eq!(
            call(&b, secs(0), fail()),
            Some(Notice::Changed {
                from: State::Closed,
                to: State::Open,
                reason: Reason::FailureRate
            })
        );
        assert_eq!(b.state(), State::Open);
    }

    /// The closed path skips `record` for a success when `success_is_steady` says so: it must
    /// say so only when recording would change nothing, and say so in a healthy window.
    #[test]
    fn a_success_is_steady_only_in_a_window_full_of_successes() {
        let b = Breaker::new(settings());
        let p = permit(&b, secs(0));
        assert!(!b.success_is_steady(p), "an empty window is not full");
        for _ in 0..10 {
            call(&b, secs(0), ok());
        }
        assert!(b.success_is_steady(permit(&b, secs(0))));
        // One failure among the last 10: a success slides it along, so it must be recorded.
        call(&b, secs(0), fail());
        assert!(!b.success_is_steady(permit(&b, secs(0))));
        for _ in 0..10 {
            call(&b, secs(0), ok());
        }
        let p = permit(&b, secs(0));
        assert!(b.success_is_steady(p));
        // A permit of an earlier period is not steady: its outcome is ignored by `record`
        // anyway, and the check must not answer for a period it was not admitted in.
        b.set(State::ForcedClosed, secs(0));
        assert!(!b.success_is_steady(p));
        // A probe is never steady: its success counts towards closing.
        b.set(State::Open, secs(0));
        let probe = permit(&b, secs(5));
        assert!(probe.is_probe());
        assert!(!b.success_is_steady(probe));
        // A time window has no steady state: every success goes into its bucket.
        let t = Breaker::new(Settings {
            window: WindowKind::Time {
                size: secs(10),
                buckets: 2,
            },
            ..settings()
        });
        for _ in 0..20 {
            call(&t, secs(0), ok());
        }
        assert!(!t.success_is_steady(permit(&t, secs(0))));
    }

    #[test]
    fn minimum_calls_hold_the_rate_back() {
        let b = Breaker::new(settings());
        for _ in 0..3 {
            assert_eq!(call(&b, secs(0), fail()), None);
        }
        assert_eq!(b.state(), State::Closed);
        assert!(call(&b, secs(0), fail()).is_some());
    }

    #[test]
    fn a_success_never_opens() {
        let b = Breaker::new(Settings {
            minimum_calls: 10,
            ..settings()
        });
        for _ in 0..9 {
            call(&b, secs(0), fail());
        }
        // 9 failures, then the 10th call is a success: 90 % over 10 calls, but a success does
        // not judge; the next failure does.
        assert_eq!(call(&b, secs(0), ok()), None);
        assert_eq!(b.state(), State::Closed);
        assert!(call(&b, secs(0), fail()).is_some());
    }

    #[test]
    fn open_rejects_with_the_remaining_time_then_half_opens() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            call(&b, secs(10), fail());
        }
        assert_eq!(
            b.admit(|| secs(12)).0,
            Admit::Reject {
                state: State::Open,
                retry_after: Some(secs(3))
            }
        );
        let (admit, notice) = b.admit(|| secs(15));
        assert!(matches!(admit, Admit::Permit(p) if p.is_probe()));
        assert_eq!(
            notice,
            Some(Notice::Changed {
                from: State::Open,
                to: State::HalfOpen,
                reason: Reason::OpenTimeElapsed
            })
        );
        // Two probes: the second is admitted, the third rejected.
        let _second = permit(&b, secs(15));
        assert!(is_rejected(&b, secs(15)));
        assert_eq!(b.rejected(), 2);
    }

    #[test]
    fn probes_close_after_k_successes_and_reset_the_window() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            call(&b, secs(0), fail());
        }
        let first = permit(&b, secs(5));
        let second = permit(&b, secs(5));
        assert_eq!(b.record(first, ok(), || secs(6)), None);
        assert_eq!(
            b.record(second, ok(), || secs(6)),
            Some(Notice::Changed {
                from: State::HalfOpen,
                to: State::Closed,
                reason: Reason::ProbesSucceeded
            })
        );
        assert_eq!(b.counts(secs(6)), Counts::default());
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn a_failed_probe_reopens_and_late_results_are_ignored() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            call(&b, secs(0), fail());
        }
        let first = permit(&b, secs(5));
        let second = permit(&b, secs(5));
        assert!(matches!(
            b.record(first, fail(), || secs(6)),
            Some(Notice::Changed {
                to: State::Open,
                reason: Reason::ProbeFailed,
                ..
            })
        ));
        // The other probe's success comes late: it belongs to the previous half-open period.
        assert_eq!(b.record(second, ok(), || secs(7)), None);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.open_remaining(secs(7)), Some(secs(4)));
    }

    #[test]
    fn a_released_probe_frees_its_slot_once() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            call(&b, secs(0), fail());
        }
        let first = permit(&b, secs(5));
        let _second = permit(&b, secs(5));
        assert!(is_rejected(&b, secs(5)));
        b.release(first);
        let third = permit(&b, secs(5));
        assert!(third.is_probe());
        assert!(is_rejected(&b, secs(5)));
        // An ignored outcome gives the slot back too.
        assert_eq!(
            b.record(
                third,
                Report {
                    verdict: Verdict::Ignored,
                    slow: false,
                },
                || secs(5)
            ),
            None
        );
        assert!(permit(&b, secs(5)).is_probe());
    }

    #[test]
    fn hung_probes_reopen_after_the_maximum_wait() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            call(&b, secs(0), fail());
        }
        let _hung = (permit(&b, secs(5)), permit(&b, secs(5)));
        assert!(is_rejected(&b, secs(34)));
        let (admit, notice) = b.admit(|| secs(35));
        assert_eq!(
            admit,
            Admit::Reject {
                state: State::Open,
                retry_after: Some(secs(5))
            }
        );
        assert!(matches!(
            notice,
            Some(Notice::Changed {
                reason: Reason::HalfOpenTimeout,
                ..
            })
        ));
    }

    #[test]
    fn open_time_grows_and_resets_on_close() {
        let b = Breaker::new(Settings {
            open: Backoff::exponential(secs(1)).max(secs(4)),
            probes: 1,
            consecutive_failures: Some(1),
            failure_rate: None,
            ..settings()
        });
        let mut at = secs(0);
        for expected in [1, 2, 4, 4] {
            call(&b, at, fail());
            assert_eq!(b.open_remaining(at), Some(secs(expected)));
            at += secs(expected);
        }
        // The probe succeeds: closed, and the next opening is back to the base.
        call(&b, at, ok());
        assert_eq!(b.state(), State::Closed);
        call(&b, at, fail());
        assert_eq!(b.open_remaining(at), Some(secs(1)));
    }

    #[test]
    fn jittered_open_times_stay_in_bounds_and_follow_the_seed() {
        let open_times = |seed: u64| {
            let b = Breaker::new(Settings {
                open: Backoff::exponential(secs(1))
                    .max(secs(4))
                    .jitter(weir_core::Jitter::Full),
                probes: 1,
                consecutive_failures: Some(1),
                failure_rate: None,
                seed: Some(seed),
                ..settings()
            });
            let mut at = secs(0);
            let mut seen = Vec::new();
            for cap in [1, 2, 4, 4, 4] {
                call(&b, at, fail());
                let open = b.open_remaining(at).expect("open");
                assert!(open <= secs(cap), "{open:?} over {cap} s");
                seen.push(open);
                at += open;
            }
            seen
        };
        let a = open_times(7);
        assert_eq!(a, open_times(7));
        assert_ne!(a, open_times(8));
        // Jitter: not every opening at the cap.
        assert!(a[2..].iter().any(|d| *d < secs(4)));
    }

    proptest::proptest! {
        /// The time window's memoised bucket number and slot are the ones worked out from
        /// scratch, for times in any order, at and around bucket boundaries too.
        #[test]
        fn the_memoised_bucket_is_the_computed_one(
            bucket_ms in 1_u64..5_000,
            buckets in 1_u32..=1_000,
            times in proptest::collection::vec(
                (0_u64..100_000_000_000, 0_u64..2_000, 0_u64..3, proptest::bool::ANY),
                1..64,
            ),
        ) {
            let w = TimeWindow::new(Duration::from_millis(bucket_ms) * buckets, buckets);
            for (raw, k, d, boundary) in times {
                // A boundary time: one nanosecond before, at or after the start of bucket `k`.
                let now = if boundary { (k * w.bucket_nanos + d).saturating_sub(1) } else { raw };
                let epoch = now / w.bucket_nanos + 1;
                let slot = usize::try_from(epoch % u64::from(buckets)).unwrap();
                proptest::prop_assert_eq!(w.epoch_and_slot(now), (epoch, slot));
            }
        }
    }

    #[test]
    fn slow_calls_trip_on_their_own_rate() {
        let b = Breaker::new(Settings {
            failure_rate: None,
            slow_rate: Some(ppm(75.0)),
            ..settings()
        });
        let slow = Report { slow: true, ..ok() };
        call(&b, secs(0), ok());
        for _ in 0..2 {
            assert_eq!(call(&b, secs(0), slow), None);
        }
        assert_eq!(
            call(&b, secs(0), slow),
            Some(Notice::Changed {
                from: State::Closed,
                to: State::Open,
                reason: Reason::SlowCallRate
            })
        );
    }

    #[test]
    fn consecutive_failures_reset_on_success() {
        let b = Breaker::new(Settings {
            failure_rate: None,
            consecutive_failures: Some(3),
            ..settings()
        });
        call(&b, secs(0), fail());
        call(&b, secs(0), fail());
        call(&b, secs(0), ok());
        call(&b, secs(0), fail());
        call(&b, secs(0), fail());
        assert_eq!(b.state(), State::Closed);
        assert!(call(&b, secs(0), fail()).is_some());
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let b = Breaker::new(Settings {
            window: WindowKind::Time {
                size: secs(10),
                buckets: 10,
            },
            ..settings()
        });
        for _ in 0..3 {
            call(&b, secs(0), fail());
        }
        for _ in 0..10 {
            call(&b, secs(5), ok());
        }
        assert_eq!(b.counts(secs(5)).total, 13);
        // At 10 s the bucket of 0 s has left the window.
        assert_eq!(
            b.counts(secs(10)),
            Counts {
                total: 10,
                failures: 0,
                slow: 0
            }
        );
        for _ in 0..9 {
            assert_eq!(call(&b, secs(12), fail()), None);
        }
        assert!(call(&b, secs(12), fail()).is_some());
    }

    #[test]
    fn manual_states() {
        let b = Breaker::new(settings());
        assert!(b.set(State::ForcedOpen, secs(0)).is_some());
        assert_eq!(
            b.admit(|| secs(0)).0,
            Admit::Reject {
                state: State::ForcedOpen,
                retry_after: None
            }
        );
        b.set(State::ForcedClosed, secs(0));
        for _ in 0..10 {
            assert_eq!(call(&b, secs(0), fail()), None);
        }
        assert_eq!(b.counts(secs(0)).failures, 10);
        b.set(State::MetricsOnly, secs(0));
        assert_eq!(
            call(&b, secs(0), fail()),
            Some(Notice::WouldOpen {
                reason: Reason::FailureRate
            })
        );
        assert_eq!(b.state(), State::MetricsOnly);
        b.set(State::Disabled, secs(0));
        let p = permit(&b, secs(0));
        assert_eq!(b.record(p, fail(), || secs(0)), None);
        assert_eq!(
            b.set(State::Closed, secs(0)),
            Some(Notice::Changed {
                from: State::Disabled,
                to: State::Closed,
                reason: Reason::Manual
            })
        );
        assert_eq!(b.counts(secs(0)), Counts::default());
        assert!(matches!(
            b.set(State::Open, secs(0)),
            Some(Notice::Changed {
                to: State::Open,
                reason: Reason::Manual,
                ..
            })
        ));
        assert_eq!(b.open_remaining(secs(1)), Some(secs(4)));
    }

    #[test]
    fn a_closed_permit_from_before_an_opening_is_ignored() {
        let b = Breaker::new(settings());
        let late = permit(&b, secs(0));
        for _ in 0..4 {
            call(&b, secs(0), fail());
        }
        assert_eq!(b.record(late, fail(), || secs(1)), None);
        assert_eq!(b.opened(), 1);
    }

    #[test]
    fn concurrent_callers_get_exactly_k_probes() {
        let b = Breaker::new(Settings {
            probes: 5,
            ..settings()
        });
        b.set(State::Open, secs(0));
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        if let Admit::Permit(p) = b.admit(|| secs(5)).0 {
                            assert!(p.is_probe());
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 5);
        assert_eq!(b.rejected(), 8 * 1000 - 5);
    }

    #[test]
    fn concurrent_recorders_keep_the_counters_equal_to_the_ring() {
        let b = Breaker::new(Settings {
            window: WindowKind::Count(64),
            failure_rate: None,
            ..settings()
        });
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let b = &b;
                scope.spawn(move || {
                    for i in 0..20_000u32 {
                        let report = if (i * 7 + t) % 5 == 0 { fail() } else { ok() };
                        let p = permit(b, secs(0));
                        b.record(p, report, || secs(0));
                    }
                });
            }
        });
        let Window::Count(w) = &b.window else {
            unreachable!()
        };
        let slots: Vec<u8> = w.slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        let expected = Counts {
            total: slots.iter().filter(|c| **c & PRESENT != 0).count() as u64,
            failures: slots.iter().filter(|c| **c & FAILED != 0).count() as u64,
            slow: 0,
        };
        assert_eq!(expected.total, 64);
        assert_eq!(b.counts(secs(0)), expected);
    }

    /// A model-based test: random calls, outcomes, durations, drops, time advances and manual
    /// changes go through the breaker and through a small sequential reference model; the
    /// decisions, notices, states and counts agree at every step.
    mod model {
        use std::collections::VecDeque;

        use proptest::prelude::*;

        use super::super::*;

        #[derive(Clone, Copy, Debug)]
        enum Op {
            Admit,
            Finish {
                which: usize,
                verdict: u8,
                slow: bool,
            },
            Drop {
                which: usize,
            },
            Advance {
                ms: u64,
            },
            Set {
                state: u8,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                16 => Just(Op::Admit),
                16 => (0..8usize, 0..4u8, any::<bool>())
                    .prop_map(|(which, verdict, slow)| Op::Finish { which, verdict, slow }),
                4 => (0..8usize).prop_map(|which| Op::Drop { which }),
                8 => (0..12_000u64).prop_map(|ms| Op::Advance { ms }),
                1 => (0..5u8).prop_map(|state| Op::Set { state }),
            ]
        }

        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Kind {
            Counted,
            Probe,
            Untracked,
        }

        /// The reference: plain fields, a `VecDeque` window, no atomics, no generations packed
        /// into words.
        struct Model {
            s: Settings,
            n: usize,
            state: State,
            generation: u64,
            window: VecDeque<(bool, bool)>,
            consecutive: u32,
            open_until: u64,
            half_open_until: u64,
            probe_generation: u64,
            probes_free: u32,
            successes: u32,
            openings: u32,
        }

        const BASE: u64 = 1_000_000_000;

        impl Model {
            fn counts(&self) -> Counts {
                Counts {
                    total: self.window.len() as u64,
                    failures: self.window.iter().filter(|(f, _)| *f).count() as u64,
                    slow: self.window.iter().filter(|(_, s)| *s).count() as u64,
                }
            }

            fn trip(&mut self, now: u64, reason: Reason) -> Notice {
                let d = (BASE << self.openings.min(20)).min(8 * BASE);
                self.openings += 1;
                self.open_until = now + d;
                let from = self.state;
                self.state = State::Open;
                self.generation += 1;
                Notice::Changed {
                    from,
                    to: State::Open,
                    reason,
                }
            }

            fn admit(
                &mut self,
                now: u64,
            ) -> (
                Result<(u64, Kind), (State, Option<Duration>)>,
                Option<Notice>,
            ) {
                let mut notice = None;
                for _ in 0..3 {
                    match self.state {
                        State::Closed | State::ForcedClosed | State::MetricsOnly => {
                            return (Ok((self.generation, Kind::Counted)), notice);
                        }
                        State::Disabled => return (Ok((self.generation, Kind::Untracked)), notice),
                        State::ForcedOpen => return (Err((State::ForcedOpen, None)), notice),
                        State::Open => {
                            if now < self.open_until {
                                let left = Duration::from_nanos(self.open_until - now);
                                return (Err((State::Open, Some(left))), notice);
                            }
                            self.generation += 1;
                            self.state = State::HalfOpen;
                            self.probe_generation = self.generation;
                            self.probes_free = self.s.probes;
                            self.successes = 0;
                            self.half_open_until = now + nanos(self.s.max_half_open);
                            notice = Some(Notice::Changed {
                                from: State::Open,
                                to: State::HalfOpen,
                                reason: Reason::OpenTimeElapsed,
                            });
                        }
                        State::HalfOpen => {
                            if self.probes_free > 0 {
                                self.probes_free -= 1;
                                return (Ok((self.generation, Kind::Probe)), notice);
                            }
                            if now < self.half_open_until {
                                return (Err((State::HalfOpen, None)), notice);
                            }
                            notice = Some(self.trip(now, Reason::HalfOpenTimeout));
                        }
                    }
                }
                (Err((self.state, None)), notice)
            }

            fn release(&mut self, generation: u64, kind: Kind) {
                if kind == Kind::Probe
                    && generation == self.probe_generation
                    && self.probes_free < self.s.probes
                {
                    self.probes_free += 1;
                }
            }

            fn clear(&mut self) {
                self.window.clear();
                self.consecutive = 0;
                self.openings = 0;
            }

            fn finish(
                &mut self,
                generation: u64,
                kind: Kind,
                r: Report,
                now: u64,
            ) -> Option<Notice> {
                match kind {
                    Kind::Untracked => None,
                    Kind::Counted => {
                        if r.verdict == Verdict::Ignored || generation != self.generation {
                            return None;
                        }
                        let failed = r.verdict == Verdict::Failure;
                        self.window.push_back((failed, r.slow));
                        if self.window.len() > self.n {
                            self.window.pop_front();
                        }
                        if failed {
                            self.consecutive += 1;
                        } else {
                            self.consecutive = 0;
                        }
                        if !failed && !r.slow {
                            return None;
                        }
                        let c = self.counts();
                        let minimum = u64::from(self.s.minimum_calls.min(self.n as u32).max(1));
                        let reached = |k: u64, ppm: Ppm| k * 1_000_000 >= ppm * c.total;
                        let reason = if self
                            .s
                            .consecutive_failures
                            .is_some_and(|n| self.consecutive >= n)
                        {
                            Reason::ConsecutiveFailures
                        } else if c.total >= minimum
                            && self.s.failure_rate.is_some_and(|p| reached(c.failures, p))
                        {
                            Reason::FailureRate
                        } else if c.total >= minimum
                            && self.s.slow_rate.is_some_and(|p| reached(c.slow, p))
                        {
                            Reason::SlowCallRate
                        } else {
                            return None;
                        };
                        match self.state {
                            State::Closed => Some(self.trip(now, reason)),
                            State::MetricsOnly => Some(Notice::WouldOpen { reason }),
                            _ => None,
                        }
                    }
                    Kind::Probe => {
                        if generation != self.generation {
                            return None;
                        }
                        if r.verdict == Verdict::Failure || (r.slow && self.s.slow_rate.is_some()) {
                            return Some(self.trip(now, Reason::ProbeFailed));
                        }
                        if r.verdict == Verdict::Ignored {
                            self.release(generation, kind);
                            return None;
                        }
                        self.successes += 1;
                        if self.successes >= self.s.probes {
                            self.clear();
                            self.state = State::Closed;
                            self.generation += 1;
                            return Some(Notice::Changed {
                                from: State::HalfOpen,
                                to: State::Closed,
                                reason: Reason::ProbesSucceeded,
                            });
                        }
                        None
                    }
                }
            }

            fn set(&mut self, to: State, now: u64) -> Option<Notice> {
                let from = self.state;
                if to == State::Closed {
                    self.clear();
                }
                if to == State::Open {
                    return Some(self.trip(now, Reason::Manual));
                }
                self.state = to;
                self.generation += 1;
                (from != to).then_some(Notice::Changed {
                    from,
                    to,
                    reason: Reason::Manual,
                })
            }
        }

        fn settings() -> impl Strategy<Value = Settings> {
            (
                1..8u32,
                1..10u32,
                prop::option::of(prop::sample::select(vec![25.0, 50.0, 100.0])),
                prop::option::of(1..4u32),
                prop::option::of(prop::sample::select(vec![50.0, 100.0])),
                1..4u32,
            )
                .prop_map(|(n, minimum_calls, rate, consecutive, slow, probes)| {
                    Settings {
                        window: WindowKind::Count(n),
                        failure_rate: rate.map(ppm),
                        slow_rate: slow.map(ppm),
                        consecutive_failures: consecutive,
                        minimum_calls,
                        open: Backoff::exponential(Duration::from_secs(1))
                            .max(Duration::from_secs(8)),
                        probes,
                        max_half_open: Duration::from_secs(10),
                        seed: Some(0),
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn the_breaker_agrees_with_the_model(
                s in settings(),
                ops in prop::collection::vec(op(), 1..200),
            ) {
                let breaker = Breaker::new(s);
                let WindowKind::Count(n) = s.window else { unreachable!() };
                let mut model = Model {
                    s, n: n as usize, state: State::Closed, generation: 0, window: VecDeque::new(),
                    consecutive: 0, open_until: 0, half_open_until: 0, probe_generation: u64::MAX,
                    probes_free: 0, successes: 0, openings: 0,
                };
                let mut now = 0u64;
                let mut pending: Vec<(Permit, (u64, Kind))> = Vec::new();
                let at = |t: u64| Duration::from_nanos(t);
                for op in ops {
                    match op {
                        Op::Admit => {
                            let (real, real_notice) = breaker.admit(|| at(now));
                            let (expected, notice) = model.admit(now);
                            prop_assert_eq!(real_notice, notice);
                            match (real, expected) {
                                (Admit::Permit(p), Ok(m)) => {
                                    let kind = match p.kind() {
                                        PermitKind::Counted => Kind::Counted,
                                        PermitKind::Probe => Kind::Probe,
                                        PermitKind::Untracked => Kind::Untracked,
                                    };
                                    prop_assert_eq!(kind, m.1);
                                    pending.push((p, m));
                                }
                                (Admit::Reject { state, retry_after }, Err(m)) => {
                                    prop_assert_eq!((state, retry_after), m);
                                }
                                (real, expected) => {
                                    prop_assert!(false, "{:?} vs {:?}", real, expected);
                                }
                            }
                        }
                        Op::Finish { which, verdict, slow } => {
                            if pending.is_empty() { continue; }
                            let (p, m) = pending.remove(which % pending.len());
                            let verdict = match verdict {
                                0 | 1 => Verdict::Failure,
                                2 => Verdict::Success,
                                _ => Verdict::Ignored,
                            };
                            let report = Report { verdict, slow: slow && s.slow_rate.is_some() };
                            // The closed path skips `record` when this holds: recording must
                            // then change nothing.
                            let steady = report.verdict == Verdict::Success
                                && !report.slow
                                && breaker.success_is_steady(p);
                            let before = (breaker.state(), breaker.counts(at(now)), breaker.consecutive_failures());
                            let real = breaker.record(p, report, || at(now));
                            let expected = model.finish(m.0, m.1, report, now);
                            prop_assert_eq!(real, expected);
                            if steady {
                                prop_assert_eq!(real, None);
                                prop_assert_eq!((breaker.state(), breaker.counts(at(now)), breaker.consecutive_failures()), before);
                            }
                        }
                        Op::Drop { which } => {
                            if pending.is_empty() { continue; }
                            let (p, m) = pending.remove(which % pending.len());
                            breaker.release(p);
                            model.release(m.0, m.1);
                        }
                        Op::Advance { ms } => now += ms * 1_000_000,
                        Op::Set { state } => {
                            let to = [State::Closed, State::Open, State::ForcedOpen, State::ForcedClosed, State::MetricsOnly][usize::from(state)];
                            prop_assert_eq!(breaker.set(to, at(now)), model.set(to, now));
                        }
                    }
                    prop_assert_eq!(breaker.state(), model.state);
                    prop_assert_eq!(breaker.counts(at(now)), model.counts());
                    prop_assert_eq!(breaker.consecutive_failures(), model.consecutive);
                    if model.state == State::Open {
                        prop_assert_eq!(breaker.open_remaining(at(now)), Some(at(model.open_until.saturating_sub(now))));
                    }
                }
            }
        }
    }
}
