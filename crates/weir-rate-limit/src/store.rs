//! Where the limiter's state lives: the [`Store`] trait and the in-memory [`MemoryStore`].

use std::future::{Future, Ready, ready};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::{
    BoxError, Name, keyed::ByState, keyed::KeyedConfig, keyed::KeyedMap, keyed::Prehashed,
    wire::RateLimitInfo,
};

use crate::clock::Origin;
use crate::quota::Quota;
use crate::state::{Algorithm, Gcra, Verdict};

/// A tier: a named set of stacked quotas that must all pass.
#[derive(Clone, PartialEq, Eq)]
pub struct Tier {
    name: Name,
    quotas: Box<[Quota]>,
    /// For each quota, the state an admitted response reports when that quota has the fewest
    /// units left (its policy first, the tier's others after it), prepared once: a response
    /// clones it (no allocation: names and the list of others are shared) and sets its units
    /// left and its reset. A function of `quotas`, so equality is unchanged.
    reports: Box<[RateLimitInfo]>,
}

impl Tier {
    /// A tier named `name` with these stacked quotas (the builder makes them; a [`Store`]
    /// implementation's tests may too).
    #[must_use]
    pub fn new(name: impl Into<Name>, quotas: impl IntoIterator<Item = Quota>) -> Self {
        let quotas: Box<[Quota]> = quotas.into_iter().collect();
        let reports = (0..quotas.len())
            .map(|reported| {
                let quota = &quotas[reported];
                let first = RateLimitInfo::new(
                    quota.name_ref().clone(),
                    u64::from(quota.rate()),
                    quota.period(),
                );
                quotas
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != reported)
                    .fold(first, |info, (_, other)| {
                        info.also_policy(
                            other.name_ref().clone(),
                            u64::from(other.rate()),
                            other.period(),
                        )
                    })
            })
            .collect();
        Self {
            name: name.into(),
            quotas,
            reports,
        }
    }

    /// The state an admitted response reports when quota `policy` has the fewest units left
    /// (the first quota's for an index out of range), before its units left and reset are set.
    pub(crate) fn report(&self, policy: usize) -> &RateLimitInfo {
        self.reports.get(policy).unwrap_or(&self.reports[0])
    }

    /// The tier's name (`"default"` for the default tier).
    #[must_use]
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Its quotas, in the order they were added.
    #[must_use]
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    pub(crate) const fn name_ref(&self) -> &Name {
        &self.name
    }
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("name", &self.name)
            .field("quotas", &self.quotas)
            .finish()
    }
}

/// A store's answer to one request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// 1 if admitted, 0 if refused, 2 if never admissible: a whole word, not a `bool`, so the
    /// decision has no padding.
    /// A `bool` left seven padding bytes, which moves of `Option<Result<Decision, _>>` on the
    /// hot path copied with two overlapping 4-byte stores and loads, stalling store-to-load
    /// forwarding (about 15 % of a GCRA call's time).
    admitted: u64,
    policy: usize,
    wait: u64,
    room: u64,
    unit: u64,
    reset: u64,
    retry_after: u64,
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decision")
            .field("admitted", &self.is_admitted())
            .field("never_admissible", &self.is_never_admissible())
            .field("policy", &self.policy)
            .field("wait", &self.wait)
            .field("room", &self.room)
            .field("unit", &self.unit)
            .field("reset", &self.reset)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

/// [`Decision::admitted`]'s value for a request that is never admissible.
const NEVER: u64 = 2;

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Decision {
    /// Admitted, at once (`wait` zero) or after `wait` (a reservation in wait mode). `policy` is
    /// the index in the tier's quotas of the policy to report (the one with the fewest units
    /// left), `remaining` its units left, `reset` the time until it is fully restored.
    #[must_use]
    pub fn admitted(policy: usize, wait: Duration, remaining: u64, reset: Duration) -> Self {
        Self {
            admitted: 1,
            policy,
            wait: nanos_of(wait),
            room: remaining,
            unit: 1,
            reset: nanos_of(reset),
            retry_after: 0,
        }
    }

    /// Refused by the quota at index `policy`; the same request may pass after `retry_after`.
    #[must_use]
    pub fn refused(policy: usize, retry_after: Duration, remaining: u64, reset: Duration) -> Self {
        Self {
            admitted: 0,
            policy,
            wait: 0,
            room: remaining,
            unit: 1,
            reset: nanos_of(reset),
            retry_after: nanos_of(retry_after),
        }
    }

    /// Refused by the quota at index `policy` whatever its state: the request's cost is above
    /// what that quota can ever admit (its burst, or its rate for the window algorithms).
    /// Waiting never helps: the limiter answers [`weir_core::Error::never_admissible`].
    #[must_use]
    pub fn never_admissible(policy: usize, remaining: u64, reset: Duration) -> Self {
        Self {
            admitted: NEVER,
            policy,
            wait: 0,
            room: remaining,
            unit: 1,
            reset: nanos_of(reset),
            retry_after: u64::MAX,
        }
    }

    /// The decision of one quota's verdict; nothing is divided until asked for.
    const fn of(policy: usize, v: Verdict) -> Self {
        let (room, unit) = v.room();
        Self {
            admitted: if v.is_never_admissible() {
                NEVER
            } else {
                v.is_admitted() as u64
            },
            policy,
            wait: v.wait(),
            room,
            unit,
            reset: v.reset(),
            retry_after: v.retry_after(),
        }
    }

    /// Admitted with no wait: compares the nanoseconds, building no `Duration`.
    #[inline]
    pub(crate) const fn is_immediate(&self) -> bool {
        self.wait == 0
    }

    /// Whether the request may proceed (possibly after [`wait`](Self::wait)).
    #[must_use]
    pub const fn is_admitted(&self) -> bool {
        self.admitted == 1
    }

    /// Whether the request is refused whatever the state (see
    /// [`never_admissible`](Self::never_admissible)).
    #[must_use]
    pub const fn is_never_admissible(&self) -> bool {
        self.admitted == NEVER
    }

    /// The index, in the tier's quotas, of the policy this decision reports.
    #[must_use]
    pub const fn policy(&self) -> usize {
        self.policy
    }

    /// How long an admitted request waits before it proceeds.
    #[must_use]
    pub const fn wait(&self) -> Duration {
        Duration::from_nanos(self.wait)
    }

    /// Units left in the reported policy.
    #[must_use]
    pub const fn remaining(&self) -> u64 {
        if self.unit <= 1 {
            self.room
        } else {
            self.room / self.unit
        }
    }

    /// Time until the reported policy is fully restored.
    #[must_use]
    pub const fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset)
    }

    /// For a refusal, the time after which the same request may pass (`Duration::MAX`-like,
    /// `u64::MAX` nanoseconds, if it never may).
    #[must_use]
    pub const fn retry_after(&self) -> Duration {
        Duration::from_nanos(self.retry_after)
    }
}

/// What one request asks of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Units the request costs (at least 1).
    pub cost: u32,
    /// The longest the request may wait for a reservation; zero in reject and shadow mode.
    pub max_wait: Duration,
}

/// What [`Store::decide_now`] answers.
#[derive(Debug)]
pub enum Now {
    /// Admitted at once, the cost taken, with nothing to report (only when the limiter asked
    /// for a plain answer): the happy path, which builds no [`Decision`].
    Admitted,
    /// Decided at the given instant (the `now` the store was asked at), as the future of
    /// [`Store::decide`] would have resolved. The instant comes back with the answer so the
    /// limiter need not keep its own copy alive across the decision (on the happy path it is
    /// dead once the store has read it).
    Decided(Result<Decision, BoxError>, Instant),
    /// The store cannot answer at once: the limiter calls [`Store::decide`].
    Later,
}

/// Where a rate limiter keeps its state.
///
/// The limiter calls [`decide_now`](Self::decide_now) once per request; if the store cannot
/// answer at once (the default), it calls [`decide`](Self::decide) and polls the future it
/// returns once with a no-op waker: a store that answers at once (the in-memory store, whose
/// future is [`std::future::Ready`]) costs no allocation and no extra state; a store that must
/// ask a server (Redis) returns a pending future that the response future drives to completion
/// before it calls the inner service (then the inner service is cloned, as for a wait).
///
/// The decision future must be `Unpin` (box it if it is not: a store that asks a server pays a
/// round trip anyway), because the limiter polls it once in `call` and moves it into the
/// response future if it is still pending.
///
/// # The contract of a store
///
/// - **Atomic per decision**: all the quotas of `tier` are checked and charged as one step; a
///   request refused by one quota charges none of them (a Redis store does it in one script).
/// - **One clock**: decisions are made against one clock for every instance sharing the state
///   (a Redis store uses the server's `TIME`, not `now`, so instances with skewed clocks agree);
///   `now` is only the local time for stores that are local.
/// - **Bounded state**: state at rest is forgotten (a Redis store sets a TTL of the time the
///   state takes to return to rest, per key).
/// - [`cancel`](Self::cancel) gives back a reservation made with `max_wait > 0` whose request
///   was dropped before its turn, best effort.
/// - A `key` of `None` is the one state shared by every request without a key.
pub trait Store<K>: Send + Sync + 'static {
    /// The future of a decision.
    type Future: Future<Output = Result<Decision, BoxError>>;

    /// Decides `ask` for `key` against every quota of `tier`.
    fn decide(&self, key: Option<&K>, tier: &Tier, ask: Ask, now: Instant) -> Self::Future;

    /// Decides `ask` at once, as [`decide`](Self::decide) would, if the store can answer without
    /// waiting; [`Now::Later`] (the default) makes the limiter call [`decide`](Self::decide)
    /// instead. With `plain` (the limiter needs nothing but the admission: it writes no
    /// rate-limit fields on the response), a request admitted at once may be answered
    /// [`Now::Admitted`], without building a [`Decision`].
    ///
    /// The in-memory store always answers here: the limiter then builds no decision future and
    /// polls nothing. A store must decide each request once: either here, or in `decide`.
    #[inline]
    fn decide_now(&self, key: Option<&K>, tier: &Tier, ask: Ask, plain: bool, now: Instant) -> Now {
        let _ = (key, tier, ask, plain, now);
        Now::Later
    }

    /// Gives back the units of a reservation that was not used.
    fn cancel(&self, key: Option<&K>, tier: &Tier, cost: u32, now: Instant);

    /// Gives back the units of a reservation that was not used, knowing `end`: when its
    /// decision said the reported quota would be fully restored (the time of the decision plus
    /// [`Decision::reset`]). The limiter calls this one; by default it is
    /// [`cancel`](Self::cancel).
    ///
    /// A scheduling store should give the units back only if no later reservation was booked
    /// after this one (its state still ends at `end`): giving back a turn in the middle of a
    /// queue would book the next request on the same instant as a later one. The in-memory
    /// store does so for GCRA and the leaky bucket (a turn dropped in the middle of the queue
    /// goes unused).
    fn cancel_reserved(&self, key: Option<&K>, tier: &Tier, cost: u32, end: Instant, now: Instant) {
        let _ = end;
        self.cancel(key, tier, cost, now);
    }
}

/// A [`Store`] whose limiter can be shown on a status page or read by a metrics exporter
/// (`weir_core::inspect`): the store adds its own gauges and counters to its limiter's
/// snapshot, from what it keeps in memory (a snapshot never waits for a round trip).
/// [`RateLimitBuilder::build_with_store_registered`](crate::RateLimitBuilder::build_with_store_registered)
/// registers a limiter on such a store.
///
/// Implemented by weir-redis's `RedisStore` (its decisions, lease decisions, failure-policy
/// decisions, errors and whether it is degraded). The in-memory store's limiter has a richer
/// snapshot of its own (keys held, units left, a `reset` action), from `build` with a
/// registry.
pub trait InspectStore: Send + Sync + 'static {
    /// `shown` (the limiter's snapshot: pattern, name, `rejected`) with the store's own gauges
    /// and counters added.
    fn inspect(&self, shown: weir_core::inspect::Snapshot) -> weir_core::inspect::Snapshot;
}

/// A store whose keys an admin can read and reset one at a time: what
/// [`RateLimitHandle::remaining_async`](crate::RateLimitHandle::remaining_async) and
/// [`RateLimitHandle::reset_async`](crate::RateLimitHandle::reset_async) call.
///
/// Implemented by [`MemoryStore`] (its futures are ready at once) and by weir-redis's
/// `RedisStore` (one round trip each, on the keys every instance shares; an outage is an
/// error, never a made-up answer). Neither method is on the request path.
pub trait AdminStore<K>: Store<K> {
    /// The verdict of a request of one unit on every quota of `tier` for `key`, in the order
    /// of the quotas, without charging or storing anything. A key with no state reads as
    /// fresh.
    fn peek(
        &self,
        key: &K,
        tier: &Tier,
    ) -> impl Future<Output = Result<Vec<Verdict>, BoxError>> + Send + use<Self, K>;

    /// Forgets `key`'s state in every quota of `tier`, so its next request starts with every
    /// quota full; whether it had a state of its own.
    fn forget(
        &self,
        key: &K,
        tier: &Tier,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send + use<Self, K>;
}

/// The states of one key: one per quota of its tier, the first inline, the others in `rest`.
///
/// A key of a single-quota tier is a [`Single`]: its one state and nothing else (no pointer), so
/// with GCRA a stored key costs its 8-byte hash and 8-byte state. A key of a stacked tier is a
/// [`Stacked`], its other states boxed. The decision sees both as `KeyState<S>` (`rest` unsized
/// to `dyn Rest<S>`), through a reference, at no cost.
pub(crate) struct KeyState<S, R: ?Sized = dyn Rest<S>> {
    first: S,
    rest: R,
}

/// A key of a single-quota tier.
type Single<S> = KeyState<S, [S; 0]>;

/// A key of a tier with stacked quotas.
type Stacked<S> = KeyState<S, Box<[S]>>;

/// The states of a key after its first.
pub(crate) trait Rest<S>: Send + Sync {
    fn states(&self) -> &[S];
}

impl<S: Send + Sync> Rest<S> for [S; 0] {
    fn states(&self) -> &[S] {
        self
    }
}

impl<S: Send + Sync> Rest<S> for Box<[S]> {
    fn states(&self) -> &[S] {
        self
    }
}

fn first_state<A: Algorithm>(algorithm: &A, tier: &Tier) -> A::State {
    tier.quotas().first().map_or_else(
        || algorithm.new_state(&Quota::per_second(1)),
        |q| algorithm.new_state(q),
    )
}

impl<S> Single<S> {
    /// The state of the first quota of `tier`.
    fn single<A: Algorithm<State = S>>(algorithm: &A, tier: &Tier) -> Self {
        Self {
            first: first_state(algorithm, tier),
            rest: [],
        }
    }
}

impl<S> Stacked<S> {
    /// The states of every quota of `tier`.
    fn stacked<A: Algorithm<State = S>>(algorithm: &A, tier: &Tier) -> Self {
        Self {
            first: first_state(algorithm, tier),
            rest: tier
                .quotas()
                .iter()
                .skip(1)
                .map(|q| algorithm.new_state(q))
                .collect(),
        }
    }
}

impl<S> KeyState<S> {
    fn get(&self, i: usize) -> Option<&S> {
        if i == 0 {
            Some(&self.first)
        } else {
            self.rest.states().get(i - 1)
        }
    }
}

/// The epoch every in-memory state counts nanoseconds from: a day before the first limiter was
/// built (or the earliest representable instant), so every `tokio::time::Instant` a runtime of
/// this process can produce, paused or not, lies after it.
fn epoch() -> &'static Origin {
    static EPOCH: OnceLock<Origin> = OnceLock::new();
    EPOCH.get_or_init(|| {
        #[allow(
            clippy::disallowed_methods,
            reason = "the one reading of the real clock: the origin of every state's timestamps"
        )]
        let real = std::time::Instant::now();
        Origin::new(
            [86_400, 3_600, 60, 1, 0]
                .into_iter()
                .find_map(|s| real.checked_sub(Duration::from_secs(s)))
                .unwrap_or(real),
        )
    })
}

/// Nanoseconds since the epoch.
pub(crate) fn nanos(now: Instant) -> u64 {
    epoch().nanos(now)
}

/// Whether every state of a key has been at rest (its bucket full again) for `idle` nanoseconds
/// at `now`: the store's maps keep no last-seen time per key, so this is how they tell an idle
/// key. A request leaves a state short of rest (an admitted one charges it, a refused one finds
/// it short), so a key at rest for `idle` has also gone `idle` without a request (save requests
/// costing more than the burst, refused whatever the state, and reservations given back), and
/// forgetting it changes no decision: a fresh state is the same state at rest.
fn rested<A: Algorithm, R: Rest<A::State> + ?Sized>(
    state: &KeyState<A::State, R>,
    idle: u64,
    now: Instant,
) -> bool {
    let since = nanos(now).saturating_sub(idle);
    A::rest_at(&state.first) <= since && state.rest.states().iter().all(|s| A::rest_at(s) <= since)
}

/// The in-memory store (the default): the state of every key in a [`KeyedMap`] (bounded, evicting
/// a key once every bucket of it has been full again for the idle timeout, so eviction never
/// changes a decision), the key-less state apart, decided with the algorithm `A` (GCRA by
/// default).
///
/// Keys are stored as a 64-bit hash of the key (a per-store random SipHash key, so a client
/// cannot aim collisions): 8 bytes per key whatever the key's size, no copy of the key, nothing
/// allocated for it. Two keys share a state only if their hashes collide: about one chance in
/// 3.7 × 10¹⁰ among a million live keys. Keys of single-quota tiers and of stacked tiers sit in
/// two maps sharing one `max_keys` bound, so a single-quota key (the common case) is its hash
/// and its one state, 16 bytes with GCRA, as in governor's keyed store.
///
/// Its decision future is [`std::future::Ready`]: no allocation, no lock for GCRA and the leaky
/// bucket (one compare-and-swap per quota), a short `std::sync::Mutex` section per quota for the
/// other algorithms, and a shard's read lock to find a stored key.
pub struct MemoryStore<A: Algorithm = Gcra> {
    algorithm: A,
    /// Keys of single-quota tiers. Keys are already keyed SipHashes, so the map does not hash
    /// them again, and the states tell idleness, so the map keeps no time per key.
    keys: KeyedMap<u64, Single<A::State>, Prehashed, ByState>,
    /// Keys of tiers with stacked quotas, counted against the same `max_keys`.
    stacked: KeyedMap<u64, Stacked<A::State>, Prehashed, ByState>,
    shared: OnceLock<Stacked<A::State>>,
    /// The states shared by new keys while the maps are full: per tier, made on the first
    /// overflow of a key of that tier.
    overflow: RwLock<Vec<Overflow<A::State>>>,
    /// How many overflow states each tier has.
    spread: usize,
    hasher: RandomState,
    epoch: Origin,
}

/// The overflow states of one tier: keys that find the maps full are spread over them by
/// their keyed hash, and each applies every quota of the tier.
struct Overflow<S> {
    tier: Tier,
    states: Box<[Stacked<S>]>,
}

/// Marks the branch that calls it as unlikely (`std::hint::cold_path` is newer than the MSRV).
#[cold]
#[inline(never)]
const fn cold() {}

/// The number of overflow states per tier for a bound of `max_keys` keys: one per eight keys,
/// between 1 and [`MAX_SPREAD`].
const fn spread_of(max_keys: usize) -> usize {
    let n = max_keys / 8;
    if n == 0 {
        1
    } else if n > MAX_SPREAD {
        MAX_SPREAD
    } else {
        n
    }
}

/// The most overflow states a tier has (12 500 with the default `max_keys` of 100 000).
const MAX_SPREAD: usize = 16_384;

/// The overflow state among `n` for a key hash: the high bits of a multiply-shift of the hash
/// remixed, so the choice is independent of the bits the maps use.
const fn spread_index(hash: u64, n: usize) -> usize {
    let mixed = hash.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((mixed as u128 * n as u128) >> 64) as usize
}

impl<A: Algorithm> std::fmt::Debug for MemoryStore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("algorithm", &std::any::type_name::<A>())
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl<A: Algorithm> MemoryStore<A> {
    /// A store for `algorithm` with the given key bounds. `default` shapes the maps' unused
    /// overflow values; keys that find the maps full are decided on their own tier's overflow
    /// states (`max_keys / 8` per tier, between 1 and 16 384), made on the tier's first
    /// overflow, each applying every quota of the tier.
    #[must_use]
    pub fn new(algorithm: A, config: KeyedConfig, default: &Tier) -> Self {
        // Fix the epoch before any request reads the time.
        let epoch = *epoch();
        let idle = nanos_of(config.get_idle_timeout());
        // The maps' own overflow state is never used: `with_state` spreads keys that find
        // them full over the tier's overflow states.
        let keys = KeyedMap::with_idleness(
            config,
            Single::single(&algorithm, default),
            Prehashed,
            ByState,
        )
        .evict_if(move |state, now| rested::<A, _>(state, idle, now))
        .evict_when_full_if(|state, now| rested::<A, _>(state, 0, now))
        .counting_from(Instant::from_std(epoch.instant()));
        let stacked = KeyedMap::with_idleness(
            config,
            Stacked::stacked(&algorithm, default),
            Prehashed,
            ByState,
        )
        .evict_if(move |state, now| rested::<A, _>(state, idle, now))
        .evict_when_full_if(|state, now| rested::<A, _>(state, 0, now))
        .counting_from(Instant::from_std(epoch.instant()))
        .share_bound_with(&keys);
        Self {
            keys,
            stacked,
            algorithm,
            shared: OnceLock::new(),
            overflow: RwLock::new(Vec::new()),
            spread: spread_of(config.get_max_keys()),
            hasher: RandomState::new(),
            epoch,
        }
    }

    /// Runs `f` on the overflow state of `tier` that `hash` falls on, making the tier's
    /// overflow states on its first use. Off the happy path: only keys that find the maps full
    /// come here, and they take a read lock (shared) to find their tier's states.
    #[cold]
    #[inline(never)]
    fn with_overflow<R>(
        &self,
        tier: &Tier,
        hash: u64,
        f: impl FnOnce(&KeyState<A::State>) -> R,
    ) -> R {
        let index = spread_index(hash, self.spread);
        let same = |o: &&Overflow<A::State>| o.tier.name() == tier.name();
        {
            let sets = self.overflow.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(set) = sets.iter().find(same) {
                return f(&set.states[index]);
            }
        }
        let mut sets = self
            .overflow
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !sets.iter().any(|o| o.tier.name() == tier.name()) {
            sets.push(Overflow {
                tier: tier.clone(),
                states: (0..self.spread)
                    .map(|_| Stacked::stacked(&self.algorithm, tier))
                    .collect(),
            });
        }
        // Decided under the write lock: once per tier.
        let set = sets.iter().find(same).expect("just made");
        f(&set.states[index])
    }

    /// The number of keys stored.
    #[must_use]
    pub fn keys(&self) -> usize {
        self.keys.len() + self.stacked.len()
    }

    /// How many idle keys the store has evicted since it was made.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.keys.evicted() + self.stacked.evicted()
    }

    /// Calls `on_evict` for every key evicted (under the shard's write lock): the layer reports
    /// evictions to its observer through it.
    pub(crate) fn on_evict(self, on_evict: impl Fn() + Send + Sync + 'static) -> Self {
        let on_evict = std::sync::Arc::new(on_evict);
        let also = std::sync::Arc::clone(&on_evict);
        Self {
            keys: self.keys.on_evict(move |_, _| on_evict()),
            stacked: self.stacked.on_evict(move |_, _| also()),
            ..self
        }
    }

    /// Where every state's time counts from: fixed windows (and the sliding-window counter's
    /// windows, and the token bucket's refills) of a quota of period `p` start at
    /// `window_origin() + k × p`. A day before the first limiter of the process was built (or
    /// the earliest instant the clock can represent).
    #[must_use]
    pub fn window_origin(&self) -> Instant {
        Instant::from_std(self.epoch.instant())
    }

    /// The verdict of a request of one unit at `now` on every quota of `tier` for `key` (the
    /// key as the extractor produces it), without charging or storing anything: a key that is
    /// not stored (never seen, evicted, or deciding on an overflow state) reads as fresh.
    pub(crate) fn peek_key<K: Hash>(&self, key: &K, tier: &Tier, now: Instant) -> Vec<Verdict> {
        let t = self.epoch.nanos(now);
        let peek = |states: &KeyState<A::State>| {
            tier.quotas()
                .iter()
                .enumerate()
                .filter_map(|(i, q)| Some(self.algorithm.peek(states.get(i)?, q, 1, t)))
                .collect::<Vec<_>>()
        };
        let stored = if size_of::<K>() == 0 {
            self.shared.get().map(|s| peek(s))
        } else {
            let hash = self.hasher.hash_one(key);
            if tier.quotas().len() <= 1 {
                self.keys.peek(&hash, |s| peek(s))
            } else {
                self.stacked.peek(&hash, |s| peek(s))
            }
        };
        stored.unwrap_or_else(|| peek(&Stacked::stacked(&self.algorithm, tier)))
    }

    /// Forgets `key`'s state (its next request starts afresh); whether it was stored.
    pub(crate) fn forget<K: Hash>(&self, key: &K, tier: &Tier) -> bool {
        if size_of::<K>() == 0 {
            return false;
        }
        let hash = self.hasher.hash_one(key);
        if tier.quotas().len() <= 1 {
            self.keys.remove(&hash)
        } else {
            self.stacked.remove(&hash)
        }
    }

    /// Forgets the state of the key written `text` for an admin page, whatever the key's type:
    /// the key as a string (a closure's `String`), as a header value (`Header`), and, when it
    /// parses as one, as an IP address (`PeerIp`), in whichever tier map holds it. Whether any
    /// was stored.
    pub(crate) fn forget_text(&self, text: &str) -> bool {
        let mut hashes = vec![self.hasher.hash_one(text)];
        if let Ok(value) = http::HeaderValue::from_str(text) {
            hashes.push(self.hasher.hash_one(&value));
        }
        if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            hashes.push(self.hasher.hash_one(ip));
        }
        let mut found = false;
        for hash in hashes {
            found |= self.keys.remove(&hash);
            found |= self.stacked.remove(&hash);
        }
        found
    }

    /// The algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> &A {
        &self.algorithm
    }

    #[inline(always)]
    fn with_state<K: Hash, R>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        now: Instant,
        t: u64,
        f: impl FnOnce(&KeyState<A::State>) -> R,
    ) -> R {
        // The maps count from the same epoch as `t`: no second conversion of `now`.
        let ms = t / 1_000_000;
        match key {
            // A zero-sized key (`()`, from `Global`) has one value: one state, no map.
            Some(_) if size_of::<K>() == 0 => f(self.shared(tier)),
            None => f(self.shared(tier)),
            Some(key) => {
                let hash = self.hasher.hash_one(key);
                // A key that finds the maps full is decided on one of its tier's overflow
                // states, every quota of the tier applied.
                if tier.quotas().len() <= 1 {
                    let new = |h| (h, Single::single(&self.algorithm, tier));
                    self.keys
                        .with_millis_or(hash, now, ms, new, |found| match found {
                            Ok(states) => f(states),
                            Err(hash) => self.with_overflow(tier, hash, f),
                        })
                } else {
                    let new = |h| (h, Stacked::stacked(&self.algorithm, tier));
                    self.stacked
                        .with_millis_or(hash, now, ms, new, |found| match found {
                            Ok(states) => f(states),
                            Err(hash) => self.with_overflow(tier, hash, f),
                        })
                }
            }
        }
    }

    fn shared(&self, tier: &Tier) -> &KeyState<A::State> {
        self.shared
            .get_or_init(|| Stacked::stacked(&self.algorithm, tier))
    }

    /// The decision of `ask` for `key` at `now`: the key-less state (as [`with_state`]
    /// finds it) inline, a stored key's through the map.
    ///
    /// [`with_state`]: Self::with_state
    #[inline(always)]
    fn decide_at<K: Hash>(&self, key: Option<&K>, tier: &Tier, ask: Ask, now: Instant) -> Decision {
        let t = self.epoch.nanos(now);
        if key.is_none() || size_of::<K>() == 0 {
            return self.decide_states(self.shared(tier), tier, ask, t);
        }
        self.decide_keyed(key, tier, ask, now, t)
    }

    /// The plain happy path of a single quota: [`Algorithm::admit`], which builds no verdict;
    /// a request it does not admit at once is decided on the same state, found once.
    #[inline(always)]
    fn admit_at<K: Hash>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        quota: &Quota,
        ask: Ask,
        now: Instant,
    ) -> Now {
        let t = self.epoch.nanos(now);
        // The closure answers one flag, so the happy path moves no decision through the map;
        // a request not admitted at once leaves its decision here.
        let mut decided = None;
        let mut admit = |states: &KeyState<A::State>| {
            let admitted = self.algorithm.admit(&states.first, quota, ask.cost, t);
            if !admitted {
                decided = Some(self.decide_cold(states, tier, ask, t));
            }
            admitted
        };
        let admitted = if key.is_none() || size_of::<K>() == 0 {
            admit(self.shared(tier))
        } else {
            self.with_state(key, tier, now, t, admit)
        };
        match decided {
            Some((decision, at)) if !admitted => Now::Decided(Ok(decision), at),
            _ => Now::Admitted,
        }
    }

    /// [`decide_states`](Self::decide_states) out of line, for a request the happy path did
    /// not admit, with the instant of `t` (so the happy path keeps no instant alive).
    #[cold]
    #[inline(never)]
    fn decide_cold(
        &self,
        states: &KeyState<A::State>,
        tier: &Tier,
        ask: Ask,
        t: u64,
    ) -> (Decision, Instant) {
        (
            self.decide_states(states, tier, ask, t),
            self.epoch.instant_at(t),
        )
    }

    /// The decision of a stored key: its state found (or made) in the map.
    fn decide_keyed<K: Hash>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        ask: Ask,
        now: Instant,
        t: u64,
    ) -> Decision {
        self.with_state(key, tier, now, t, |states| {
            self.decide_states(states, tier, ask, t)
        })
    }

    /// The pure decision over the states of one key: a single quota inline (one algorithm
    /// step), stacked quotas out of line.
    #[inline(always)]
    fn decide_states(
        &self,
        states: &KeyState<A::State>,
        tier: &Tier,
        ask: Ask,
        now: u64,
    ) -> Decision {
        // Zero in reject and shadow mode: no 128-bit conversion on that path.
        let max_wait = if ask.max_wait.is_zero() {
            0
        } else {
            nanos_of(ask.max_wait)
        };
        if let [quota] = tier.quotas() {
            let verdict = self
                .algorithm
                .acquire(&states.first, quota, ask.cost, now, max_wait);
            return to_decision(0, verdict);
        }
        self.decide_stacked(states, tier, ask.cost, now, max_wait)
    }

    /// The decision over stacked quotas, all or none charged.
    #[inline(never)]
    fn decide_stacked(
        &self,
        states: &KeyState<A::State>,
        tier: &Tier,
        cost: u32,
        now: u64,
        max_wait: u64,
    ) -> Decision {
        let a = &self.algorithm;
        let quotas = tier.quotas();
        // Stacked: check every quota first, so a refusal charges none of them.
        // A cost one quota can never admit is answered so, whatever the others say.
        if max_wait == 0 {
            let mut refused = None;
            for (i, quota) in quotas.iter().enumerate() {
                let Some(state) = states.get(i) else { break };
                let verdict = a.peek(state, quota, cost, now);
                if verdict.is_never_admissible() {
                    return to_decision(i, verdict);
                }
                if !verdict.is_admitted() && refused.is_none() {
                    refused = Some((i, verdict));
                }
            }
            if let Some((i, verdict)) = refused {
                return to_decision(i, verdict);
            }
        }
        // Commit each; if a concurrent request took the room meanwhile, give back what was taken.
        let mut report: Option<(usize, Verdict)> = None;
        let mut wait = 0;
        for (i, quota) in quotas.iter().enumerate() {
            let Some(state) = states.get(i) else { break };
            let verdict = a.acquire(state, quota, cost, now, max_wait);
            if !verdict.is_admitted() {
                for (j, quota) in quotas.iter().enumerate().take(i) {
                    if let Some(state) = states.get(j) {
                        a.release(state, quota, cost, now);
                    }
                }
                return to_decision(i, verdict);
            }
            wait = wait.max(verdict.wait());
            if report.is_none_or(|(_, r)| verdict.remaining() < r.remaining()) {
                report = Some((i, verdict));
            }
        }
        let (i, verdict) = report.unwrap_or((0, Verdict::admitted(0, 0, 0)));
        let (room, unit) = verdict.room();
        Decision::of(i, Verdict::admitted_in(wait, room, unit, verdict.reset()))
    }
}

const fn to_decision(policy: usize, v: Verdict) -> Decision {
    Decision::of(policy, v)
}

/// Answers at once, on this process's state (see [`MemoryStore::window_origin`] for where its
/// window edges fall).
impl<A: Algorithm, K: Hash> AdminStore<K> for MemoryStore<A> {
    fn peek(
        &self,
        key: &K,
        tier: &Tier,
    ) -> impl Future<Output = Result<Vec<Verdict>, BoxError>> + Send + use<A, K> {
        ready(Ok(self.peek_key(key, tier, Instant::now())))
    }

    fn forget(
        &self,
        key: &K,
        tier: &Tier,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send + use<A, K> {
        ready(Ok(Self::forget(self, key, tier)))
    }
}

impl<A: Algorithm, K: Hash> Store<K> for MemoryStore<A> {
    type Future = Ready<Result<Decision, BoxError>>;

    #[inline]
    fn decide(&self, key: Option<&K>, tier: &Tier, ask: Ask, now: Instant) -> Self::Future {
        ready(Ok(self.decide_at(key, tier, ask, now)))
    }

    /// Always answers: the limiter polls no future.
    #[inline(always)]
    fn decide_now(&self, key: Option<&K>, tier: &Tier, ask: Ask, plain: bool, now: Instant) -> Now {
        match tier.quotas() {
            [quota] if plain => self.admit_at(key, tier, quota, ask, now),
            _ => {
                // A stacked tier, or a limiter that reports its state: marked cold so that the
                // copy of `now` this arm keeps across the decision is spilled here, not on the
                // plain happy path above (the figure is in benches/README.md,
                // weir-rate-limit).
                cold();
                Now::Decided(Ok(self.decide_at(key, tier, ask, now)), now)
            }
        }
    }

    fn cancel(&self, key: Option<&K>, tier: &Tier, cost: u32, now: Instant) {
        let t = self.epoch.nanos(now);
        self.with_state(key, tier, now, t, |states| {
            for (i, quota) in tier.quotas().iter().enumerate() {
                if let Some(state) = states.get(i) {
                    self.algorithm.release(state, quota, cost, t);
                }
            }
        });
    }

    fn cancel_reserved(&self, key: Option<&K>, tier: &Tier, cost: u32, end: Instant, now: Instant) {
        let (t, end) = (self.epoch.nanos(now), self.epoch.nanos(end));
        self.with_state(key, tier, now, t, |states| {
            for (i, quota) in tier.quotas().iter().enumerate() {
                if let Some(state) = states.get(i) {
                    self.algorithm.release_reserved(state, quota, cost, end, t);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::TokenBucket;

    fn tier(quotas: Vec<Quota>) -> Tier {
        Tier::new(Name::default(), quotas)
    }

    fn ask() -> Ask {
        Ask {
            cost: 1,
            max_wait: Duration::ZERO,
        }
    }

    fn decide<A: Algorithm>(s: &MemoryStore<A>, key: u32, t: &Tier, now: Instant) -> Decision {
        s.decide(Some(&key), t, ask(), now)
            .into_inner()
            .expect("memory store never fails")
    }

    #[tokio::test(start_paused = true)]
    async fn stacked_quotas_charge_none_on_a_refusal() {
        let t = tier(vec![Quota::per_second(10), Quota::per_minute(3)]);
        let store = MemoryStore::new(Gcra, KeyedConfig::new(), &t);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(decide(&store, 1, &t, now).is_admitted());
        }
        let refused = decide(&store, 1, &t, now);
        assert!(!refused.is_admitted());
        assert_eq!(refused.policy(), 1);
        assert_eq!(refused.retry_after(), Duration::from_secs(20));
        // The per-second quota was not charged by the refusals: 7 units left.
        let key = 1u32;
        store.with_state(Some(&key), &t, now, nanos(now), |s| {
            let v = Gcra.peek(s.get(0).expect("first"), &t.quotas()[0], 1, nanos(now));
            assert_eq!(v.remaining(), 6);
        });
    }

    #[tokio::test(start_paused = true)]
    async fn the_reported_policy_is_the_one_with_fewest_units_left() {
        let t = tier(vec![Quota::per_second(10), Quota::per_minute(3)]);
        let store = MemoryStore::new(TokenBucket, KeyedConfig::new(), &t);
        let d = decide(&store, 1, &t, Instant::now());
        assert_eq!((d.policy(), d.remaining()), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_evicted_only_once_full_again() {
        let t = tier(vec![Quota::per_hour(1)]);
        let config = KeyedConfig::new().idle_timeout(Duration::from_secs(1));
        let store = MemoryStore::new(Gcra, config, &t);
        let start = Instant::now();
        decide(&store, 1, &t, start);
        assert_eq!(store.keys(), 1);
        // Idle for a minute, but the bucket is still empty: kept, still refused.
        for k in 2..200 {
            decide(&store, k, &t, start + Duration::from_secs(60));
        }
        assert!(!decide(&store, 1, &t, start + Duration::from_secs(61)).is_admitted());
        assert_eq!(store.keys(), 199);
        // After the hour every bucket is full: the sweeps riding on one client's requests evict
        // them all.
        let later = start + Duration::from_secs(3_700);
        for i in 0..300u32 {
            decide(&store, 1, &t, later + Duration::from_secs(u64::from(i) * 2));
        }
        assert_eq!(store.keys(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn single_and_stacked_keys_share_max_keys() {
        let single = tier(vec![Quota::per_second(1)]);
        let stacked = tier(vec![Quota::per_second(1), Quota::per_minute(2)]);
        let config = KeyedConfig::new()
            .max_keys(3)
            .idle_timeout(Duration::from_secs(1));
        let store = MemoryStore::new(Gcra, config, &single);
        let now = Instant::now();
        assert!(decide(&store, 1, &single, now).is_admitted());
        assert!(decide(&store, 2, &stacked, now).is_admitted());
        assert!(decide(&store, 3, &single, now).is_admitted());
        assert_eq!(store.keys(), 3);
        // Full: a fourth key of either kind shares an overflow state, stores nothing.
        assert!(decide(&store, 4, &stacked, now).is_admitted());
        assert!(
            !decide(&store, 5, &stacked, now).is_admitted(),
            "overflow charged"
        );
        assert_eq!(store.keys(), 3);
        // Each stored key kept its own states: key 2's per-minute quota has one unit left.
        let later = now + Duration::from_secs(2);
        assert!(decide(&store, 2, &stacked, later).is_admitted());
        let refused = decide(&store, 2, &stacked, later + Duration::from_secs(2));
        assert_eq!(refused.policy(), 1);
        // Once rested for the idle timeout, keys of both maps are evicted.
        let rested = later + Duration::from_secs(200);
        assert_eq!(
            store.keys.sweep_now(rested) + store.stacked.sweep_now(rested),
            3
        );
        assert_eq!((store.keys(), store.evicted()), (0, 3));
    }

    #[test]
    fn a_single_quota_gcra_key_costs_a_hash_and_a_state() {
        use std::sync::atomic::AtomicU64;

        // 8-byte hash + 8-byte state + a control byte, at the table's 7/8 load: governor's
        // keyed store (a `u64` key and an `AtomicU64` state) costs the same.
        type Keys = KeyedMap<u64, Single<AtomicU64>, Prehashed, ByState>;
        assert_eq!(Keys::bytes_per_key(), (8 + 8 + 1) * 8 / 7);
    }
}
