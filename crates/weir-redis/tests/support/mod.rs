//! The test harness: a real `redis-server` on a free loopback port, in a temporary directory,
//! without persistence, that a test can kill and restart. No mock of Redis.
//!
//! Waiting for the server to answer PING polls the real clock (a real server cannot run on
//! paused time); it takes a few milliseconds.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A `redis-server` owned by one test; killed and its directory removed on drop.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `Some(node timeout in ms)` for a Cluster node.
    cluster: Option<u64>,
}

/// A free loopback port; for a Cluster node, one whose bus port (10 000 higher, so at most
/// 55 535) is free too.
fn free_port(cluster: bool) -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        if !cluster {
            return port;
        }
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Redis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    async fn start_with(cluster: Option<u64>) -> Self {
        // A port found free may be taken before the server binds it (other tests start
        // servers too): then the server exits, and another port is tried.
        for _ in 0..10 {
            let port = free_port(cluster.is_some());
            let dir =
                std::env::temp_dir().join(format!("weir-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let mut redis = Self {
                port,
                dir,
                child: None,
                cluster,
            };
            if redis.try_spawn().await {
                return redis;
            }
        }
        panic!("redis-server did not start on any of ten free ports");
    }

    async fn spawn(&mut self) {
        assert!(
            self.try_spawn().await,
            "redis-server on port {} did not answer PING",
            self.port
        );
    }

    /// Starts the server on its port; false if it exited or never answered PING.
    async fn try_spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(node_timeout) = self.cluster {
            // A dead node stops only its own slots (the default stops the whole cluster once
            // the others agree it is down). Restarted, it rejoins with its slots from nodes.conf.
            cmd.arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"))
                .arg("--cluster-require-full-coverage")
                .arg("no")
                .arg("--cluster-node-timeout")
                .arg(node_timeout.to_string());
        }
        let child = cmd
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        for _ in 0..500 {
            if ping(self.port).await {
                return true;
            }
            if let Some(child) = self.child.as_mut()
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                self.child = None;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.kill();
        false
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): its sockets stay open and nothing answers, as a frozen VM
    /// or a network partition looks to a client. [`kill`](Self::kill) (or drop) still ends it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// A plain connection, for inspecting keys.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    /// Every key matching `pattern` (SCAN, so it works on a big keyspace too).
    pub async fn scan(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.connection().await;
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }
}

async fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"+PONG\r\n"
    )
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-node Redis Cluster on loopback (no replicas), made with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    /// Starts three cluster-enabled servers, joins them, and waits for `cluster_state:ok`.
    pub async fn start() -> Self {
        Self::start_with(0, 15_000).await
    }

    /// Three masters with one replica each (six servers), the nodes declaring a peer failed
    /// after `node_timeout_ms` (so a frozen master's replica takes over a second or two
    /// later); waits until every replica is in sync with its master.
    pub async fn start_with_replicas(node_timeout_ms: u64) -> Self {
        let cluster = Self::start_with(1, node_timeout_ms).await;
        for node in &cluster.nodes {
            wait_replica_synced(node).await;
        }
        cluster
    }

    async fn start_with(replicas: usize, node_timeout_ms: u64) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            nodes.push(Redis::start_with(Some(node_timeout_ms)).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(status.success(), "redis-cli --cluster create failed");
        for node in &nodes {
            wait_cluster_ok(node).await;
        }
        Self { nodes }
    }

    /// The URL of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }

    /// The index of the node owning `key`'s slot (the others answer `MOVED`).
    pub async fn owner(&self, key: &[u8]) -> usize {
        self.owner_except(key, usize::MAX)
            .await
            .unwrap_or_else(|| panic!("no node owns {}", String::from_utf8_lossy(key)))
    }

    /// The index of a node other than `except` that serves `key`'s slot (a master, that does
    /// not answer `MOVED`), if any; a node that does not answer within 2 s is skipped.
    pub async fn owner_except(&self, key: &[u8], except: usize) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if i == except {
                continue;
            }
            let ask = async {
                let mut conn = node.connection().await;
                let exists: redis::RedisResult<i64> =
                    redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
                exists.is_ok()
            };
            if let Ok(true) = tokio::time::timeout(Duration::from_secs(2), ask).await {
                return Some(i);
            }
        }
        None
    }
}

/// Where the stores of a test keep their state: one server, or a three-node Cluster.
#[derive(Debug)]
pub enum Backend {
    Single(Redis),
    Cluster(Cluster),
}

impl Backend {
    pub async fn single() -> Self {
        Self::Single(Redis::start().await)
    }

    pub async fn cluster() -> Self {
        Self::Cluster(Cluster::start().await)
    }

    /// A store builder on this backend: `RedisStore::builder` or `RedisStore::cluster`.
    pub fn builder(&self) -> weir_redis::RedisStoreBuilder {
        match self {
            Self::Single(redis) => weir_redis::RedisStore::builder(redis.url()),
            Self::Cluster(cluster) => weir_redis::RedisStore::cluster(cluster.urls()),
        }
    }

    fn servers(&self) -> Vec<&Redis> {
        match self {
            Self::Single(redis) => vec![redis],
            Self::Cluster(cluster) => cluster.nodes.iter().collect(),
        }
    }

    fn servers_mut(&mut self) -> Vec<&mut Redis> {
        match self {
            Self::Single(redis) => vec![redis],
            Self::Cluster(cluster) => cluster.nodes.iter_mut().collect(),
        }
    }

    /// The server holding `key`: the only one, or the Cluster node owning its slot.
    pub async fn owner(&self, key: &[u8]) -> usize {
        match self {
            Self::Single(_) => 0,
            Self::Cluster(cluster) => cluster.owner(key).await,
        }
    }

    /// Kills server `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.servers_mut()[i].kill();
    }

    /// Restarts server `i` on its port (empty; a Cluster node rejoins with its slots).
    pub async fn restart(&mut self, i: usize) {
        self.servers_mut()[i].restart().await;
        if let Self::Cluster(cluster) = self {
            wait_cluster_ok(&cluster.nodes[i]).await;
        }
    }

    /// Every key matching `pattern` on every server, with the index of the server holding it.
    pub async fn scan(&self, pattern: &str) -> Vec<(usize, String)> {
        let mut all = Vec::new();
        for (i, server) in self.servers().into_iter().enumerate() {
            all.extend(server.scan(pattern).await.into_iter().map(|k| (i, k)));
        }
        all
    }

    /// A plain connection to server `i`.
    pub async fn connection(&self, i: usize) -> redis::aio::MultiplexedConnection {
        self.servers()[i].connection().await
    }
}

async fn wait_cluster_ok(node: &Redis) {
    for _ in 0..500 {
        let mut conn = node.connection().await;
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER INFO");
        if info.contains("cluster_state:ok") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the cluster never reached cluster_state:ok");
}

/// Waits until a replica's link to its master is up (`master_link_status:up`); a master
/// returns at once.
async fn wait_replica_synced(node: &Redis) {
    for _ in 0..500 {
        let mut conn = node.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .expect("INFO replication");
        if info.contains("role:master") || info.contains("master_link_status:up") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a replica never synced with its master");
}

/// A TCP proxy on a free loopback port in front of a server: it forwards requests at once and
/// holds each chunk of replies for a delay that the test sets (0 at first), so the server
/// looks slow to a client without being so. It can also move to another server (new
/// connections go there, as after a DNS change) and leave the connections it has hanging.
#[derive(Debug)]
pub struct SlowProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    upstream: Arc<AtomicU16>,
    /// Connections numbered below this one hold their replies forever.
    hang_below: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let upstream = Arc::new(AtomicU16::new(upstream));
        let hang_below = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let delay = Arc::clone(&delay_ms);
        let (target, hang, count) = (
            Arc::clone(&upstream),
            Arc::clone(&hang_below),
            Arc::clone(&accepted),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let delay = Arc::clone(&delay);
                let hang = Arc::clone(&hang);
                let number = count.fetch_add(1, Ordering::AcqRel);
                let upstream = target.load(Ordering::Acquire);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if number < hang.load(Ordering::Acquire) {
                            // Hung: the socket stays open, nothing comes back.
                            std::future::pending::<()>().await;
                        }
                        let ms = delay.load(Ordering::Relaxed);
                        if ms > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Self {
            port,
            delay_ms,
            upstream,
            hang_below,
            accepted,
            task,
        }
    }

    /// New connections go to the server on `port`; the open ones hang from now on.
    pub fn move_to(&self, port: u16) {
        self.upstream.store(port, Ordering::Release);
        self.hang_below
            .store(self.accepted.load(Ordering::Acquire), Ordering::Release);
    }

    /// Holds every reply from now on for `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
