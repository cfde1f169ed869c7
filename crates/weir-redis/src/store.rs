//! [`RedisStore`]: weir-rate-limit's [`Store`] on Redis.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Cmd, ErrorKind, RedisError, Script, ServerErrorKind};
use tokio::time::Instant;
use weir_core::{BoxError, Name, Observer};
use weir_rate_limit::{Ask, Decision, Gcra, MemoryStore, Quota, Store, Tier};

use crate::builder::RedisStoreBuilder;
use crate::event::{Event, Reason};
use crate::handle::{Health, RedisHandle};
use crate::key::RedisKey;
use crate::policy::FailurePolicy;
use crate::script::RedisAlgorithm;

/// Everything the clones of a store share.
pub(crate) struct Shared<A: weir_rate_limit::Algorithm, O> {
    pub(crate) name: Name,
    pub(crate) conn: ConnectionManager,
    pub(crate) script: Script,
    pub(crate) prefix: Box<[u8]>,
    pub(crate) timeout: Duration,
    pub(crate) probe_every: Duration,
    pub(crate) policy: FailurePolicy,
    pub(crate) local: Option<MemoryStore<A>>,
    pub(crate) observer: O,
    pub(crate) health: Arc<Health>,
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
}

/// The future of one decision: a round trip to Redis bounded by the store's timeout (boxed:
/// the round trip costs far more than the allocation), or the failure policy's answer.
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

    fn run<K>(&self, key: Option<&K>, tier: &Tier, ask: Ask, time: Option<Duration>) -> DecisionFuture
    where
        K: RedisKey + Hash + Clone + Send + Sync + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let local = shared.local.is_some().then(|| LocalAsk {
            key: key.cloned(),
            tier: tier.clone(),
            ask,
        });
        if shared.health.skip(Instant::now(), shared.probe_every) {
            let decision = shared.fallback(Reason::Degraded, None, local);
            return DecisionFuture(Box::pin(std::future::ready(decision)));
        }
        let cmd = self.command(key, tier, ask.cost, ask.max_wait, time, true);
        DecisionFuture(Box::pin(async move {
            let mut conn = shared.conn.clone();
            let reply = tokio::time::timeout(shared.timeout, query(&cmd, &shared.script, &mut conn));
            match reply.await {
                Ok(Ok(reply)) => match parse(&reply) {
                    Some(decision) => {
                        shared.answered();
                        Ok(decision)
                    }
                    None => {
                        let error = RedisError::from((
                            ErrorKind::Parse,
                            "unexpected reply from the weir script",
                        ));
                        shared.failed();
                        shared.fallback(Reason::Error, Some(&error), local)
                    }
                },
                Ok(Err(error)) => {
                    shared.failed();
                    shared.fallback(Reason::Error, Some(&error), local)
                }
                Err(_) => {
                    shared.failed();
                    shared.fallback(Reason::Timeout, None, local)
                }
            }
        }))
    }
}

async fn query(cmd: &Cmd, script: &Script, conn: &mut ConnectionManager) -> Result<Vec<i64>, RedisError> {
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        other => other,
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
    fn failed(&self) {
        self.health.failed(Instant::now(), self.probe_every);
    }

    fn answered(&self) {
        if let Some(outage) = self.health.answered(Instant::now()) {
            tracing::info!(
                target: "weir",
                store = %self.name,
                outage_ms = outage.as_millis(),
                "redis answers again: decisions are global again"
            );
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
                .decide(ask.key.as_ref(), &scaled(&ask.tier, share), ask.ask, Instant::now())
                .into_inner(),
            (FailurePolicy::FailClosed, ..) => Ok(Decision::refused(
                0,
                self.probe_every,
                0,
                Duration::ZERO,
            )),
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
        if self.shared.health.is_degraded() {
            if let (FailurePolicy::Local(share), Some(local)) = (self.shared.policy, &self.shared.local) {
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
            let mut conn = shared.conn.clone();
            let _ = tokio::time::timeout(shared.timeout, async {
                match cmd.query_async::<redis::Value>(&mut conn).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        shared.script.load_async(&mut conn).await?;
                        cmd.query_async::<redis::Value>(&mut conn).await
                    }
                    other => other,
                }
            })
            .await;
        });
    }
}
