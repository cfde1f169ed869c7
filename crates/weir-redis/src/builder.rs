//! [`RedisStoreBuilder`].

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::cluster::ClusterClient;
use weir_core::{ConfigError, Name, keyed::KeyedConfig};
use weir_rate_limit::{Gcra, MemoryStore, Quota, Tier};

use crate::connection::{Connection, Target};
use crate::handle::{Health, RedisHandle};
use crate::lease::{LeaseConfig, Leases};
use crate::policy::{FailurePolicy, Share};
use crate::reserve::Reservations;
use crate::script::{RedisAlgorithm, script};
use crate::settings::PATTERN;
use crate::store::{RedisStore, Shared};

fn invalid_url() -> ConfigError {
    ConfigError::invalid(
        PATTERN,
        "url",
        "must be a Redis URL such as redis://127.0.0.1:6379",
    )
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

/// Builds a [`RedisStore`]; from [`RedisStore::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisStoreBuilder<A = Gcra, O = ()> {
    urls: Urls,
    prefix: String,
    name: Name,
    timeout: Duration,
    connection_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
    retries: Option<u32>,
    probe_every: Duration,
    policy: FailurePolicy,
    instances: u32,
    algorithm: A,
    observer: O,
    keyed: KeyedConfig,
    max_keys: usize,
    lease: Option<LeaseConfig>,
}

/// Where the store's Redis is.
#[derive(Clone, Debug)]
enum Urls {
    Single(String),
    Cluster(Vec<String>),
}

impl RedisStoreBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self::with_urls(Urls::Single(url))
    }

    pub(crate) fn new_cluster(urls: Vec<String>) -> Self {
        Self::with_urls(Urls::Cluster(urls))
    }

    fn with_urls(urls: Urls) -> Self {
        Self {
            urls,
            prefix: "weir:".to_owned(),
            name: Name::new("redis"),
            timeout: Duration::from_millis(100),
            connection_timeout: None,
            response_timeout: None,
            retries: None,
            probe_every: Duration::from_secs(1),
            policy: FailurePolicy::Local,
            instances: 1,
            algorithm: Gcra,
            observer: (),
            keyed: KeyedConfig::new(),
            max_keys: 100_000,
            lease: None,
        }
    }
}

impl<A, O> RedisStoreBuilder<A, O> {
    /// The prefix of every key (`"weir:"` by default): give two limiters sharing one Redis
    /// different prefixes. The limiter key follows in a hash tag, `weir:{k:<key>}:<tier>:...`,
    /// so all the keys of one decision sit in one Cluster slot.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Names the store in events and logs (`"redis"` by default).
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// The longest a decision waits for Redis (100 ms by default), connecting included; past
    /// it the failure policy decides.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long redis-rs may take to open a connection to a server or a Cluster node
    /// (`timeout` by default). A decision still waits at most `timeout`: this bounds a
    /// connection made in the background (a reconnection, a rebuild of the connection).
    pub const fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = Some(timeout);
        self
    }

    /// How long redis-rs waits for one reply before it reports the connection as timed out
    /// (`timeout` by default). A decision still waits at most `timeout`.
    pub const fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = Some(timeout);
        self
    }

    /// How many times redis-rs retries a command itself: on a Cluster, after a redirection
    /// (`MOVED`, `ASK`), a `TRYAGAIN` or a broken connection (3 by default); on one server,
    /// how many times a reconnection is tried (1 by default). Every retry happens within the
    /// decision's `timeout`.
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// After a failure, how long the store decides by its policy without asking Redis (1 s by
    /// default); then one request probes Redis, and its answer ends the outage.
    pub const fn probe_every(mut self, every: Duration) -> Self {
        self.probe_every = every;
        self
    }

    /// What decides when Redis is unreachable or slow ([`FailurePolicy::Local`] by default:
    /// this instance's own limiter with its share of every quota, `1 /`
    /// [`instances`](Self::instances)).
    pub const fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How many instances share the limit (1 by default): under [`FailurePolicy::Local`] each
    /// keeps `1 / instances` of every quota's rate and burst while Redis is down, so the fleet
    /// stays within the limit instead of multiplying it by its size. Count every instance that
    /// may run at once (during a rolling deploy, the old and the new ones); a count too high
    /// makes the fleet stricter than the limit during an outage, never looser.
    pub const fn instances(mut self, instances: u32) -> Self {
        self.instances = instances;
        self
    }

    /// The most keys the local fallback, and the lease table, keep (100 000 by default).
    pub const fn max_local_keys(mut self, max: usize) -> Self {
        self.keyed = self.keyed.max_keys(max);
        self.max_keys = max;
        self
    }

    /// Lease mode: a request that finds no units left in this instance's lease takes `batch`
    /// units from Redis at once (one script, charged to every quota of the tier), and the next
    /// requests of the same key and tier spend them here without a round trip, until they run
    /// out or `ttl` passes (unspent units are then dropped, never given back).
    ///
    /// The bound: units are charged to Redis before they are spent, so over any interval the
    /// fleet admits at most what the algorithm allows plus the units leased before the
    /// interval and spent in it: at most `instances × (batch − 1)` per key over the limit
    /// (for a burst, `instances × (batch − 1)` more than the burst; `remaining` then reports
    /// what this instance holds). It may also admit less: leased units that expire unspent.
    /// Only reject-mode requests lease (wait mode decides each request on Redis), and only one
    /// request per key fetches at a time (the others are decided on Redis one by one meanwhile).
    pub const fn lease(mut self, batch: u32, ttl: Duration) -> Self {
        self.lease = Some(LeaseConfig { batch, ttl });
        self
    }

    /// The algorithm ([`Gcra`] by default; [`TokenBucket`](weir_rate_limit::TokenBucket),
    /// [`FixedWindow`](weir_rate_limit::FixedWindow) or
    /// [`SlidingWindow`](weir_rate_limit::SlidingWindow)).
    pub fn algorithm<A2: RedisAlgorithm>(self, algorithm: A2) -> RedisStoreBuilder<A2, O> {
        RedisStoreBuilder {
            urls: self.urls,
            prefix: self.prefix,
            name: self.name,
            timeout: self.timeout,
            connection_timeout: self.connection_timeout,
            response_timeout: self.response_timeout,
            retries: self.retries,
            probe_every: self.probe_every,
            policy: self.policy,
            instances: self.instances,
            algorithm,
            observer: self.observer,
            keyed: self.keyed,
            max_keys: self.max_keys,
            lease: self.lease,
        }
    }

    /// The observer of [`Event`](crate::Event)s (fallback decisions, recoveries).
    pub fn observer<O2>(self, observer: O2) -> RedisStoreBuilder<A, O2> {
        RedisStoreBuilder {
            urls: self.urls,
            prefix: self.prefix,
            name: self.name,
            timeout: self.timeout,
            connection_timeout: self.connection_timeout,
            response_timeout: self.response_timeout,
            retries: self.retries,
            probe_every: self.probe_every,
            policy: self.policy,
            instances: self.instances,
            algorithm: self.algorithm,
            observer,
            keyed: self.keyed,
            max_keys: self.max_keys,
            lease: self.lease,
        }
    }

    /// Checks the configuration and builds the store. Nothing is sent to Redis yet: the
    /// connection is made on the first decision (and remade after a failure), so a store built
    /// while Redis is down works by its failure policy until Redis is up. Call it inside a
    /// Tokio runtime.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`].
    pub fn build(self) -> Result<RedisStore<A, O>, ConfigError>
    where
        A: RedisAlgorithm,
    {
        self.build_with_handle().map(|(store, _)| store)
    }

    /// As [`build`](Self::build), with a [`RedisHandle`] on the store's counters.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`].
    pub fn build_with_handle(self) -> Result<(RedisStore<A, O>, RedisHandle), ConfigError>
    where
        A: RedisAlgorithm,
    {
        if self.timeout.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "timeout",
                "must be longer than zero",
            ));
        }
        if self.connection_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::zero(
                PATTERN,
                "connection_timeout",
                "must be longer than zero",
            ));
        }
        if self.response_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::zero(
                PATTERN,
                "response_timeout",
                "must be longer than zero",
            ));
        }
        let connect = self.connection_timeout.unwrap_or(self.timeout);
        let respond = self.response_timeout.unwrap_or(self.timeout);
        if self.probe_every.is_zero() {
            return Err(ConfigError::zero(
                PATTERN,
                "probe_every",
                "must be longer than zero",
            ));
        }
        if let FailurePolicy::LocalShare(share) = self.policy
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(ConfigError::out_of_range(
                PATTERN,
                "failure_policy",
                "the local share must be in (0, 1]",
            ));
        }
        if self.instances == 0 {
            return Err(ConfigError::zero(
                PATTERN,
                "instances",
                "must be at least 1",
            ));
        }
        let share = match self.policy {
            FailurePolicy::LocalShare(share) => Share::Fraction(share),
            _ => Share::Instances(self.instances),
        };
        if self.lease.is_some_and(|l| l.batch == 0 || l.ttl.is_zero()) {
            return Err(ConfigError::zero(
                PATTERN,
                "lease",
                "batch must be at least 1 and ttl longer than zero",
            ));
        }
        if self.prefix.contains(['{', '}']) {
            return Err(ConfigError::invalid(
                PATTERN,
                "prefix",
                "must not contain `{` or `}`",
            ));
        }
        let target = match &self.urls {
            Urls::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|_| invalid_url())?;
                let retries = self.retries.unwrap_or(1);
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(connect)
                    .set_response_timeout(respond)
                    .set_number_of_retries(usize::try_from(retries).unwrap_or(usize::MAX))
                    .set_max_delay(u64::try_from(self.probe_every.as_millis()).unwrap_or(u64::MAX));
                Target::Single { client, config }
            }
            Urls::Cluster(urls) => {
                // Redirections (`MOVED`, `ASK`) and reconnections are retries: a few, quickly;
                // the store's timeout bounds the whole call anyway.
                let client = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(connect)
                    .response_timeout(respond)
                    .retries(self.retries.unwrap_or(3))
                    .min_retry_wait(1)
                    .max_retry_wait(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX))
                    .build()
                    .map_err(|_| invalid_url())?;
                Target::Cluster { client }
            }
        };
        // A rebuild connects to every node (those that hang cost their connection and
        // response timeouts, concurrently) and reads the slot map: a few of each.
        let bound = (connect + respond)
            .saturating_mul(3)
            .max(Duration::from_secs(1));
        let conn = Arc::new(Connection::new(target, bound));
        let local = matches!(
            self.policy,
            FailurePolicy::Local | FailurePolicy::LocalShare(_)
        )
        .then(|| {
            let shape = Tier::new(Name::default(), [Quota::per_second(1)]);
            MemoryStore::new(self.algorithm.clone(), self.keyed, &shape)
        });
        let health = Arc::new(Health::new(conn.units()));
        let shared = Shared {
            name: self.name,
            conn,
            script: script::<A>(),
            prefix: self.prefix.into_bytes().into_boxed_slice(),
            timeout: self.timeout,
            probe_every: self.probe_every,
            policy: self.policy,
            share,
            local,
            observer: self.observer,
            health: Arc::clone(&health),
            leases: Leases::new(self.max_keys),
            lease: self.lease,
            reservations: Reservations::default(),
        };
        let handle = RedisHandle {
            health,
            conn: Arc::clone(&shared.conn),
        };
        Ok((RedisStore::from_shared(shared), handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_every_rule() {
        use weir_core::ConfigError;
        let zero = |field| ConfigError::zero("redis", field, "");
        let err = |b: RedisStoreBuilder| b.build().err();
        let b = || RedisStore::builder("redis://127.0.0.1:6379");
        assert_eq!(
            err(RedisStore::builder("nope")),
            Some(ConfigError::invalid("redis", "url", ""))
        );
        assert_eq!(err(b().timeout(Duration::ZERO)), Some(zero("timeout")));
        assert_eq!(
            err(b().probe_every(Duration::ZERO)),
            Some(zero("probe_every"))
        );
        for share in [0.0, 1.5, f64::NAN] {
            assert_eq!(
                err(b().failure_policy(FailurePolicy::LocalShare(share))),
                Some(ConfigError::out_of_range("redis", "failure_policy", ""))
            );
        }
        assert_eq!(err(b().instances(0)), Some(zero("instances")));
        // #28.4: redis-rs's own settings are checked too.
        assert_eq!(
            err(b().connection_timeout(Duration::ZERO)),
            Some(zero("connection_timeout"))
        );
        assert_eq!(
            err(b().response_timeout(Duration::ZERO)),
            Some(zero("response_timeout"))
        );
        let cluster = || RedisStore::cluster(["redis://127.0.0.1:6379"]);
        assert!(
            cluster()
                .connection_timeout(Duration::from_millis(250))
                .response_timeout(Duration::from_millis(50))
                .retries(0)
                .build()
                .is_ok()
        );
        assert_eq!(
            err(b().prefix("a{b")),
            Some(ConfigError::invalid("redis", "prefix", ""))
        );
        assert_eq!(
            err(b().lease(0, Duration::from_secs(1))),
            Some(zero("lease"))
        );
        assert!(b().lease(10, Duration::from_secs(1)).build().is_ok());
        assert_eq!(
            err(b().timeout(Duration::ZERO)).map(|e| e.to_string()),
            Some("redis: `timeout` must be longer than zero".to_owned())
        );
    }
}
