//! weir-redis on loopback: decisions per second for the in-memory store, one script per request,
//! pipelined concurrent requests (64 in flight on one connection), lease mode, and a plain
//! `INCR` + `EXPIRE` round trip from the same client (the floor a script is compared with).
//! The store is measured alone (`Store::decide`) and through the rate limiter's service
//! (`service-*`: `ready().call()` on a `RateLimitLayer` keyed by the request, over a
//! `service_fn`), so both figures are on record.
//!
//! Starts its own `redis-server` on a free port (no persistence); it must be installed
//! (`apt-get install -y redis-server`).
//!
//! `cargo bench --bench redis -- --warm-up-time 1 --measurement-time 2`

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use weir_core::keyed::KeyedConfig;
use weir_rate_limit::{Ask, Gcra, MemoryStore, Quota, RateLimitLayer, Store, Tier};
use weir_redis::RedisStore;

const ASK: Ask = Ask {
    cost: 1,
    max_wait: Duration::ZERO,
};

/// Never refuses at benchmark speed.
fn tier() -> Tier {
    Tier::new("default", [Quota::per_second(u32::MAX)])
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("weir-redis-bench-{port}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    let server = Server(child);
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).expect("url");
    for _ in 0..500 {
        if let Ok(mut conn) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut conn).is_ok()
        {
            return (server, url);
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "waiting for a real server to start, outside any runtime"
        )]
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not start");
}

fn bench(c: &mut Criterion) {
    let (_server, url) = start();
    let rt = Runtime::new().expect("runtime");
    let tier = tier();
    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));

    let memory = MemoryStore::new(Gcra, KeyedConfig::new(), &tier);
    group.bench_function("in-memory", |b| {
        b.iter(|| {
            Store::<u64>::decide(&memory, Some(&1), &tier, ASK, Instant::now())
                .into_inner()
                .expect("decides")
        });
    });

    let store = rt
        .block_on(async { RedisStore::builder(url.as_str()).build() })
        .expect("store");
    group.bench_function("script-per-request", |b| {
        b.iter(|| {
            rt.block_on(Store::<u64>::decide(
                &store,
                Some(&1),
                &tier,
                ASK,
                Instant::now(),
            ))
            .expect("decides")
        });
    });

    let conn = rt.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("url");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("connect")
    });
    group.bench_function("incr-expire-round-trip", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut conn = conn.clone();
                let (n, _): (i64, i64) = redis::pipe()
                    .cmd("INCR")
                    .arg("bench:{k}:incr")
                    .cmd("EXPIRE")
                    .arg("bench:{k}:incr")
                    .arg(60)
                    .query_async(&mut conn)
                    .await
                    .expect("INCR + EXPIRE");
                n
            })
        });
    });

    let lease = rt
        .block_on(async {
            RedisStore::builder(url.as_str())
                .prefix("lease:")
                .lease(100, Duration::from_secs(1))
                .build()
        })
        .expect("store");
    group.bench_function("lease-batch-100", |b| {
        b.iter(|| {
            rt.block_on(Store::<u64>::decide(
                &lease,
                Some(&1),
                &tier,
                ASK,
                Instant::now(),
            ))
            .expect("decides")
        });
    });

    // The same stores through the rate limiter's service: the key extracted from the request,
    // the decision, the response future, the inner call.
    let mut service = |id: &str, store| {
        let layer = RateLimitLayer::builder()
            .quota(Quota::per_second(u32::MAX))
            .key(|req: &u64| Some(*req))
            .build_with_store(store)
            .expect("valid limit");
        let mut svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|req: u64| async move { Ok::<_, Infallible>(req) });
        let rt = &rt;
        group.bench_function(id, move |b| {
            b.iter(|| {
                rt.block_on(async {
                    svc.ready()
                        .await
                        .expect("ready")
                        .call(1)
                        .await
                        .expect("admitted")
                })
            });
        });
    };
    let guard = rt.enter();
    service("service-script-per-request", store.clone());
    service("service-lease-batch-100", lease.clone());
    drop(guard);

    const IN_FLIGHT: u64 = 64;
    group.throughput(Throughput::Elements(IN_FLIGHT));
    group.bench_function("script-pipelined-64", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for key in 0..IN_FLIGHT {
                    set.spawn(Store::<u64>::decide(
                        &store,
                        Some(&key),
                        &tier,
                        ASK,
                        Instant::now(),
                    ));
                }
                while let Some(done) = set.join_next().await {
                    done.expect("task").expect("decides");
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
