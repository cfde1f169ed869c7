//! The state machine: admission, recording, transitions and manual control over one breaker's
//! atomics (see the [module docs](super)).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use weir_core::{ConfigError, backoff::FastRandom};

use crate::sync::{AtomicU32, AtomicU64, Mutex};

use super::vocabulary::*;
use super::window::*;

/// What only transitions touch, under the lock.
#[derive(Debug)]
pub(super) struct Control {
    /// Openings since the circuit was last closed: the open time's growth step.
    pub(super) openings: u32,
    /// The previous open time (for decorrelated jitter).
    pub(super) previous: Duration,
    pub(super) rng: FastRandom,
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One circuit breaker's state, shared by every clone of the service (and, keyed, one per key).
#[derive(Debug)]
pub(crate) struct Breaker {
    /// The settings in force (read off the closed path only: when a threshold is judged, a
    /// circuit opens or goes half-open, a probe reports), swapped whole by
    /// [`reconfigure`](Self::reconfigure).
    pub(super) settings: ArcSwap<Settings>,
    pub(super) word: AtomicU64,
    /// Nanoseconds since the origin at which an open circuit lets a probe through.
    pub(super) open_until: AtomicU64,
    /// Nanoseconds since the origin at which a half-open circuit with no free slot re-opens.
    pub(super) half_open_until: AtomicU64,
    /// Generation (high 32 bits) and free probe slots (low 32 bits).
    pub(super) probes: AtomicU64,
    /// Generation (high 32 bits) and successful probes (low 32 bits).
    pub(super) successes: AtomicU64,
    pub(super) consecutive: AtomicU32,
    pub(super) rejected: AtomicU64,
    pub(super) opened: AtomicU64,
    /// The probes of the current half-open period (the settings' count when it began).
    pub(super) period_probes: AtomicU32,
    /// Window slot 0: the window the breaker was built with.
    pub(super) window: Window,
    /// Window slots 1 to 7, made when new settings bring a window of another shape; the state
    /// word says which slot is in force. Kept until the breaker is dropped (a call that read
    /// the word just before a change may still record into the slot it read): at most
    /// [`WINDOW_SLOTS`] shapes over a breaker's life, a slot of the same shape is reused.
    pub(super) windows: OnceLock<Box<[OnceLock<Window>; WINDOW_SLOTS - 1]>>,
    pub(super) control: Mutex<Control>,
}

impl Breaker {
    pub(crate) fn new(settings: Settings) -> Self {
        let window = Window::new(settings.window);
        let rng = settings
            .seed
            .map_or_else(FastRandom::new, FastRandom::seeded);
        Self {
            settings: ArcSwap::from_pointee(settings),
            word: AtomicU64::new(State::Closed.tag()),
            open_until: AtomicU64::new(0),
            half_open_until: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            period_probes: AtomicU32::new(settings.probes),
            window,
            windows: OnceLock::new(),
            control: Mutex::new(Control {
                openings: 0,
                previous: Duration::ZERO,
                rng,
            }),
        }
    }

    /// The settings in force.
    pub(crate) fn settings(&self) -> Settings {
        **self.settings.load()
    }

    /// The window of `word`'s slot.
    #[inline]
    pub(super) fn window_of(&self, word: u64) -> &Window {
        // One test: slot 0 (no window brought by new settings) is the breaker's own field.
        if word & WINDOW_BITS == 0 {
            &self.window
        } else {
            self.other_window(window_slot(word))
        }
    }

    /// A window slot other than 0 (always made before a word names it).
    #[cold]
    #[inline(never)]
    fn other_window(&self, slot: usize) -> &Window {
        self.windows
            .get()
            .and_then(|windows| windows.get(slot - 1))
            .and_then(OnceLock::get)
            .unwrap_or(&self.window)
    }

    /// The window in force.
    pub(super) fn current_window(&self) -> &Window {
        self.window_of(self.word.load(Ordering::Acquire))
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
        match self.current_window() {
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
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
    pub(super) fn admit_slow(&self, now: impl Fn() -> Duration) -> (Admit, Option<Notice>) {
        let mut notice = None;
        // Each pass either answers or follows a transition; three transitions in a row (open ->
        // half-open, then another thread's half-open -> open -> ...) are not worth chasing. A
        // call makes at most one transition itself: it returns one notice, and a second
        // transition's would replace the first's, which no observer would then hear of (found by
        // the model in `model.rs`).
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
                    if notice.is_some() {
                        break;
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
                    if notice.is_some() {
                        break;
                    }
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
    /// the shared state it already holds (an ordering barrier for every later load) on the
    /// closed path (the cost is in benches/README.md, circuit breaker).
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

    pub(super) fn reject(&self, state: State, retry_after: Option<Duration>) -> Admit {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Admit::Reject { state, retry_after }
    }

    pub(super) fn take_probe(&self, word: u64) -> Option<Permit> {
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
        let cap = u64::from(self.period_probes.load(Ordering::Acquire));
        while probes >> 32 == generation && probes & 0xffff_ffff < cap {
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
    /// circuit opens. Always inlined: a dispatch on the permit's kind, whose counted branch is
    /// every call's (the probe's branch stays out of line).
    #[inline(always)]
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
        // Slot 0's window first (a field: a time window answers before the word is loaded);
        // a window brought by new settings (slot 1 to 7) is left to `record`: `false` is
        // always a right answer, only a slower one.
        let Window::Count(window) = &self.window else {
            return false;
        };
        let word = self.word.load(Ordering::Acquire);
        // A counted permit of the current period under a word that names slot 0 (the window
        // just read): the permit's own slot bits do not matter, `record` records into the
        // window in force. `&`, not `&&`: loads only, one branch.
        permit.counted_in_slot_zero(word)
            & window.full_of_successes()
            & (self.consecutive.load(Ordering::Relaxed) == 0)
    }

    #[inline(always)]
    pub(super) fn record_counted(
        &self,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        if report.verdict == Verdict::Ignored {
            return None;
        }
        // The period the call was admitted in (a window changed since by new settings is the
        // same period: the outcome goes into the window in force). One test when the word
        // names slot 0, the breaker's own window, whose address the fast path then computes
        // from the breaker's (as before #25); any other slot, or another period, out of line.
        let word = self.word.load(Ordering::Acquire);
        if permit.counted_in_slot_zero(word) {
            self.record_into(&self.window, permit, report, now)
        } else {
            self.record_elsewhere(word, permit, report, now)
        }
    }

    /// [`record_counted`](Self::record_counted) when `word` does not name slot 0 with
    /// `permit`'s period: nothing when the period is over, else the outcome into the window
    /// in force.
    #[cold]
    #[inline(never)]
    fn record_elsewhere(
        &self,
        word: u64,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        if !same_period(word, permit.word()) {
            return None;
        }
        self.record_into(self.window_of(word), permit, report, now)
    }

    /// Records a counted call's outcome (not ignored, of the current period) into `window`,
    /// the window in force.
    #[inline(always)]
    fn record_into(
        &self,
        window: &Window,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        let failed = report.verdict == Verdict::Failure;
        let code = code(failed, report.slow);
        let mut time = None;
        match window {
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
    pub(super) fn judge(
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
    pub(super) fn crossed(&self, consecutive: u32, now: u64) -> Option<Reason> {
        let s = &**self.settings.load();
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

    #[inline(never)]
    pub(super) fn record_probe(
        &self,
        permit: Permit,
        report: Report,
        now: impl Fn() -> Duration,
    ) -> Option<Notice> {
        if period(self.word.load(Ordering::Acquire)) != period(permit.word()) {
            return None;
        }
        if report.verdict == Verdict::Failure
            || (report.slow && self.settings.load().slow_rate.is_some())
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
        if (successes & 0xffff_ffff) + 1 >= u64::from(self.period_probes.load(Ordering::Acquire)) {
            self.transition(permit.word(), State::Closed, Reason::ProbesSucceeded)
        } else {
            None
        }
    }

    /// Opens the circuit if it is still in `expected`, for the configured open time (never a
    /// server's `Retry-After`: that speaks of one caller's request, not of every caller's).
    pub(super) fn trip(&self, expected: u64, now: u64, reason: Reason) -> Option<Notice> {
        let mut control = self.lock();
        let word = self.word.load(Ordering::Acquire);
        if period(word) != period(expected) {
            return None;
        }
        let duration = {
            let c = &mut *control;
            self.settings
                .load()
                .open
                .delay(c.openings, c.previous, &mut c.rng)
        };
        control.previous = duration;
        control.openings = control.openings.saturating_add(1);
        self.open_until
            .store(now.saturating_add(nanos(duration)), Ordering::Release);
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.word
            .store(next_word(word, State::Open), Ordering::Release);
        Some(Notice::Changed {
            from: State::of(expected),
            to: State::Open,
            reason,
        })
    }

    pub(super) fn to_half_open(&self, expected: u64, now: u64) -> Option<Notice> {
        let _control = self.lock();
        let current = self.word.load(Ordering::Acquire);
        if period(current) != period(expected) {
            return None;
        }
        let word = next_word(current, State::HalfOpen);
        let generation = generation(word) << 32;
        // The period's probe count and wait are the settings' now: new settings applied during
        // the period change neither (no more probes than either setting allows).
        let settings = self.settings.load();
        self.period_probes.store(settings.probes, Ordering::Release);
        self.probes
            .store(generation | u64::from(settings.probes), Ordering::Release);
        self.successes.store(generation, Ordering::Release);
        self.half_open_until.store(
            now.saturating_add(nanos(settings.max_half_open)),
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
    pub(super) fn transition(&self, expected: u64, to: State, reason: Reason) -> Option<Notice> {
        let mut control = self.lock();
        let word = self.word.load(Ordering::Acquire);
        if period(word) != period(expected) {
            return None;
        }
        if to == State::Closed {
            self.clear(&mut control);
        }
        self.word.store(next_word(word, to), Ordering::Release);
        Some(Notice::Changed {
            from: State::of(expected),
            to,
            reason,
        })
    }

    pub(super) fn clear(&self, control: &mut Control) {
        match self.current_window() {
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

impl Breaker {
    /// Whether [`reconfigure`](Self::reconfigure) would take `settings`: a window of a shape
    /// this breaker holds already, or a free slot for a new one.
    pub(crate) fn can_take(&self, settings: &Settings) -> bool {
        let _control = self.lock();
        self.slot_for(settings.window).is_some()
    }

    /// The slot whose window takes `kind`: the one in force if it has that shape, another of
    /// that shape, or a slot never used; `None` when all [`WINDOW_SLOTS`] hold other shapes.
    /// Called under the lock.
    fn slot_for(&self, kind: WindowKind) -> Option<usize> {
        let current = window_slot(self.word.load(Ordering::Acquire));
        if self.window_of_slot(current).is_some_and(|w| w.fits(kind)) {
            return Some(current);
        }
        let mut free = None;
        for slot in 0..WINDOW_SLOTS {
            match self.window_of_slot(slot) {
                Some(window) if window.fits(kind) => return Some(slot),
                None if free.is_none() => free = Some(slot),
                _ => {}
            }
        }
        free
    }

    /// The window of `slot`, if made.
    fn window_of_slot(&self, slot: usize) -> Option<&Window> {
        match slot {
            0 => Some(&self.window),
            slot => self
                .windows
                .get()
                .and_then(|windows| windows.get(slot - 1))
                .and_then(OnceLock::get),
        }
    }

    /// Applies new (validated) settings at once: the thresholds, the minimum, the open time,
    /// the probes and the half-open wait from the next judgement, opening or half-open period
    /// (the period running keeps its end and its probe count); a window of another shape is
    /// put in force, a count window carrying the newest outcomes over (as many as both hold),
    /// a time window (or a change of kind) starting empty. The state, its period and the
    /// growth of the open time are kept; calls in flight are recorded into the window in
    /// force when they finish.
    ///
    /// # Errors
    ///
    /// The window field (`count_window` or `time_window`) when the breaker already holds
    /// [`WINDOW_SLOTS`] windows of other shapes; nothing changes then.
    pub(crate) fn reconfigure(&self, settings: Settings) -> Result<(), ConfigError> {
        let _control = self.lock();
        let word = self.word.load(Ordering::Acquire);
        let current = window_slot(word);
        let Some(slot) = self.slot_for(settings.window) else {
            return Err(too_many_shapes(settings.window));
        };
        if slot != current {
            let old = self.window_of(word);
            let new = match self.window_of_slot(slot) {
                Some(window) => {
                    window.reset();
                    window
                }
                None => {
                    let windows = self
                        .windows
                        .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
                    windows[slot - 1].get_or_init(|| Window::new(settings.window))
                }
            };
            if let (Window::Count(old), Window::Count(new)) = (old, new) {
                new.carry(old);
            }
        }
        // The settings first, then the word that names the window: a recorder that sees the
        // new window judges it by the new settings.
        self.settings.store(Arc::new(settings));
        if slot != current {
            let slot = u64::try_from(slot).unwrap_or(0);
            self.word.store(
                (word & !WINDOW_BITS) | (slot << WINDOW_SHIFT),
                Ordering::Release,
            );
        }
        Ok(())
    }
}

/// The error of a window shape a breaker has no slot left for.
fn too_many_shapes(kind: WindowKind) -> ConfigError {
    let field = match kind {
        WindowKind::Count(_) => "count_window",
        WindowKind::Time { .. } => "time_window",
    };
    ConfigError::out_of_range(
        super::PATTERN,
        field,
        format!(
            "a running breaker holds at most {WINDOW_SLOTS} window shapes and has no slot left \
             for {kind:?}: rebuild the layer to change it"
        ),
    )
}

impl Breaker {
    /// The error [`reconfigure`](Self::reconfigure) gives for settings a breaker cannot take.
    pub(crate) fn reconfigure_refused(&self, settings: Settings) -> Result<(), ConfigError> {
        Err(too_many_shapes(settings.window))
    }
}
