//! [`Connection`]: the connection to Redis (one server or a Cluster), made on first use and
//! rebuilt when the node it talks to stops answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult};
use tokio::time::Instant;

/// Where the store's Redis is, and how to connect to it.
pub(crate) enum Target {
    /// One server: redis-rs's `ConnectionManager` (it reconnects by itself after an error).
    Single {
        client: Client,
        config: ConnectionManagerConfig,
    },
    /// A Cluster: redis-rs's Cluster connection (slot routing, `MOVED`/`ASK`, reconnects per
    /// node after an error).
    Cluster { client: ClusterClient },
}

/// A live connection of either kind (each a cheap handle on one multiplexed connection).
#[derive(Clone)]
enum Live {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// One connection, made on first use (so a store can be built while Redis is down).
struct Generation {
    live: tokio::sync::OnceCell<Live>,
}

/// The connection shared by every clone of a store, and its rebuilds.
///
/// redis-rs refreshes a Cluster's slot map on `MOVED` and on a broken connection, not on a
/// timeout: a master that hangs (a frozen VM, a partition: SIGSTOP looks the same) keeps its
/// slots in the map after the Cluster promoted its replica. So the store rebuilds the connection
/// itself (new connections, a fresh slot map from `CLUSTER SLOTS`) when a unit that already
/// failed fails again: at most one rebuild at a time, at most one per `every` (the probe
/// interval). The current connection sits in an `ArcSwap`: a decision reads it without a lock,
/// and the requests in flight on a replaced one finish there.
pub(crate) struct Connection {
    target: Target,
    current: ArcSwap<Generation>,
    rebuilding: AtomicBool,
    origin: Instant,
    /// Nanoseconds since `origin` + 1 of the last rebuild started; 0: none yet.
    rebuilt_at: AtomicU64,
    pub(crate) rebuilds: AtomicU64,
    /// The longest a rebuild may take before it is given up (the old connection stays).
    bound: Duration,
}

impl Connection {
    pub(crate) fn new(target: Target, bound: Duration) -> Self {
        Self {
            target,
            current: ArcSwap::from_pointee(Generation {
                live: tokio::sync::OnceCell::new(),
            }),
            rebuilding: AtomicBool::new(false),
            origin: Instant::now(),
            rebuilt_at: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
            bound,
        }
    }

    /// How many units fail independently: one server, or a Cluster's slots.
    pub(crate) const fn units(&self) -> usize {
        match self.target {
            Target::Single { .. } => 1,
            Target::Cluster { .. } => SLOTS,
        }
    }

    /// The Cluster slot of a unit (`None` on one server).
    pub(crate) fn slot_of(&self, unit: usize) -> Option<u16> {
        match self.target {
            Target::Single { .. } => None,
            Target::Cluster { .. } => u16::try_from(unit).ok(),
        }
    }

    /// The unit of a key: 0 on one server, its Cluster slot otherwise.
    pub(crate) fn unit(&self, key: &[u8]) -> usize {
        match self.target {
            Target::Single { .. } => 0,
            Target::Cluster { .. } => slot(key),
        }
    }

    async fn connect(&self) -> RedisResult<Live> {
        match &self.target {
            Target::Single { client, config } => {
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map(Live::Single)
            }
            Target::Cluster { client } => client.get_async_connection().await.map(Live::Cluster),
        }
    }

    /// The current connection, made now if there is none yet.
    async fn live(&self) -> RedisResult<Live> {
        // The happy path: an `ArcSwap` read and a clone of the handle, no lock.
        if let Some(live) = self.current.load().live.get() {
            return Ok(live.clone());
        }
        let generation = self.current.load_full();
        generation
            .live
            .get_or_try_init(|| self.connect())
            .await
            .cloned()
    }

    /// Runs `cmd` (an `EVALSHA`); on `NOSCRIPT` runs it as `EVAL` with the script's source,
    /// which Redis caches: routed by the keys like the `EVALSHA`, so it reloads the script on
    /// the one node that lacks it (a `SCRIPT LOAD` would go to every node of a Cluster, and fail
    /// while any of them is down).
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd, source: &str) -> RedisResult<T> {
        match self.live().await? {
            Live::Single(mut conn) => match cmd.query_async(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::NoScriptError => {
                    eval(cmd, source).query_async(&mut conn).await
                }
                other => other,
            },
            Live::Cluster(mut conn) => match cmd.query_async(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::NoScriptError => {
                    eval(cmd, source).query_async(&mut conn).await
                }
                other => other,
            },
        }
    }

    /// Makes a new connection (new TCP connections, and on a Cluster a slot map read afresh
    /// from `CLUSTER SLOTS`) and puts it in place of the current one. Bounded by `bound`; on
    /// failure the current connection stays.
    pub(crate) async fn rebuild(&self) -> RedisResult<()> {
        let live = tokio::time::timeout(self.bound, self.connect())
            .await
            .map_err(|_| {
                RedisError::from((ErrorKind::IoError, "rebuilding the connection timed out"))
            })??;
        let generation = Generation {
            live: tokio::sync::OnceCell::new_with(Some(live)),
        };
        self.current.store(Arc::new(generation));
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether a rebuild may start now (none running, none started in the last `every`); if
    /// so, the caller runs it and then calls [`rebuilt`](Self::rebuilt).
    pub(crate) fn start_rebuild(&self, now: Instant, every: Duration) -> bool {
        let t = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.rebuilt_at.load(Ordering::Acquire);
        let every = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
        if last != 0 && t.saturating_sub(last) < every {
            return false;
        }
        if self
            .rebuilding
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.rebuilt_at.store(t, Ordering::Release);
        true
    }

    /// The rebuild started by [`start_rebuild`](Self::start_rebuild) is over.
    pub(crate) fn rebuilt(&self) {
        self.rebuilding.store(false, Ordering::Release);
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
pub(crate) const SLOTS: usize = 16_384;

/// The Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the bytes between the first `{`
/// and the next `}`, when not empty), else of the whole key, modulo 16 384.
pub(crate) fn slot(key: &[u8]) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test(start_paused = true)]
    async fn one_rebuild_at_a_time_and_at_most_one_per_interval() {
        let client = Client::open("redis://127.0.0.1:1").expect("url");
        let conn = Connection::new(
            Target::Single {
                client,
                config: ConnectionManagerConfig::new(),
            },
            Duration::from_millis(100),
        );
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        assert!(conn.start_rebuild(t0, every));
        // One is running.
        assert!(!conn.start_rebuild(t0 + Duration::from_secs(5), every));
        conn.rebuilt();
        // Too soon after the last one.
        assert!(!conn.start_rebuild(t0 + Duration::from_millis(500), every));
        assert!(conn.start_rebuild(t0 + every, every));
    }
}
