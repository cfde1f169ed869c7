//! The state every service, clone, response future and handle of one layer shares: the breaker
//! (or, keyed, the map of breakers), the classifier and observer, the lanes a response future
//! reaches them by, and the guard a call holds its permit in.

use std::any::Any;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;
use weir_core::inspect::Recent;
use weir_core::observer::TraceId;
use weir_core::{
    Classify, ConfigError, Error, KeyExtractor, Name, Observer, Outcome, key::MissingKey,
    key::Resolved, keyed::KeyedConfig, keyed::KeyedMap,
};

use crate::event::Event;
use crate::settings::CircuitBreakerSettings;
use crate::state::{Breaker, Notice, Permit, Reason, Report, Settings, State, Verdict};

/// What every service, clone, future and handle of one layer shares.
pub(crate) struct Shared<C, O> {
    pub(crate) name: Name,
    pub(crate) breaker: Breaker,
    pub(crate) classifier: C,
    pub(crate) observer: O,
    pub(crate) origin: Instant,
    /// The slow-call threshold in nanoseconds, 0 without one: one word, read when a call
    /// starts (and, timed, when it ends), changed by new settings.
    pub(crate) slow_threshold: AtomicU64,
    pub(crate) backpressure: AtomicBool,
    /// The plain settings in force (what a handle's `settings()` reads); held while new
    /// settings are applied, so that applications do not interleave.
    pub(crate) plain: Mutex<CircuitBreakerSettings>,
    /// The last transitions (of any key's breaker, for a keyed layer), for a status page;
    /// written only on a transition.
    pub(crate) recent: Recent,
    /// A keyed layer's totals over every key (a key's own counts go when it is forgotten):
    /// written on a rejection and on a transition to open, never on an admitted call.
    pub(crate) keyed: KeyedTotals,
}

/// A keyed layer's totals over every key, since the layer was built.
#[derive(Debug, Default)]
pub(crate) struct KeyedTotals {
    pub(crate) rejected: AtomicU64,
    pub(crate) opened: AtomicU64,
}

/// The key of a keyed breaker, for events.
pub(crate) type DynKey = dyn fmt::Debug + Send + Sync;

/// One keyed breaker: its state and its key (stored once, when the key is first seen).
pub(crate) struct KeyedBreaker {
    pub(crate) breaker: Breaker,
    pub(crate) key: Box<DynKey>,
}

impl fmt::Debug for KeyedBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreaker")
            .field("key", &self.key)
            .field("state", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl<C, O> Shared<C, O> {
    /// The shared state of a breaker with these settings, or the first rule they break.
    pub(crate) fn from_settings(
        settings: CircuitBreakerSettings,
        classifier: C,
        observer: O,
    ) -> Result<Arc<Self>, ConfigError> {
        let algorithm = settings.validate()?;
        Ok(Arc::new(Self {
            name: settings.name.clone(),
            breaker: Breaker::new(algorithm),
            classifier,
            observer,
            origin: Instant::now(),
            slow_threshold: AtomicU64::new(threshold_nanos(&settings)),
            backpressure: AtomicBool::new(settings.backpressure),
            plain: Mutex::new(settings),
            recent: Recent::default(),
            keyed: KeyedTotals::default(),
        }))
    }

    /// Whether calls are timed now (a slow-call threshold is set).
    #[inline]
    pub(crate) fn timed(&self) -> bool {
        self.slow_threshold.load(Ordering::Relaxed) != 0
    }

    /// Time since the origin, on tokio's (pausable, monotonic) clock.
    pub(crate) fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// [`now`](Self::now) in nanoseconds.
    fn nanos_now(&self) -> u64 {
        let now = self.now();
        now.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(now.subsec_nanos()))
    }

    pub(crate) fn notify(&self, notice: Option<Notice>, key: Option<&DynKey>)
    where
        O: for<'a> Observer<Event<'a>>,
    {
        let Some(notice) = notice else { return };
        let layer = &self.name;
        match notice {
            Notice::Changed { from, to, reason } => {
                self.record_transition(from, to, reason, key.is_some());
                self.observer.on_event(&Event::StateChange {
                    layer,
                    key,
                    from,
                    to,
                    reason,
                });
            }
            Notice::WouldOpen { reason } => {
                self.observer
                    .on_event(&Event::ThresholdExceeded { layer, key, reason });
            }
        }
    }

    /// Keeps a transition for the status page (and, keyed, counts an opening).
    #[cold]
    #[inline(never)]
    fn record_transition(&self, from: State, to: State, reason: Reason, keyed: bool) {
        self.recent
            .push(from.as_str(), to.as_str(), Some(reason.as_str()));
        if keyed && to == State::Open {
            self.keyed.opened.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`nanos_now`](Self::nanos_now) as a timed call's start: never [`UNTIMED`] (which would
    /// take some 584 years of uptime).
    pub(crate) fn started_now(&self) -> u64 {
        self.nanos_now().min(UNTIMED - 1)
    }

    /// Emits the rejection event (of a request with `trace_id`) and builds the error.
    pub(crate) fn rejection(
        &self,
        state: State,
        retry_after: Option<Duration>,
        key: Option<&DynKey>,
        trace_id: Option<TraceId>,
    ) -> Error
    where
        O: for<'a> Observer<Event<'a>>,
    {
        self.report_rejection(state, retry_after, key, trace_id);
        self.rejection_error(retry_after)
    }

    /// Counts (keyed) and emits the rejection event of a request with `trace_id`.
    pub(crate) fn report_rejection(
        &self,
        state: State,
        retry_after: Option<Duration>,
        key: Option<&DynKey>,
        trace_id: Option<TraceId>,
    ) where
        O: for<'a> Observer<Event<'a>>,
    {
        if key.is_some() {
            self.keyed.rejected.fetch_add(1, Ordering::Relaxed);
        }
        self.observer.on_event(&Event::Rejected {
            layer: &self.name,
            key,
            state,
            retry_after,
            trace_id,
        });
    }

    /// The error of a rejection (the remaining open time, when known).
    pub(crate) fn rejection_error(&self, retry_after: Option<Duration>) -> Error {
        let error = Error::circuit_open().with_layer(self.name.clone());
        match retry_after {
            Some(after) => error.with_retry_after(after),
            None => error,
        }
    }
}

/// One lane's way to the shared state: what a response future holds.
///
/// Every call's future needs a counted reference to the shared state, and an `Arc` clone writes
/// its reference count: were every future to clone one `Arc`, every call on every thread would
/// write that one cache line, and two threads on one breaker would not scale. So each thread
/// clones the `Arc` of its own lane, one of several, each aligned to a cache-line pair of its
/// own (128 bytes: adjacent-line prefetching pairs lines), whose count only that thread (and
/// the few threads that share the lane) writes.
#[repr(align(128))]
pub(crate) struct Lane<C, O> {
    shared: Arc<Shared<C, O>>,
}

/// The shared state and its lanes: what every service and clone of one layer holds.
pub(crate) struct Lanes<C, O> {
    pub(crate) shared: Arc<Shared<C, O>>,
    /// Thread `t` takes `slots[t % SLOTS]`, which is lane `t % lane_count()` (slot `i` holds lane
    /// `i % lane_count()`; a power of two no larger than `SLOTS` divides it): an array, so the
    /// closed path indexes it with a mask and no bounds check.
    slots: Box<[Arc<Lane<C, O>>; SLOTS]>,
}

/// Lane slots per layer: the largest [`lane_count`].
const SLOTS: usize = 64;

/// The next thread's number (see [`THREAD`]).
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number, given the first time it calls a breaker: consecutive threads (a
    /// runtime's workers) take consecutive numbers, hence different lanes.
    static THREAD: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// Lanes per layer: twice the available parallelism, a power of two in `4..=SLOTS`.
fn lane_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .saturating_mul(2)
        .clamp(4, SLOTS)
        .next_power_of_two()
}

impl<C, O> Lanes<C, O> {
    pub(crate) fn new(shared: Arc<Shared<C, O>>) -> Self {
        let lanes: Vec<_> = (0..lane_count())
            .map(|_| {
                Arc::new(Lane {
                    shared: Arc::clone(&shared),
                })
            })
            .collect();
        let slots = Box::new(std::array::from_fn(|i| Arc::clone(&lanes[i % lanes.len()])));
        Self { shared, slots }
    }

    /// This thread's lane, cloned for one call.
    #[inline]
    pub(crate) fn pick(&self) -> Arc<Lane<C, O>> {
        // A thread being torn down has no number any more: it takes lane 0.
        let thread = THREAD.try_with(|n| *n).unwrap_or(0);
        Arc::clone(&self.slots[thread % SLOTS])
    }
}

/// Holds an admitted call's permit until its outcome is recorded; dropped without an outcome
/// (a cancelled call, a dropped service), it gives a half-open probe slot back.
pub(crate) struct Guard<C, O> {
    lane: Arc<Lane<C, O>>,
    keyed: Option<Arc<KeyedBreaker>>,
    permit: Option<Permit>,
    /// When the call started, in nanoseconds since `shared.origin`, with a slow-call threshold;
    /// [`UNTIMED`] without one (so the closed path need not look the threshold up to know). A
    /// word rather than an `Option<Instant>`: the future stays four words, moved with
    /// whole-word copies.
    start: u64,
}

/// [`Guard::start`] of a call that is not timed (no slow-call threshold).
const UNTIMED: u64 = u64::MAX;

impl<C, O> Guard<C, O> {
    /// A guard for `permit`, on this thread's lane.
    #[inline]
    pub(crate) fn new(
        lanes: &Lanes<C, O>,
        keyed: Option<Arc<KeyedBreaker>>,
        permit: Option<Permit>,
    ) -> Self {
        Self {
            lane: lanes.pick(),
            keyed,
            permit,
            start: UNTIMED,
        }
    }

    /// A guard for `permit`, on this thread's lane, whose call starts now: [`new`](Self::new)
    /// then [`start`](Self::start), built in one go (the closed path: no guard is moved twice).
    #[inline]
    pub(crate) fn started_now(
        lanes: &Lanes<C, O>,
        keyed: Option<Arc<KeyedBreaker>>,
        permit: Option<Permit>,
    ) -> Self {
        let shared = &*lanes.shared;
        Self {
            lane: lanes.pick(),
            keyed,
            permit,
            start: if shared.timed() {
                shared.started_now()
            } else {
                UNTIMED
            },
        }
    }

    #[inline]
    fn shared(&self) -> &Shared<C, O> {
        &self.lane.shared
    }

    /// The circuit is still in the period the guard's permit was taken in.
    pub(crate) fn is_current(&self) -> bool {
        self.permit
            .is_none_or(|permit| self.breaker().is_current(permit))
    }

    #[inline]
    fn breaker(&self) -> &Breaker {
        self.keyed
            .as_ref()
            .map_or(&self.shared().breaker, |keyed| &keyed.breaker)
    }

    fn key(&self) -> Option<&DynKey> {
        self.keyed.as_ref().map(|keyed| &*keyed.key)
    }

    /// The call starts now (for the slow-call threshold; the clock is read only when one is
    /// set).
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.shared().timed() {
            self.start = self.shared().started_now();
        }
    }

    /// The layer's classifier.
    #[inline]
    pub(crate) fn classifier(&self) -> &C {
        &self.shared().classifier
    }

    /// Records the outcome of the call.
    #[inline(always)]
    pub(crate) fn finish<T, E>(&mut self, result: &Result<T, E>)
    where
        C: Classify<T, E>,
        O: for<'a> Observer<Event<'a>>,
    {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let outcome = self.shared().classifier.classify(result);
        self.settle_permit(permit, outcome);
    }

    /// Records an outcome worked out elsewhere (at the end of a response body).
    pub(crate) fn settle(&mut self, outcome: Outcome)
    where
        O: for<'a> Observer<Event<'a>>,
    {
        if let Some(permit) = self.permit.take() {
            self.settle_permit(permit, outcome);
        }
    }

    /// Moves the permit (and the call's start) into a new guard on the same breaker, for a
    /// response body to settle; this one is left holding nothing. (One reference count more:
    /// only a call whose outcome waits for its body's end pays it.)
    pub(crate) fn split(&mut self) -> Self {
        Self {
            lane: Arc::clone(&self.lane),
            keyed: self.keyed.clone(),
            permit: self.permit.take(),
            start: self.start,
        }
    }

    #[inline(always)]
    fn settle_permit(&self, permit: Permit, outcome: Outcome)
    where
        O: for<'a> Observer<Event<'a>>,
    {
        let slow = self.start != UNTIMED && self.slow();
        // The healthy steady state: a success, not slow, on a single breaker (a keyed one goes
        // the whole way), that `record` would neither count nor notify: `success_is_steady`
        // makes the loads `record` makes before it returns without a write.
        if !slow
            && self.keyed.is_none()
            && outcome.is_success()
            && self.shared().breaker.success_is_steady(permit)
        {
            return;
        }
        self.record(permit, outcome, slow);
    }

    /// Whether the call, timed, took the slow-call threshold or longer (it reads the clock:
    /// out of line, the closed path of an untimed call stays short).
    #[inline(never)]
    fn slow(&self) -> bool {
        let threshold = self.shared().slow_threshold.load(Ordering::Relaxed);
        threshold != 0 && self.shared().nanos_now().saturating_sub(self.start) >= threshold
    }

    /// Records an outcome the steady state does not absorb.
    #[inline(always)]
    fn record(&self, permit: Permit, outcome: Outcome, slow: bool)
    where
        O: for<'a> Observer<Event<'a>>,
    {
        // What the upstream caused (`Outcome::for_upstream`, applied here, off the steady
        // path): a throttled failure (one caller's quota) counts neither way.
        let verdict = match outcome.for_upstream() {
            Outcome::Success => Verdict::Success,
            Outcome::Failure(_) => Verdict::Failure,
            Outcome::Ignored => Verdict::Ignored,
        };
        let report = Report { verdict, slow };
        let shared = self.shared();
        let notice = self.breaker().record(permit, report, || shared.now());
        shared.notify(notice, self.key());
    }
}

impl<C, O> Drop for Guard<C, O> {
    #[inline(always)]
    fn drop(&mut self) {
        // Only a probe's slot is given back (`release` ignores every other permit): a finished
        // call, or a closed one, writes nothing here.
        if let Some(permit) = self.permit
            && permit.is_probe()
        {
            self.release(permit);
        }
    }
}

impl<C, O> Guard<C, O> {
    /// Gives a dropped probe's slot back; cold and out of line, so that dropping any other
    /// guard is one test and its reference count.
    #[cold]
    #[inline(never)]
    fn release(&self, permit: Permit) {
        self.breaker().release(permit);
    }
}

impl<C, O> fmt::Debug for Guard<C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("layer", &self.shared().name)
            .field("key", &self.key())
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

/// The per-key map of a keyed layer, with its key type erased: the key type depends on the
/// request type, which the layer does not know until the service is called.
pub(crate) trait Store: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn visit(&self, f: &mut dyn FnMut(&KeyedBreaker));
    /// The overflow breaker (keys past `max_keys`).
    fn overflow(&self) -> &KeyedBreaker;
    fn len(&self) -> usize;
    fn sweep(&self, now: Instant) -> usize;
}

impl<K> Store for KeyedMap<K, Arc<KeyedBreaker>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn visit(&self, f: &mut dyn FnMut(&KeyedBreaker)) {
        self.for_each(|_, breaker| f(breaker));
    }

    fn overflow(&self) -> &KeyedBreaker {
        Self::overflow(self)
    }

    fn len(&self) -> usize {
        Self::len(self)
    }

    fn sweep(&self, now: Instant) -> usize {
        self.sweep_now(now)
    }
}

/// What every service and clone of a keyed layer shares.
pub(crate) struct KeyedState<E, C, O> {
    pub(crate) extractor: E,
    pub(crate) config: KeyedConfig,
    /// The settings a new key's breaker starts with (read when a key is first seen).
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) missing: MissingKey,
    pub(crate) map: OnceLock<Box<dyn Store>>,
    /// The breaker of key-less requests ([`MissingKey::Shared`]) is `shared.breaker`.
    pub(crate) shared: Arc<Shared<C, O>>,
    /// The lanes to `shared` that response futures hold.
    pub(crate) lanes: Lanes<C, O>,
}

/// A closed breaker may be forgotten when idle; an open one must not be (its key would come back
/// closed and skip the open time).
fn evictable(breaker: &Arc<KeyedBreaker>, _now: Instant) -> bool {
    breaker.breaker.state() == State::Closed
}

impl<E, C, O> KeyedState<E, C, O> {
    fn map<Key>(&self) -> Option<&KeyedMap<Key, Arc<KeyedBreaker>>>
    where
        Key: std::hash::Hash + Eq + Send + Sync + 'static,
    {
        let store = self.map.get_or_init(|| {
            let overflow = Arc::new(KeyedBreaker {
                breaker: Breaker::new(**self.settings.load()),
                key: Box::new("overflow"),
            });
            let map: KeyedMap<Key, Arc<KeyedBreaker>> =
                KeyedMap::new(self.config, overflow).evict_if(evictable);
            Box::new(map)
        });
        store.as_any().downcast_ref()
    }

    /// Visits every keyed breaker stored so far.
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&KeyedBreaker)) {
        if let Some(store) = self.map.get() {
            store.visit(f);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.get().map_or(0, |store| store.len())
    }

    /// Forgets every idle key whose breaker is closed; returns how many.
    pub(crate) fn sweep(&self) -> usize {
        self.map
            .get()
            .map_or(0, |store| store.sweep(Instant::now()))
    }

    /// The breaker for this request, as [`MissingKey`] resolves it.
    pub(crate) fn breaker_for<Req>(&self, req: &Req) -> Resolved<Arc<KeyedBreaker>>
    where
        E: KeyExtractor<Req>,
    {
        match self.missing.resolve(self.extractor.extract(req)) {
            Resolved::Key(key) => {
                let Some(map) = self.map::<E::Key>() else {
                    // The same layer used for a second request type with another key type:
                    // those requests share the key-less breaker.
                    return Resolved::Shared;
                };
                let breaker = map.with(
                    key,
                    Instant::now(),
                    |key| {
                        let key = self.extractor.detach(key);
                        let keyed = Arc::new(KeyedBreaker {
                            breaker: Breaker::new(**self.settings.load()),
                            key: Box::new(key.clone()),
                        });
                        (key, keyed)
                    },
                    Arc::clone,
                );
                Resolved::Key(breaker)
            }
            Resolved::Shared => Resolved::Shared,
            Resolved::Bypass => Resolved::Bypass,
            Resolved::Reject => Resolved::Reject,
        }
    }
}

/// The slow-call threshold of `settings` in nanoseconds (at least 1), 0 without one.
fn threshold_nanos(settings: &CircuitBreakerSettings) -> u64 {
    settings.slow_calls.map_or(0, |(threshold, _)| {
        u64::try_from(threshold.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    })
}

/// New settings at run time (the handles' `Reconfigure`).
impl<C, O> Shared<C, O> {
    /// The plain settings in force.
    pub(crate) fn plain(&self) -> CircuitBreakerSettings {
        self.plain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Validates `settings` by the builder's rules and applies them to the breaker; the name
    /// and the seed stay the layer's. With `others`, a keyed layer's breakers: each must take
    /// the settings (checked first, so that none or all do), and each is reconfigured after
    /// the key-less one.
    pub(crate) fn apply(
        &self,
        mut settings: CircuitBreakerSettings,
        others: Option<(&ArcSwap<Settings>, &dyn Fn(&mut dyn FnMut(&Breaker)))>,
    ) -> Result<(), ConfigError> {
        let algorithm = settings.validate()?;
        let mut plain = self
            .plain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut refused = !self.breaker.can_take(&algorithm);
        if let Some((_, visit)) = &others {
            visit(&mut |breaker| refused |= !breaker.can_take(&algorithm));
        }
        if refused {
            // The same error as the breaker's own refusal, before anything changed.
            return self.breaker.reconfigure_refused(algorithm);
        }
        self.breaker.reconfigure(algorithm)?;
        self.slow_threshold
            .store(threshold_nanos(&settings), Ordering::Relaxed);
        self.backpressure
            .store(settings.backpressure, Ordering::Relaxed);
        if let Some((keyed, visit)) = others {
            // New keys first, then the keys there are: a key made in between has the new
            // settings already, and reconfiguring it again changes nothing.
            keyed.store(Arc::new(algorithm));
            visit(&mut |breaker| {
                // Checked above, under the lock every application holds: only a window shape
                // could be refused, and none is.
                let _ = breaker.reconfigure(algorithm);
            });
        }
        settings.name = plain.name.clone();
        settings.seed = plain.seed;
        *plain = settings;
        Ok(())
    }
}

impl<E, C, O> KeyedState<E, C, O> {
    /// Visits every keyed breaker and the overflow one.
    pub(crate) fn visit_breakers(&self, f: &mut dyn FnMut(&Breaker)) {
        if let Some(store) = self.map.get() {
            store.visit(&mut |keyed| f(&keyed.breaker));
            f(&store.overflow().breaker);
        }
    }

    /// New settings for every key (and the key-less breaker): see [`Shared::apply`].
    pub(crate) fn apply(&self, settings: CircuitBreakerSettings) -> Result<(), ConfigError> {
        self.shared.apply(
            settings,
            Some((&self.settings, &|f: &mut dyn FnMut(&Breaker)| {
                self.visit_breakers(f);
            })),
        )
    }
}
