//! [`RedisStore`]: weir-rate-limit's [`Store`] on Redis.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::{Cmd, ErrorKind, RedisError, Script};
use tokio::time::Instant;
use weir_core::inspect::Snapshot;
use weir_core::{BoxError, Name, Observer};
use weir_rate_limit::{
    AdminStore, Ask, Decision, Gcra, InspectStore, MemoryStore, Quota, Store, Tier, Verdict,
};

use crate::connection::Connection;
use crate::event::{Event, Reason};
use crate::handle::{Health, RedisHandle};
use crate::key::{KeyDigest, RedisKey};
use crate::lease::{LeaseConfig, Leases, Take};
use crate::policy::{FailurePolicy, Share};
use crate::reserve::{Booked, Reservations};
use crate::script::RedisAlgorithm;

/// Everything the clones of a store share.
pub(crate) struct Shared<A: weir_rate_limit::Algorithm, O> {
    pub(crate) name: Name,
    pub(crate) conn: Arc<Connection>,
    pub(crate) script: Script,
    pub(crate) prefix: Box<[u8]>,
    pub(crate) timeout: Duration,
    pub(crate) probe_every: Duration,
    pub(crate) policy: FailurePolicy,
    /// The part of each quota the local fallback keeps.
    pub(crate) share: Share,
    pub(crate) local: Option<MemoryStore<A>>,
    pub(crate) observer: O,
    pub(crate) health: Arc<Health>,
    pub(crate) lease: Option<LeaseConfig>,
    pub(crate) leases: Leases,
    /// What each wait-mode reservation booked, for `cancel_reserved`.
    pub(crate) reservations: Reservations,
}

/// weir-rate-limit's [`Store`] on Redis: every decision is one Lua script, run atomically by
/// Redis on its own clock, so every instance sharing the Redis enforces one limit.
///
/// Plug it into a limiter with
/// [`RateLimitBuilder::build_with_store`](weir_rate_limit::RateLimitBuilder::build_with_store).
/// Clones share the connection, the counters and the local fallback.
pub struct RedisStore<A: RedisAlgorithm = Gcra, O = ()> {
    shared: Arc<Shared<A, O>>,
}

impl<A: RedisAlgorithm, O> Clone for RedisStore<A, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A: RedisAlgorithm, O> fmt::Debug for RedisStore<A, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("name", &self.shared.name)
            .field("algorithm", &A::TAG)
            .field("prefix", &String::from_utf8_lossy(&self.shared.prefix))
            .field("timeout", &self.shared.timeout)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

/// The future of one decision (drive it to completion: dropping it cancels the round trip): a round trip to Redis bounded by the store's timeout (boxed:
/// the round trip costs far more than the allocation), or the failure policy's answer.
#[must_use = "a decision does nothing unless polled"]
pub struct DecisionFuture(Pin<Box<dyn Future<Output = Result<Decision, BoxError>> + Send>>);

impl Future for DecisionFuture {
    type Output = Result<Decision, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for DecisionFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionFuture").finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn duration(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// A tier with `share` of every quota's rate and burst (rounded down, at least 1 each).
fn scaled(tier: &Tier, share: Share) -> Tier {
    Tier::new(
        Name::default(),
        tier.quotas().iter().map(|q| {
            Quota::new(share.part(q.rate()), q.period()).burst(share.part(q.burst_size()))
        }),
    )
}

impl<A: RedisAlgorithm, O> RedisStore<A, O> {
    pub(crate) fn from_shared(shared: Shared<A, O>) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// A handle on the store's counters.
    #[must_use]
    pub fn handle(&self) -> RedisHandle {
        RedisHandle {
            health: Arc::clone(&self.shared.health),
            conn: Arc::clone(&self.shared.conn),
        }
    }

    /// Where window edges fall: the windows of a quota of period `p` (fixed window,
    /// sliding-window counter, the token bucket's refills) start at `UNIX_EPOCH + k × p` on
    /// the Redis server's clock (its `TIME`), for every key and every instance alike, with `p`
    /// rounded up to a whole microsecond: a per-minute window starts on the minute, a daily one
    /// at 00:00 UTC. GCRA has no windows.
    #[must_use]
    pub const fn window_origin(&self) -> std::time::SystemTime {
        std::time::SystemTime::UNIX_EPOCH
    }

    /// The name of the Redis key holding quota `index` of `tier` for `key` (to inspect or
    /// delete it): `<prefix>{k:<digest>}:<tier>:<algorithm>:q<index>`, where
    /// the digest is 32 hex digits whatever the key's length (`{shared}` for key-less requests
    /// and `Global`).
    #[must_use]
    pub fn key_name<K: RedisKey>(&self, key: Option<&K>, tier: &Tier, index: usize) -> Vec<u8> {
        let mut out = self.base(&KeyDigest::of(key), tier);
        if index < tier.quotas().len() {
            quota_suffix(&mut out, index);
        }
        out
    }

    fn base(&self, key: &KeyDigest, tier: &Tier) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.shared.prefix.len() + 48 + tier.name().len());
        out.extend_from_slice(&self.shared.prefix);
        out.push(b'{');
        key.write_tag(&mut out);
        out.extend_from_slice(b"}:");
        out.extend_from_slice(tier.name().as_bytes());
        out.push(b':');
        out.extend_from_slice(A::TAG.as_bytes());
        out
    }

    /// The `EVALSHA` of one decision, give-back or read (`op`), on the keys starting with
    /// `base`.
    fn command(
        &self,
        base: &[u8],
        tier: &Tier,
        cost: u32,
        max_wait: Duration,
        time: Option<Duration>,
        op: Op,
    ) -> Cmd {
        let quotas = tier.quotas();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.shared.script.get_hash()).arg(quotas.len());
        for i in 0..quotas.len() {
            let mut k = base.to_vec();
            quota_suffix(&mut k, i);
            cmd.arg(k);
        }
        match time {
            Some(t) => cmd.arg(format!("{} {}", t.as_secs(), t.subsec_nanos())),
            None => cmd.arg(""),
        };
        cmd.arg(cost).arg(nanos(max_wait)).arg(op.as_arg());
        for q in quotas {
            for a in A::args(q) {
                cmd.arg(a);
            }
        }
        cmd
    }
}

/// What one run of the script does (its `ARGV[4]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Check and charge every quota.
    Decide,
    /// Give a reservation's units back.
    GiveBack,
    /// Read every quota's verdict on a request, writing nothing (an admin's read).
    Peek,
}

impl Op {
    const fn as_arg(self) -> &'static str {
        match self {
            Self::Decide => "1",
            Self::GiveBack => "0",
            Self::Peek => "2",
        }
    }
}

/// The end of a quota's key name: its place in the tier, not its numbers, so that a quota
/// applied at run time (`RateLimitHandle::apply`) finds the state its key already has.
fn quota_suffix(out: &mut Vec<u8>, index: usize) {
    use std::io::Write;
    let _ = write!(out, ":q{index}");
}

/// Where a decision's state lives: its key's digest and, on a Cluster, its slot.
struct Site {
    digest: KeyDigest,
    slot: Option<u16>,
}

/// The inputs of the local fallback, kept only under [`FailurePolicy::Local`].
struct LocalAsk<K> {
    key: Option<K>,
    tier: Tier,
    ask: Ask,
}

impl<A, O> RedisStore<A, O>
where
    A: RedisAlgorithm,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
{
    /// Decides at an explicit time, `unix` since the Unix epoch, instead of the Redis server's
    /// clock: for tests that compare the scripts with the in-memory algorithms, and for replays.
    /// Production code uses [`Store::decide`], which always uses the server's clock.
    pub fn decide_at<K>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        ask: Ask,
        unix: Duration,
    ) -> DecisionFuture
    where
        K: RedisKey + Hash + Clone + Send + Sync + 'static,
    {
        self.run(key, tier, ask, Some(unix), Instant::now())
    }

    /// One decision; `decided` is the instant the limiter reckons the decision's `reset` from
    /// (the `now` it passed to `decide`), so a reservation is remembered under the very `end`
    /// the limiter will hand to `cancel_reserved`.
    fn run<K>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        ask: Ask,
        time: Option<Duration>,
        decided: Instant,
    ) -> DecisionFuture
    where
        K: RedisKey + Hash + Clone + Send + Sync + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let local = shared.local.is_some().then(|| LocalAsk {
            key: key.cloned(),
            tier: tier.clone(),
            ask,
        });
        let now = Instant::now();
        // #28.2: one deadline for every call of this decision, so the timeout is the longest
        // it waits even when a refused batch is followed by a single request.
        let deadline = now + shared.timeout;
        let digest = KeyDigest::of(key);
        let base = self.base(&digest, tier);
        let unit = shared.conn.unit(&base);
        let site = Site {
            digest,
            slot: shared.conn.slot_of(unit),
        };
        if shared.health.skip(unit, now, shared.probe_every) {
            let decision = shared.fallback(Reason::Degraded, None, &site, local, &base, decided);
            return DecisionFuture(Box::pin(std::future::ready(decision)));
        }
        let lease = match shared.lease {
            Some(l) if time.is_none() && ask.max_wait.is_zero() && ask.cost <= l.batch => Some(l),
            _ => None,
        };
        let mut fetch = None;
        if let Some(l) = lease {
            match shared.leases.take(&base, ask.cost, now, shared.timeout) {
                Take::Spent(left) => {
                    shared.health.leased.fetch_add(1, Ordering::Relaxed);
                    let decision =
                        Decision::admitted(0, Duration::ZERO, u64::from(left), Duration::ZERO);
                    return DecisionFuture(Box::pin(std::future::ready(Ok(decision))));
                }
                // Off the lease's happy path: one fetch per batch.
                Take::Fetch => fetch = Some((base.clone(), l)),
                Take::Busy => {}
            }
        }
        let single = self.command(&base, tier, ask.cost, ask.max_wait, time, Op::Decide);
        let batch = fetch
            .as_ref()
            .map(|(base, l)| self.command(base, tier, l.batch, Duration::ZERO, time, Op::Decide));
        DecisionFuture(Box::pin(async move {
            if let (Some(cmd), Some((base, l))) = (batch, fetch) {
                let got = shared.call(unit, &cmd, deadline).await;
                match got.map(|(d, _)| d) {
                    Ok(d) if d.is_admitted() => {
                        let left = l.batch - ask.cost;
                        shared.leases.fill(&base, left, Instant::now() + l.ttl);
                        return Ok(Decision::admitted(
                            d.policy(),
                            Duration::ZERO,
                            u64::from(left),
                            d.reset(),
                        ));
                    }
                    // No room for a batch: decide this request alone, and the next ones too
                    // until a batch could fit (a batch above the burst never fits: try again
                    // after a lease's ttl).
                    Ok(d) => {
                        let wait = if d.is_never_admissible() {
                            l.ttl
                        } else {
                            d.retry_after()
                        };
                        shared.leases.no_batch_until(&base, Instant::now() + wait);
                    }
                    Err((reason, error)) => {
                        shared.leases.done(&base);
                        return shared.fallback(
                            reason,
                            error.as_ref(),
                            &site,
                            local,
                            &base,
                            decided,
                        );
                    }
                }
            }
            match shared.call(unit, &single, deadline).await {
                Ok((decision, booked)) => {
                    if decision.is_admitted() && !decision.wait().is_zero() {
                        let end = decided + decision.reset();
                        let booked = Booked::Redis(booked);
                        shared.reservations.book(&base, end, booked, Instant::now());
                    }
                    Ok(decision)
                }
                Err((reason, error)) => {
                    shared.fallback(reason, error.as_ref(), &site, local, &base, decided)
                }
            }
        }))
    }
}

/// The script's reply: the decision and, for a reservation, the value it wrote in each key.
fn parse(reply: &[redis::Value]) -> Option<(Decision, Box<[Box<[u8]>]>)> {
    let (head, booked) = reply.split_at_checked(6)?;
    let int = |v: &redis::Value| redis::from_redis_value::<i64>(v).ok();
    let [admitted, policy, wait, remaining, reset, retry] = [
        int(&head[0])?,
        int(&head[1])?,
        int(&head[2])?,
        int(&head[3])?,
        int(&head[4])?,
        int(&head[5])?,
    ];
    let policy = usize::try_from(policy).ok()?;
    let remaining = u64::try_from(remaining).unwrap_or(0);
    let decision = match admitted {
        1 => Decision::admitted(policy, duration(wait), remaining, duration(reset)),
        2 => Decision::never_admissible(policy, remaining, duration(reset)),
        _ => Decision::refused(policy, duration(retry), remaining, duration(reset)),
    };
    let booked = booked
        .iter()
        .map(|v| redis::from_redis_value::<Vec<u8>>(v).map(Vec::into_boxed_slice))
        .collect::<Result<_, _>>()
        .ok()?;
    Some((decision, booked))
}

impl<A, O> Shared<A, O>
where
    A: RedisAlgorithm,
    O: for<'a> Observer<Event<'a>>,
{
    /// One round trip, bounded by the decision's `deadline`; a failure is recorded and
    /// returned.
    async fn call(
        &self,
        unit: usize,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<(Decision, Box<[Box<[u8]>]>), (Reason, Option<RedisError>)> {
        let query = self.conn.query::<Vec<redis::Value>>(cmd, A::source());
        let reply = tokio::time::timeout_at(deadline, query).await;
        let failure = match reply {
            Ok(Ok(reply)) => match parse(&reply) {
                Some(decision) => {
                    self.answered(unit);
                    return Ok(decision);
                }
                None => (
                    Reason::Error,
                    Some(RedisError::from((
                        ErrorKind::TypeError,
                        "unexpected reply from the weir script",
                    ))),
                ),
            },
            Ok(Err(error)) => (Reason::Error, Some(error)),
            Err(_) => (Reason::Timeout, None),
        };
        self.failed(unit);
        Err(failure)
    }

    fn failed(&self, unit: usize) {
        let now = Instant::now();
        // #28.1: a unit that fails again (its probe, or a request in flight when it first
        // failed) may be a node that hangs while the Cluster has moved its slots elsewhere,
        // or a server behind an address that changed: rebuild the connection, in the
        // background.
        let again = self.health.is_down(unit);
        self.health.failed(unit, now, self.probe_every);
        if again && self.conn.start_rebuild(now, self.probe_every) {
            rebuild(&self.conn, &self.health);
        }
    }

    fn answered(&self, unit: usize) {
        let now = Instant::now();
        let Some(outage) = self.health.answered(unit, now) else {
            return;
        };
        // #28.3: a Cluster node coming back ends the outage of each of its slots: reported
        // together, at most once a second and when the last one is back.
        if let Some((slots, longest)) = self.health.recovery(now, outage) {
            tracing::info!(
                target: "weir",
                store = %self.name,
                outage_ms = longest.as_millis(),
                slots,
                degraded = self.health.is_degraded(),
                "redis answers again: decisions are global again"
            );
            self.observer.on_event(&Event::Recovered {
                store: &self.name,
                outage: longest,
                slots,
            });
        }
    }

    /// One decision by the failure policy: counted, observed, logged (at most once a second).
    /// A reservation in the local fallback is remembered under `base` and the `end` the limiter
    /// reckons from `decided`, with the local decision's own end.
    fn fallback<K: Hash>(
        &self,
        reason: Reason,
        error: Option<&RedisError>,
        site: &Site,
        local: Option<LocalAsk<K>>,
        base: &[u8],
        decided: Instant,
    ) -> Result<Decision, BoxError> {
        self.health.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.observer.on_event(&Event::Fallback {
            store: &self.name,
            policy: self.policy,
            reason,
            key: site.digest.as_str(),
            slot: site.slot,
        });
        if let Some(suppressed) = self.health.should_log(Instant::now()) {
            tracing::warn!(
                target: "weir",
                store = %self.name,
                policy = self.policy.as_str(),
                reason = reason.as_str(),
                key = site.digest.as_str(),
                slot = site.slot,
                error = error.map(tracing::field::display),
                suppressed,
                "redis unavailable: rate-limit decision made by the failure policy"
            );
        }
        match (&self.local, local) {
            (Some(store), Some(ask)) => {
                let now = Instant::now();
                let tier = scaled(&ask.tier, self.share);
                let decision = store
                    .decide(ask.key.as_ref(), &tier, ask.ask, now)
                    .into_inner();
                if let Ok(d) = &decision
                    && d.is_admitted()
                    && !d.wait().is_zero()
                {
                    let booked = Booked::Local(now + d.reset());
                    self.reservations
                        .book(base, decided + d.reset(), booked, now);
                }
                decision
            }
            _ if self.policy == FailurePolicy::FailClosed => {
                Ok(Decision::refused(0, self.probe_every, 0, Duration::ZERO))
            }
            _ => Ok(Decision::admitted(0, Duration::ZERO, 0, Duration::ZERO)),
        }
    }
}

/// Rebuilds the connection on the current Tokio runtime; once in place, every unit in an
/// outage is probed by its next request instead of waiting for its probe time.
fn rebuild(conn: &Arc<Connection>, health: &Arc<Health>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        conn.rebuilt();
        return;
    };
    let (conn, health) = (Arc::clone(conn), Arc::clone(health));
    runtime.spawn(async move {
        let done = conn.rebuild().await;
        conn.rebuilt();
        match done {
            Ok(()) => health.probe_now(),
            Err(error) => tracing::debug!(
                target: "weir",
                %error,
                "rebuilding the redis connection failed: the current one stays"
            ),
        }
    });
}

/// A limiter on this store can be registered on a status page
/// (`RateLimitBuilder::build_with_store_registered`): its snapshot adds gauge `degraded` (1
/// while Redis, or a Cluster slot, is in an outage) and counters `redis_decisions`,
/// `leased`, `fallbacks` (decided by the failure policy) and `redis_errors`, this
/// instance's, read from memory.
impl<A, O> InspectStore for RedisStore<A, O>
where
    A: RedisAlgorithm,
    O: Send + Sync + 'static,
{
    fn inspect(&self, shown: Snapshot) -> Snapshot {
        let handle = self.handle();
        shown
            .gauge("degraded", if handle.is_degraded() { 1.0 } else { 0.0 })
            .counter("redis_decisions", handle.decisions())
            .counter("leased", handle.leased())
            .counter("fallbacks", handle.fallbacks())
            .counter("redis_errors", handle.errors())
    }
}

impl<K, A, O> Store<K> for RedisStore<A, O>
where
    K: RedisKey + Hash + Clone + Send + Sync + 'static,
    A: RedisAlgorithm,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
{
    type Future = DecisionFuture;

    /// Runs the algorithm's script; Redis's `TIME` decides, `now` only names the reservation
    /// (see [`cancel_reserved`](Store::cancel_reserved)).
    fn decide(&self, key: Option<&K>, tier: &Tier, ask: Ask, now: Instant) -> DecisionFuture {
        self.run(key, tier, ask, None, now)
    }

    /// Without knowing what the reservation booked, gives back nothing in Redis with GCRA and
    /// the token bucket (giving back a turn in the middle of the queue would book two later
    /// requests on one instant), the units with the windows (fire and forget, on the current
    /// Tokio runtime), and the units in the local fallback during an outage. The limiter calls
    /// [`cancel_reserved`](Store::cancel_reserved).
    fn cancel(&self, key: Option<&K>, tier: &Tier, cost: u32, now: Instant) {
        let base = self.base(&KeyDigest::of(key), tier);
        let unit = self.shared.conn.unit(&base);
        if self.shared.health.is_down(unit) {
            if let Some(local) = &self.shared.local {
                local.cancel(key, &scaled(tier, self.shared.share), cost, now);
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cmd = self.command(&base, tier, cost, Duration::ZERO, None, Op::GiveBack);
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            let query = shared.conn.query::<redis::Value>(&cmd, A::source());
            let _ = tokio::time::timeout(shared.timeout, query).await;
        });
    }

    /// Gives a reservation back where it is still the last one booked (#15.4): in Redis, in each
    /// quota's key that still holds the value the reservation wrote (GCRA, token bucket; fire
    /// and forget, on the current Tokio runtime); in the local fallback, for a reservation it
    /// made, through its own `cancel_reserved`. A reservation the store does not remember
    /// (more than 65 536 at once, another instance's) is not given back: a dropped turn goes
    /// unused, never booked twice.
    fn cancel_reserved(&self, key: Option<&K>, tier: &Tier, cost: u32, end: Instant, now: Instant) {
        let base = self.base(&KeyDigest::of(key), tier);
        match self.shared.reservations.take(&base, end) {
            Some(Booked::Redis(booked)) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let mut cmd = self.command(&base, tier, cost, Duration::ZERO, None, Op::GiveBack);
                for value in &booked {
                    cmd.arg(&**value);
                }
                let shared = Arc::clone(&self.shared);
                runtime.spawn(async move {
                    let query = shared.conn.query::<redis::Value>(&cmd, A::source());
                    let _ = tokio::time::timeout(shared.timeout, query).await;
                });
            }
            Some(Booked::Local(local_end)) => {
                if let Some(local) = &self.shared.local {
                    let tier = scaled(tier, self.shared.share);
                    local.cancel_reserved(key, &tier, cost, local_end, now);
                }
            }
            Some(Booked::Ambiguous) | None => {}
        }
    }
}

/// The admin's read and reset (see
/// [`RateLimitHandle::remaining_async`](weir_rate_limit::RateLimitHandle::remaining_async)):
/// one round trip each on the keys the limiter uses (same prefix, hash tag and digest, so one
/// Cluster slot), bounded by the store's timeout, on the state every instance shares.
///
/// Neither goes to the failure policy nor counts toward the store's health: Redis unreachable
/// or silent past the timeout is an error (a [`RedisError`], boxed), never a made-up answer.
impl<K, A, O> AdminStore<K> for RedisStore<A, O>
where
    K: RedisKey + Hash + Clone + Send + Sync + 'static,
    A: RedisAlgorithm,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
{
    /// Runs the algorithm's script in its read mode: each quota's verdict on a request of one
    /// unit on Redis's clock, nothing written (not even a TTL).
    fn peek(
        &self,
        key: &K,
        tier: &Tier,
    ) -> impl Future<Output = Result<Vec<Verdict>, BoxError>> + Send + use<K, A, O> {
        let base = self.base(&KeyDigest::of(Some(key)), tier);
        let cmd = self.command(&base, tier, 1, Duration::ZERO, None, Op::Peek);
        let quotas = tier.quotas().len();
        let shared = Arc::clone(&self.shared);
        async move {
            let reply = shared.admin::<Vec<redis::Value>>(&cmd).await?;
            parse_peek(&reply, quotas).ok_or_else(|| {
                RedisError::from((
                    ErrorKind::TypeError,
                    "unexpected reply from the weir script",
                ))
                .into()
            })
        }
    }

    /// Deletes the key's state in every quota of `tier` (one `DEL` of keys in one slot); also
    /// drops this instance's lease of the key and its state in the local fallback.
    fn forget(
        &self,
        key: &K,
        tier: &Tier,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send + use<K, A, O> {
        let base = self.base(&KeyDigest::of(Some(key)), tier);
        self.shared.leases.forget(&base);
        let local = self.shared.local.as_ref().map(|local| {
            let tier = scaled(tier, self.shared.share);
            AdminStore::forget(local, key, &tier)
        });
        let mut cmd = redis::cmd("DEL");
        for i in 0..tier.quotas().len() {
            let mut k = base.clone();
            quota_suffix(&mut k, i);
            cmd.arg(k);
        }
        let shared = Arc::clone(&self.shared);
        async move {
            if let Some(local) = local {
                // The in-memory store answers at once, and never with an error.
                let _ = local.await;
            }
            let deleted = shared.admin::<u64>(&cmd).await?;
            Ok(deleted > 0)
        }
    }
}

/// The reply of a read: four numbers per quota (admitted, remaining, reset, retry-after).
fn parse_peek(reply: &[redis::Value], quotas: usize) -> Option<Vec<Verdict>> {
    if reply.len() != quotas * 4 {
        return None;
    }
    let int = |v: &redis::Value| redis::from_redis_value::<i64>(v).ok();
    let non_negative = |v: &redis::Value| int(v).map(|n| u64::try_from(n).unwrap_or(0));
    reply
        .chunks_exact(4)
        .map(|q| {
            let (remaining, reset) = (non_negative(&q[1])?, non_negative(&q[2])?);
            Some(match int(&q[0])? {
                1 => Verdict::admitted(0, remaining, reset),
                2 => Verdict::never(remaining, reset),
                _ => Verdict::refused(non_negative(&q[3])?, remaining, reset),
            })
        })
        .collect()
}

impl<A: RedisAlgorithm, O> Shared<A, O> {
    /// One admin round trip, bounded by the store's timeout; no failure policy, no health.
    async fn admin<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, BoxError> {
        let query = self.conn.query::<T>(cmd, A::source());
        match tokio::time::timeout(self.timeout, query).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(RedisError::from((
                ErrorKind::IoError,
                "redis did not answer within the store's timeout",
            ))
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_and_its_future_are_send_sync_and_unpin() {
        fn store<T: Clone + Send + Sync + 'static>() {}
        fn future<T: Future + Send + Unpin + 'static>() {}
        store::<RedisStore>();
        store::<RedisStore<weir_rate_limit::SlidingWindow, fn(&Event<'_>)>>();
        future::<DecisionFuture>();
    }

    /// #15.15: the client's key is written as a fixed-size digest, inside the hash tag.
    #[test]
    fn keys_carry_the_prefix_a_hash_tag_the_tier_and_the_quota() {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .prefix("app:")
            .build()
            .expect("valid config");
        let tier = Tier::new(
            "gold",
            [Quota::per_second(10), Quota::per_day(1_000).burst(50)],
        );
        let ip: std::net::IpAddr = [10, 0, 0, 1].into();
        let key = |k: Option<&std::net::IpAddr>, i| {
            String::from_utf8(store.key_name(k, &tier, i)).expect("utf-8")
        };
        // SHA-1("10.0.0.1") starts with ed1665c1...: its first 128 bits name the key.
        assert_eq!(
            key(Some(&ip), 0),
            "app:{k:ed1665c190146c4dcb8eb871f1d2499d}:gold:g:q0"
        );
        assert_eq!(
            key(Some(&ip), 1),
            "app:{k:ed1665c190146c4dcb8eb871f1d2499d}:gold:g:q1"
        );
        // A 64 KiB client key gives a name of the same length as any other.
        let long = "k".repeat(65_536);
        let name = store.key_name(Some(&long), &tier, 0);
        assert_eq!(name.len(), key(Some(&ip), 0).len());
        assert_eq!(key(None, 0), "app:{shared}:gold:g:q0");
        // `Global`'s key `()` is the shared state too.
        let global = String::from_utf8(store.key_name(Some(&()), &tier, 0)).expect("utf-8");
        assert_eq!(global, "app:{shared}:gold:g:q0");
    }

    /// #15.16: an instance's share never exceeds `1 / n` of a rate or a burst (rounded down,
    /// at least 1), so `n` instances together stay within the limit.
    #[test]
    fn the_local_share_scales_rate_and_burst_down_to_at_least_one() {
        let tier = Tier::new("t", [Quota::per_second(10).burst(3), Quota::per_minute(1)]);
        let half = scaled(&tier, Share::Fraction(0.5));
        let q = half.quotas();
        assert_eq!((q[0].rate(), q[0].burst_size()), (5, 1));
        assert_eq!((q[1].rate(), q[1].burst_size()), (1, 1));
        assert_eq!(q[1].period(), Duration::from_secs(60));
        // Thirds of 100 and of 30: three instances admit 99 and 30, never more.
        let tier = Tier::new("t", [Quota::per_hour(100).burst(30)]);
        let third = scaled(&tier, Share::Instances(3));
        assert_eq!(
            (third.quotas()[0].rate(), third.quotas()[0].burst_size()),
            (33, 10)
        );
        // Fractions that floating point writes a hair above or below their value.
        assert_eq!(Share::Fraction(0.1).part(30), 3);
        assert_eq!(Share::Fraction(0.3).part(10), 3);
        assert_eq!(Share::Fraction(1.0).part(u32::MAX), u32::MAX);
        for n in [1, 2, 7, 100, 1_000, u32::MAX] {
            for k in 1..=7 {
                let part = Share::Instances(k).part(n);
                assert!(u64::from(part) * u64::from(k) <= u64::from(n).max(u64::from(k)));
            }
        }
    }
}
