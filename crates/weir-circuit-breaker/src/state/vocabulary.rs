//! The breaker's vocabulary: its states and reasons, the settings the algorithm runs on, what a
//! call reports, the permit a call holds, and the layout of the state word.

use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

use weir_core::backoff::Backoff;

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
    pub(super) const fn tag(self) -> u64 {
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

    pub(super) const fn of(word: u64) -> Self {
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
pub(super) const fn is_counted(word: u64) -> bool {
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
    pub(super) fn minimum(&self) -> u64 {
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
/// 8, the window slot in bits 17 to 19), its [`PermitKind`] in bits 8 to 15, and bit 16 always set (never zero, so an
/// `Option<Permit>` is one word too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Permit(NonZeroU64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum PermitKind {
    /// Closed, forced closed, metrics-only: counted in the window.
    Counted = 0,
    /// A half-open probe: holds one of the K slots.
    Probe = 1,
    /// Disabled: nothing is counted.
    Untracked = 2,
}

/// The bits of a state word (and of a [`Permit`]) that say which of the breaker's window slots
/// is in force (bits 17 to 19: slot 0 is the window the breaker was built with, 1 to 7 the
/// windows later settings brought; see `Breaker::reconfigure`).
pub(super) const WINDOW_BITS: u64 = 0b111 << WINDOW_SHIFT;
/// The shift of [`WINDOW_BITS`].
pub(super) const WINDOW_SHIFT: u32 = 17;
/// Window slots per breaker: the one it was built with and 7 more.
pub(super) const WINDOW_SLOTS: usize = 8;
/// The bits of a [`Permit`] that hold the state word.
pub(super) const PERMIT_WORD: u64 = 0xffff_ffff_0000_00ff | WINDOW_BITS;
/// The bit always set in a [`Permit`].
pub(super) const PERMIT_MARK: u64 = 1 << 16;

impl Permit {
    /// A counted permit admitted under `word` (whose bits 8 to 16 are clear, as in every state
    /// word): the word and the mark, so that [`Breaker::success_is_steady`] compares it with
    /// the current word in one go.
    #[inline]
    pub(super) const fn counted(word: u64) -> Self {
        match NonZeroU64::new(word | PERMIT_MARK) {
            Some(bits) => Self(bits),
            None => Self(NonZeroU64::MIN),
        }
    }

    #[inline]
    pub(super) const fn new(word: u64, kind: PermitKind) -> Self {
        let bits = (word & PERMIT_WORD) | ((kind as u64) << 8) | PERMIT_MARK;
        match NonZeroU64::new(bits) {
            Some(bits) => Self(bits),
            None => Self(NonZeroU64::MIN),
        }
    }

    /// Whether this counted permit is of `word`'s period and `word` names window slot 0 (the
    /// breaker's own window field): `word` with the mark against the permit without its slot
    /// bits, one OR, one AND and one compare (the permit's kind bits, 0 for a counted permit,
    /// and the state word's bits 8 to 16, always clear, compare equal).
    #[inline]
    pub(super) const fn counted_in_slot_zero(self, word: u64) -> bool {
        word | PERMIT_MARK == self.0.get() & !WINDOW_BITS
    }

    /// The state word the call was admitted under.
    #[inline]
    pub(super) const fn word(self) -> u64 {
        self.0.get() & PERMIT_WORD
    }

    #[inline]
    pub(super) const fn kind(self) -> PermitKind {
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

pub(super) const fn generation(word: u64) -> u64 {
    word >> 32
}

/// The next period's word: the generation bumped, the state `to`, the window slot kept.
pub(super) const fn next_word(word: u64, to: State) -> u64 {
    ((generation(word).wrapping_add(1) & 0xffff_ffff) << 32) | (word & WINDOW_BITS) | to.tag()
}

/// The period of a word: its generation and state, without the window slot (a change of window
/// by new settings starts no new period: the calls in flight are recorded into the new window).
pub(super) const fn period(word: u64) -> u64 {
    word & !WINDOW_BITS
}

/// Whether two words are of one period (one XOR and one test).
#[inline]
pub(super) const fn same_period(a: u64, b: u64) -> bool {
    (a ^ b) & !WINDOW_BITS == 0
}

/// The window slot of a word.
pub(super) const fn window_slot(word: u64) -> usize {
    ((word & WINDOW_BITS) >> WINDOW_SHIFT) as usize
}

/// The pattern name every circuit breaker [`ConfigError`](weir_core::ConfigError) carries.
pub(crate) const PATTERN: &str = "circuit breaker";
