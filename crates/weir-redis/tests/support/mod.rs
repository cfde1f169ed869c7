//! The test harness: a real `redis-server` on a free loopback port, in a temporary directory,
//! without persistence, that a test can kill and restart. No mock of Redis.
//!
//! Waiting for the server to answer PING polls the real clock (a real server cannot run on
//! paused time); it takes a few milliseconds.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `redis-server` owned by one test; killed and its directory removed on drop.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    cluster: bool,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl Redis {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(cluster: bool) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("weir-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut redis = Self {
            port,
            dir,
            child: None,
            cluster,
        };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
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
        if self.cluster {
            // A dead node stops only its own slots (the default stops the whole cluster once
            // the others agree it is down). Restarted, it rejoins with its slots from nodes.conf.
            cmd.arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"))
                .arg("--cluster-require-full-coverage")
                .arg("no");
        }
        let child = cmd
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        for _ in 0..500 {
            if ping(self.port).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server on port {} did not answer PING", self.port);
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
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Redis::start_with(true).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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
        for (i, node) in self.nodes.iter().enumerate() {
            let mut conn = node.connection().await;
            let exists: redis::RedisResult<i64> =
                redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
            if exists.is_ok() {
                return i;
            }
        }
        panic!("no node owns {}", String::from_utf8_lossy(key));
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
