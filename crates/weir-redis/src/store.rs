//! [`RedisStore`]: weir-rate-limit's [`Store`] on Redis.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script};
use tokio::time::Instant;
use weir_core::{BoxError, Name, Observer};
use weir_rate_limit::{Ask, Decision, Gcra, MemoryStore, Quota, Store, Tier};

use crate::builder::RedisStoreBuilder;
use crate::event::{Event, Reason};
use crate::handle::{Health, RedisHandle};
use crate::key::RedisKey;
use crate::lease::{LeaseConfig, Leases, Take};
use crate::policy::FailurePolicy;
use crate::script::RedisAlgorithm;

/// The connection, made on first use (so a store can be built while Redis is down), then
/// shared by every clone: redis-rs's `ConnectionManager` on one server (it reconnects by
/// itself), or its Cluster connection (slot routing, `MOVED`/`ASK`, reconnects per node). After
/// the first connection the cell is read without a lock.
pub(crate) enum Connection {
    Single {
        client: Client,
        config: ConnectionManagerConfig,
        manager: tokio::sync::OnceCell<ConnectionManager>,
    },
    Cluster {
        client: ClusterClient,
        conn: tokio::sync::OnceCell<ClusterConnection>,
    },
}

impl Connection {
    pub(crate) fn single(client: Client, config: ConnectionManagerConfig) -> Self {
        Self::Single {
            client,
            config,
            manager: tokio::sync::OnceCell::new(),
        }
    }

    pub(crate) fn cluster(client: ClusterClient) -> Self {
        Self::Cluster {
            client,
            conn: tokio::sync::OnceCell::new(),
        }
    }

    /// How many units fail independently: one server, or a Cluster's slots.
    pub(crate) const fn units(&self) -> usize {
        match self {
            Self::Single { .. } => 1,
            Self::Cluster { .. } => SLOTS,
        }
    }

    /// The unit of a key: 0 on one server, its Cluster slot otherwise.
    fn unit(&self, key: &[u8]) -> usize {
        match self {
            Self::Single { .. } => 0,
            Self::Cluster { .. } => slot(key),
        }
    }

    /// Runs `cmd` (an `EVALSHA`); on `NOSCRIPT` runs it as `EVAL` with the script's source,
    /// which Redis caches: routed by the keys like the `EVALSHA`, so it reloads the script on
    /// the one node that lacks it (a `SCRIPT LOAD` would go to every node of a Cluster, and fail
    /// while any of them is down).
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd, source: &str) -> RedisResult<T> {
        match self {
            Self::Single {
                client,
                config,
                manager,
            } => {
                let mut conn = manager
                    .get_or_try_init(|| {
                        ConnectionManager::new_with_config(client.clone(), config.clone())
                    })
                    .await?
                    .clone();
                match cmd.query_async(&mut conn).await {
                    Err(e) if e.kind() == ErrorKind::NoScriptError => {
                        eval(cmd, source).query_async(&mut conn).await
                    }
                    other => other,
                }
            }
            Self::Cluster { client, conn } => {
                let mut conn = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?
                    .clone();
                match cmd.query_async(&mut conn).await {
                    Err(e) if e.kind() == ErrorKind::NoScriptError => {
                        eval(cmd, source).query_async(&mut conn).await
                    }
                    other => other,
                }
            }
        }
    }
}

/// The `EVAL` twin of an `EVALSHA` command: the source instead of the hash, the same keys and
/// arguments.
fn eval(evalsha: &Cmd, source: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source);
    for arg in evalsha.args_iter().skip(2) {
        if let redis::Arg::Simple(bytes) = arg {
            cmd.arg(bytes);
        }
    }
    cmd
}

/// Redis Cluster's slot count.
const SLOTS: usize = 16_384;

/// The Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the bytes between the first `{`
/// and the next `}`, when not empty), else of the whole key, modulo 16 384.
fn slot(key: &[u8]) -> usize {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    usize::from(crc16(tagged.unwrap_or(key))) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

/// Everything the clones of a store share.
pub(crate) struct Shared<A: weir_rate_limit::Algorithm, O> {
    pub(crate) name: Name,
    pub(crate) conn: Connection,
    pub(crate) script: Script,
    pub(crate) prefix: Box<[u8]>,
    pub(crate) timeout: Duration,
    pub(crate) probe_every: Duration,
    pub(crate) policy: FailurePolicy,
    pub(crate) local: Option<MemoryStore<A>>,
    pub(crate) observer: O,
    pub(crate) health: Arc<Health>,
    pub(crate) lease: Option<LeaseConfig>,
    pub(crate) leases: Leases,
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

impl RedisStore {
    /// A builder for a store on the Redis at `url` (`redis://127.0.0.1:6379`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into())
    }

    /// A builder for a store on a Redis Cluster, given the URLs of some of its nodes
    /// (`redis://10.0.0.1:6379`, ...): the store learns the others and the slot map from them,
    /// sends each decision to the node owning its slot, and follows `MOVED` and `ASK`.
    /// Every option of [`builder`](Self::builder) applies; the failure policy is then per
    /// slot: a dead node sends only the decisions of its own keys to the policy.
    pub fn cluster<I>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisStoreBuilder::new_cluster(urls.into_iter().map(Into::into).collect())
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

/// A tier with `share` of every quota's rate and burst (at least 1 each).
fn scaled(tier: &Tier, share: f64) -> Tier {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "share is in (0, 1]: the product lies in [0, u32::MAX]"
    )]
    let part = |n: u32| ((f64::from(n) * share).round() as u32).max(1);
    Tier::new(
        Name::default(),
        tier.quotas()
            .iter()
            .map(|q| Quota::new(part(q.rate()), q.period()).burst(part(q.burst_size()))),
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
        }
    }

    /// The name of the Redis key holding quota `index` of `tier` for `key` (to inspect or
    /// delete it).
    #[must_use]
    pub fn key_name<K: RedisKey>(&self, key: Option<&K>, tier: &Tier, index: usize) -> Vec<u8> {
        let mut out = self.base(key, tier);
        if let Some(q) = tier.quotas().get(index) {
            quota_suffix(&mut out, q);
        }
        out
    }

    fn base<K: RedisKey>(&self, key: Option<&K>, tier: &Tier) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.shared.prefix.len() + 48);
        out.extend_from_slice(&self.shared.prefix);
        match key {
            // A zero-sized key (`()`, from `Global`) has one value: the shared state.
            Some(k) if size_of::<K>() != 0 => {
                out.extend_from_slice(b"{k:");
                k.write_key(&mut out);
            }
            _ => out.extend_from_slice(b"{shared"),
        }
        out.extend_from_slice(b"}:");
        out.extend_from_slice(tier.name().as_bytes());
        out.push(b':');
        out.extend_from_slice(A::TAG.as_bytes());
        out
    }

    /// The `EVALSHA` of one decision (`decide`) or give-back.
    fn command<K: RedisKey>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        cost: u32,
        max_wait: Duration,
        time: Option<Duration>,
        decide: bool,
    ) -> Cmd {
        let quotas = tier.quotas();
        let base = self.base(key, tier);
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.shared.script.get_hash()).arg(quotas.len());
        for q in quotas {
            let mut k = base.clone();
            quota_suffix(&mut k, q);
            cmd.arg(k);
        }
        match time {
            Some(t) => cmd.arg(format!("{} {}", t.as_secs(), t.subsec_nanos())),
            None => cmd.arg(""),
        };
        cmd.arg(cost)
            .arg(nanos(max_wait))
            .arg(if decide { "1" } else { "0" });
        for q in quotas {
            for a in A::args(q) {
                cmd.arg(a);
            }
        }
        cmd
    }
}

fn quota_suffix(out: &mut Vec<u8>, q: &Quota) {
    use std::io::Write;
    let _ = write!(
        out,
        ":{}/{}/{}",
        q.rate(),
        nanos(q.period()),
        q.burst_size()
    );
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
        self.run(key, tier, ask, Some(unix))
    }

    fn run<K>(
        &self,
        key: Option<&K>,
        tier: &Tier,
        ask: Ask,
        time: Option<Duration>,
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
        let base = self.base(key, tier);
        let unit = shared.conn.unit(&base);
        if shared.health.skip(unit, now, shared.probe_every) {
            let decision = shared.fallback(Reason::Degraded, None, local);
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
                Take::Fetch => fetch = Some((base, l)),
                Take::Busy => {}
            }
        }
        let single = self.command(key, tier, ask.cost, ask.max_wait, time, true);
        let batch = fetch
            .as_ref()
            .map(|(_, l)| self.command(key, tier, l.batch, Duration::ZERO, time, true));
        DecisionFuture(Box::pin(async move {
            if let (Some(cmd), Some((base, l))) = (batch, fetch) {
                let got = shared.call(unit, &cmd).await;
                match got {
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
                    // until a batch could fit.
                    Ok(d) => shared
                        .leases
                        .no_batch_until(&base, Instant::now() + d.retry_after()),
                    Err((reason, error)) => {
                        shared.leases.done(&base);
                        return shared.fallback(reason, error.as_ref(), local);
                    }
                }
            }
            match shared.call(unit, &single).await {
                Ok(decision) => Ok(decision),
                Err((reason, error)) => shared.fallback(reason, error.as_ref(), local),
            }
        }))
    }
}

fn parse(reply: &[i64]) -> Option<Decision> {
    let [admitted, policy, wait, remaining, reset, retry] = *reply else {
        return None;
    };
    let policy = usize::try_from(policy).ok()?;
    let remaining = u64::try_from(remaining).unwrap_or(0);
    Some(if admitted == 1 {
        Decision::admitted(policy, duration(wait), remaining, duration(reset))
    } else {
        Decision::refused(policy, duration(retry), remaining, duration(reset))
    })
}

impl<A, O> Shared<A, O>
where
    A: RedisAlgorithm,
    O: for<'a> Observer<Event<'a>>,
{
    /// One round trip, bounded by the timeout; a failure is recorded and returned.
    async fn call(&self, unit: usize, cmd: &Cmd) -> Result<Decision, (Reason, Option<RedisError>)> {
        let query = self.conn.query::<Vec<i64>>(cmd, A::source());
        let reply = tokio::time::timeout(self.timeout, query).await;
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
        self.health.failed(unit, Instant::now(), self.probe_every);
    }

    fn answered(&self, unit: usize) {
        let now = Instant::now();
        if let Some(outage) = self.health.answered(unit, now) {
            if let Some(suppressed) = self.health.should_log_recovery(now) {
                tracing::info!(
                    target: "weir",
                    store = %self.name,
                    outage_ms = outage.as_millis(),
                    suppressed,
                    "redis answers again: decisions are global again"
                );
            }
            self.observer.on_event(&Event::Recovered {
                store: &self.name,
                outage,
            });
        }
    }

    /// One decision by the failure policy: counted, observed, logged (at most once a second).
    fn fallback<K: Hash>(
        &self,
        reason: Reason,
        error: Option<&RedisError>,
        local: Option<LocalAsk<K>>,
    ) -> Result<Decision, BoxError> {
        self.health.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.observer.on_event(&Event::Fallback {
            store: &self.name,
            policy: self.policy,
            reason,
        });
        if let Some(suppressed) = self.health.should_log(Instant::now()) {
            tracing::warn!(
                target: "weir",
                store = %self.name,
                policy = self.policy.as_str(),
                reason = reason.as_str(),
                error = error.map(tracing::field::display),
                suppressed,
                "redis unavailable: rate-limit decision made by the failure policy"
            );
        }
        match (self.policy, &self.local, local) {
            (FailurePolicy::Local(share), Some(store), Some(ask)) => store
                .decide(
                    ask.key.as_ref(),
                    &scaled(&ask.tier, share),
                    ask.ask,
                    Instant::now(),
                )
                .into_inner(),
            (FailurePolicy::FailClosed, ..) => {
                Ok(Decision::refused(0, self.probe_every, 0, Duration::ZERO))
            }
            _ => Ok(Decision::admitted(0, Duration::ZERO, 0, Duration::ZERO)),
        }
    }
}

impl<K, A, O> Store<K> for RedisStore<A, O>
where
    K: RedisKey + Hash + Clone + Send + Sync + 'static,
    A: RedisAlgorithm,
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
{
    type Future = DecisionFuture;

    /// Runs the algorithm's script; `now` is not used (Redis's `TIME` decides).
    fn decide(&self, key: Option<&K>, tier: &Tier, ask: Ask, _now: Instant) -> DecisionFuture {
        self.run(key, tier, ask, None)
    }

    /// Gives the units back in Redis (fire and forget, on the current Tokio runtime), and in
    /// the local fallback during an outage.
    fn cancel(&self, key: Option<&K>, tier: &Tier, cost: u32, now: Instant) {
        let unit = self.shared.conn.unit(&self.base(key, tier));
        if self.shared.health.is_down(unit) {
            if let (FailurePolicy::Local(share), Some(local)) =
                (self.shared.policy, &self.shared.local)
            {
                local.cancel(key, &scaled(tier, share), cost, now);
            }
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cmd = self.command(key, tier, cost, Duration::ZERO, None, false);
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            let query = shared.conn.query::<redis::Value>(&cmd, A::source());
            let _ = tokio::time::timeout(shared.timeout, query).await;
        });
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
        assert_eq!(
            key(Some(&ip), 0),
            "app:{k:10.0.0.1}:gold:g:10/1000000000/10"
        );
        assert_eq!(
            key(Some(&ip), 1),
            "app:{k:10.0.0.1}:gold:g:1000/86400000000000/50"
        );
        assert_eq!(key(None, 0), "app:{shared}:gold:g:10/1000000000/10");
        // `Global`'s key `()` is the shared state too.
        let global = String::from_utf8(store.key_name(Some(&()), &tier, 0)).expect("utf-8");
        assert_eq!(global, "app:{shared}:gold:g:10/1000000000/10");
    }

    #[test]
    fn build_checks_every_rule() {
        use crate::ConfigError;
        let err = |b: RedisStoreBuilder| b.build().err();
        let b = || RedisStore::builder("redis://127.0.0.1:6379");
        assert_eq!(
            err(RedisStore::builder("nope")),
            Some(ConfigError::InvalidUrl)
        );
        assert_eq!(
            err(b().timeout(Duration::ZERO)),
            Some(ConfigError::ZeroTimeout)
        );
        assert_eq!(
            err(b().probe_every(Duration::ZERO)),
            Some(ConfigError::ZeroProbeInterval)
        );
        for share in [0.0, 1.5, f64::NAN] {
            assert_eq!(
                err(b().failure_policy(FailurePolicy::Local(share))),
                Some(ConfigError::ShareOutOfRange)
            );
        }
        assert_eq!(err(b().prefix("a{b")), Some(ConfigError::BracesInPrefix));
        assert_eq!(
            err(b().lease(0, Duration::from_secs(1))),
            Some(ConfigError::ZeroLease)
        );
        assert!(b().lease(10, Duration::from_secs(1)).build().is_ok());
        assert_eq!(
            ConfigError::ZeroTimeout.to_string(),
            "timeout must be longer than zero"
        );
    }

    #[test]
    fn slots_follow_redis_cluster_keyslot() {
        // The values of `CLUSTER KEYSLOT` on redis-server 7.
        let cases: [(&[u8], usize); 6] = [
            (b"foo", 12_182),
            (b"123456789", 12_739),
            (b"{user1000}.following", 3_443),
            (b"foo{}{bar}", 8_363),
            (b"foo{{bar}}zap", 4_015),
            (b"weir:{k:1}:default:g:10/3600000000000/10", 10_166),
        ];
        for (key, expected) in cases {
            assert_eq!(slot(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn the_local_share_scales_rate_and_burst_to_at_least_one() {
        let tier = Tier::new("t", [Quota::per_second(10).burst(3), Quota::per_minute(1)]);
        let half = scaled(&tier, 0.5);
        let q = half.quotas();
        assert_eq!((q[0].rate(), q[0].burst_size()), (5, 2));
        assert_eq!((q[1].rate(), q[1].burst_size()), (1, 1));
        assert_eq!(q[1].period(), Duration::from_secs(60));
    }
}
