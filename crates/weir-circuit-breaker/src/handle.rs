//! Handles: read a breaker's state and counts at any time, and control it by hand.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_core::inspect::Transition;
use weir_core::{ConfigError, Name, Observer};

use crate::event::Event;
use crate::settings::CircuitBreakerSettings;
use crate::shared::{DynKey, KeyedBreaker, KeyedState, KeyedTotals, Shared};
use crate::state::{Breaker, Notice, State};

/// What a handle needs of a layer's shared state, with the classifier and observer types erased.
trait Control: Send + Sync {
    fn name(&self) -> &Name;
    fn breaker(&self) -> &Breaker;
    fn now(&self) -> Duration;
    fn notify(&self, notice: Option<Notice>, key: Option<&DynKey>);
    fn settings(&self) -> CircuitBreakerSettings;
    fn apply(&self, settings: CircuitBreakerSettings) -> Result<(), ConfigError>;
    fn recent(&self) -> Vec<Transition>;
    fn totals(&self) -> &KeyedTotals;
}

impl<C, O> Control for Shared<C, O>
where
    C: Send + Sync,
    O: for<'a> Observer<Event<'a>> + Send + Sync,
{
    fn name(&self) -> &Name {
        &self.name
    }

    fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    fn now(&self) -> Duration {
        Self::now(self)
    }

    fn notify(&self, notice: Option<Notice>, key: Option<&DynKey>) {
        Self::notify(self, notice, key);
    }

    fn settings(&self) -> CircuitBreakerSettings {
        self.plain()
    }

    fn apply(&self, settings: CircuitBreakerSettings) -> Result<(), ConfigError> {
        Self::apply(self, settings, None)
    }

    fn recent(&self) -> Vec<Transition> {
        self.recent.to_vec()
    }

    fn totals(&self) -> &KeyedTotals {
        &self.keyed
    }
}

/// A breaker's state and counts at one instant, from a handle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    state: State,
    calls: u64,
    failures: u64,
    slow_calls: u64,
    minimum_calls: u64,
    consecutive_failures: u32,
    rejected: u64,
    opened: u64,
    open_remaining: Option<Duration>,
}

impl Snapshot {
    fn of(breaker: &Breaker, now: Duration) -> Self {
        let counts = breaker.counts(now);
        let settings = breaker.settings();
        Self {
            state: breaker.state(),
            calls: counts.total,
            failures: counts.failures,
            slow_calls: counts.slow,
            minimum_calls: u64::from(settings.minimum_calls.max(1)).min(counts_cap(breaker)),
            consecutive_failures: breaker.consecutive_failures(),
            rejected: breaker.rejected(),
            opened: breaker.opened(),
            open_remaining: breaker.open_remaining(now),
        }
    }

    /// The state. An open circuit whose open time is over reads `Open` until the next call
    /// moves it to half-open.
    #[must_use]
    pub const fn state(&self) -> State {
        self.state
    }

    /// Calls in the window (successes, failures and slow calls; ignored outcomes are not
    /// counted). The window is cleared when the circuit closes.
    #[must_use]
    pub const fn calls(&self) -> u64 {
        self.calls
    }

    /// Failed calls in the window.
    #[must_use]
    pub const fn failures(&self) -> u64 {
        self.failures
    }

    /// Slow calls in the window.
    #[must_use]
    pub const fn slow_calls(&self) -> u64 {
        self.slow_calls
    }

    /// Failures in a row.
    #[must_use]
    pub const fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Calls rejected since the layer was built (not counting the waits of backpressure mode).
    #[must_use]
    pub const fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Times the circuit opened since the layer was built.
    #[must_use]
    pub const fn opened(&self) -> u64 {
        self.opened
    }

    /// The remaining open time, when open.
    #[must_use]
    pub const fn open_remaining(&self) -> Option<Duration> {
        self.open_remaining
    }

    /// The failure rate over the window, in percent; `None` below the minimum number of calls.
    #[must_use]
    pub fn failure_rate(&self) -> Option<f64> {
        self.rate(self.failures)
    }

    /// The slow-call rate over the window, in percent; `None` below the minimum number of
    /// calls.
    #[must_use]
    pub fn slow_call_rate(&self) -> Option<f64> {
        self.rate(self.slow_calls)
    }

    fn rate(&self, n: u64) -> Option<f64> {
        (self.calls >= self.minimum_calls && self.calls > 0)
            .then(|| n as f64 * 100.0 / self.calls as f64)
    }
}

/// The most calls the window can count (a count window's size), for the minimum.
fn counts_cap(breaker: &Breaker) -> u64 {
    match breaker.settings().window {
        crate::state::WindowKind::Count(n) => u64::from(n),
        crate::state::WindowKind::Time { .. } => u64::MAX,
    }
}

/// Reads and controls one breaker: from
/// [`CircuitBreakerBuilder::build_with_handle`](crate::CircuitBreakerBuilder::build_with_handle).
///
/// The handle sees the breaker every service and clone of the layer shares. Every change it makes
/// is reported to the layer's observer as a state change with [`Reason::Manual`](crate::Reason).
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    control: Arc<dyn Control>,
}

impl CircuitBreakerHandle {
    pub(crate) fn new<C, O>(shared: Arc<Shared<C, O>>) -> Self
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        Self { control: shared }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.control.breaker().state()
    }

    /// The state and counts now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(self.control.breaker(), self.control.now())
    }

    /// The failure rate over the window, in percent; `None` below the minimum number of calls.
    #[must_use]
    pub fn failure_rate(&self) -> Option<f64> {
        self.snapshot().failure_rate()
    }

    fn set(&self, state: State) {
        let notice = self.control.breaker().set(state, self.control.now());
        self.control.notify(notice, None);
    }

    /// Opens the circuit for the configured open time, as a trip would (then half-open as
    /// usual).
    pub fn open(&self) {
        self.set(State::Open);
    }

    /// Rejects every call until [`reset`](Self::reset) (or another manual state).
    pub fn force_open(&self) {
        self.set(State::ForcedOpen);
    }

    /// Lets every call through, still counting outcomes, never opening.
    pub fn force_closed(&self) {
        self.set(State::ForcedClosed);
    }

    /// Lets every call through and counts nothing.
    pub fn disable(&self) {
        self.set(State::Disabled);
    }

    /// Lets every call through and counts outcomes; a crossed threshold emits
    /// [`Event::ThresholdExceeded`] instead of opening.
    pub fn metrics_only(&self) {
        self.set(State::MetricsOnly);
    }

    /// Closed, with an empty window and the open time back to its base: the normal mode.
    pub fn reset(&self) {
        self.set(State::Closed);
    }
}

/// What the status page and the registry read (see `inspect.rs`).
impl CircuitBreakerHandle {
    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &Name {
        self.control.name()
    }

    /// The last transitions, oldest first (at most 16).
    #[must_use]
    pub fn recent(&self) -> Vec<Transition> {
        self.control.recent()
    }
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("layer", self.control.name())
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// What a keyed handle needs, with the extractor, classifier and observer types erased.
trait KeyedControl: Send + Sync {
    fn shared(&self) -> &dyn Control;
    fn visit(&self, f: &mut dyn FnMut(&KeyedBreaker));
    fn len(&self) -> usize;
    fn sweep(&self) -> usize;
    fn apply(&self, settings: CircuitBreakerSettings) -> Result<(), ConfigError>;
}

impl<E, C, O> KeyedControl for KeyedState<E, C, O>
where
    E: Send + Sync,
    C: Send + Sync,
    O: for<'a> Observer<Event<'a>> + Send + Sync,
{
    fn shared(&self) -> &dyn Control {
        &*self.shared
    }

    fn visit(&self, f: &mut dyn FnMut(&KeyedBreaker)) {
        Self::visit(self, f);
    }

    fn len(&self) -> usize {
        Self::len(self)
    }

    fn sweep(&self) -> usize {
        Self::sweep(self)
    }

    fn apply(&self, settings: CircuitBreakerSettings) -> Result<(), ConfigError> {
        Self::apply(self, settings)
    }
}

/// Reads and controls the breakers of a keyed layer: from
/// [`KeyedCircuitBreakerBuilder::build_with_handle`](crate::KeyedCircuitBreakerBuilder::build_with_handle).
#[derive(Clone)]
pub struct KeyedCircuitBreakerHandle {
    control: Arc<dyn KeyedControl>,
}

impl KeyedCircuitBreakerHandle {
    pub(crate) fn new<E, C, O>(state: Arc<KeyedState<E, C, O>>) -> Self
    where
        E: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        Self { control: state }
    }

    /// How many keys have a breaker now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.control.len()
    }

    /// No key has a breaker.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visits every key's breaker: its key (as `Debug`) and its snapshot.
    pub fn for_each(&self, mut f: impl FnMut(&(dyn fmt::Debug + Send + Sync), Snapshot)) {
        let now = self.control.shared().now();
        self.control
            .visit(&mut |keyed| f(&*keyed.key, Snapshot::of(&keyed.breaker, now)));
    }

    /// The snapshot of the first key whose `Debug` text is `key` (a lookup for tests and admin
    /// pages: it formats every key).
    #[must_use]
    pub fn snapshot_of(&self, key: &str) -> Option<Snapshot> {
        let mut found = None;
        self.for_each(|k, snapshot| {
            if found.is_none() && format!("{k:?}").trim_matches('"') == key {
                found = Some(snapshot);
            }
        });
        found
    }

    /// Forgets now every key idle for longer than the idle timeout whose breaker is closed (the
    /// layer also does it by itself, during requests); returns how many were forgotten.
    #[allow(
        clippy::must_use_candidate,
        reason = "called for its effect; the count is a convenience"
    )]
    pub fn evict_idle(&self) -> usize {
        self.control.sweep()
    }

    /// Resets every key's breaker (closed, empty window).
    pub fn reset_all(&self) {
        let shared = self.control.shared();
        let now = shared.now();
        self.control.visit(&mut |keyed| {
            let notice = keyed.breaker.set(State::Closed, now);
            shared.notify(notice, Some(&*keyed.key));
        });
    }

    /// The breaker that requests without a key share (with [`weir_core::key::MissingKey::Shared`]).
    #[must_use]
    pub fn keyless(&self) -> Snapshot {
        let shared = self.control.shared();
        Snapshot::of(shared.breaker(), shared.now())
    }
}

/// What the status page and the registry read, and the one-key reset (see `inspect.rs`).
impl KeyedCircuitBreakerHandle {
    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &Name {
        self.control.shared().name()
    }

    /// The last transitions of any key's breaker, oldest first (at most 16).
    #[must_use]
    pub fn recent(&self) -> Vec<Transition> {
        self.control.shared().recent()
    }

    /// Rejections and openings over every key, the key-less breaker included, since the
    /// layer was built: `(rejected, opened)`.
    #[must_use]
    pub fn totals(&self) -> (u64, u64) {
        let shared = self.control.shared();
        let totals = shared.totals();
        let keyless = shared.breaker();
        (
            totals.rejected.load(Ordering::Relaxed) + keyless.rejected(),
            totals.opened.load(Ordering::Relaxed) + keyless.opened(),
        )
    }

    /// Resets the breaker of the key whose `Debug` text (without quotes) is `key`, as
    /// [`snapshot_of`](Self::snapshot_of) finds it: closed, empty window. Returns whether a
    /// key matched.
    #[allow(
        clippy::must_use_candidate,
        reason = "called for its effect; the answer is a convenience"
    )]
    pub fn reset_key(&self, key: &str) -> bool {
        let shared = self.control.shared();
        let now = shared.now();
        let mut found = false;
        self.control.visit(&mut |keyed| {
            if !found && format!("{:?}", keyed.key).trim_matches('"') == key {
                found = true;
                let notice = keyed.breaker.set(State::Closed, now);
                shared.notify(notice, Some(&*keyed.key));
            }
        });
        found
    }
}

impl fmt::Debug for KeyedCircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerHandle")
            .field("layer", self.control.shared().name())
            .field("keys", &self.len())
            .finish()
    }
}

// What `Reconfigure` (in `reconfigure`, above the builder) reaches of the handles: the plain
// settings, not the builder, so this module imports nothing above it.
impl CircuitBreakerHandle {
    pub(crate) fn current_settings(&self) -> CircuitBreakerSettings {
        self.control.settings()
    }

    pub(crate) fn apply_settings(
        &self,
        settings: CircuitBreakerSettings,
    ) -> Result<(), ConfigError> {
        self.control.apply(settings)
    }
}

impl KeyedCircuitBreakerHandle {
    pub(crate) fn current_settings(&self) -> CircuitBreakerSettings {
        self.control.shared().settings()
    }

    pub(crate) fn apply_settings(
        &self,
        settings: CircuitBreakerSettings,
    ) -> Result<(), ConfigError> {
        self.control.apply(settings)
    }
}
