//! weir-rate-limit's happy path (every request admitted: quotas far above the call rate) against
//! the bare floor and tower's `RateLimit`; every algorithm; keyed with 1 key and 100 000 keys;
//! two threads on one limiter and on distinct keys; allocations per call.
//!
//! `cargo bench --bench rate_limit -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::limit::RateLimitLayer as TowerRateLimitLayer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use weir_rate_limit::{
    FixedWindow, LeakyBucket, Quota, RateLimitLayer, SlidingLog, SlidingWindow, TokenBucket,
};

use crate::support::{Bench, Req, bare, runtime_1_thread};

/// Never refuses at benchmark speed: about 4.3 × 10⁹ units per second, a burst as large.
fn huge() -> Quota {
    Quota::per_second(u32::MAX)
}

const KEYS: u64 = 100_000;

fn rate_limit(c: &mut Criterion) {
    let mut bench = Bench::new(c, "rate_limit");
    bench.service("service_fn", bare);
    // tower's `RateLimit` is not `Clone`: on 2 threads each task has its own.
    bench.service_per_task("tower-rate-limit", || {
        TowerRateLimitLayer::new(u64::MAX, Duration::from_secs(1)).layer(bare())
    });

    let gcra = RateLimitLayer::new(huge()).expect("valid");
    bench.service("weir-gcra", || gcra.clone().layer(bare()));
    let token = RateLimitLayer::builder()
        .quota(huge())
        .algorithm(TokenBucket)
        .build()
        .expect("valid");
    bench.service("weir-token-bucket", || token.clone().layer(bare()));
    // In reject mode the smoother admits only requests that can leave at once, one per
    // interval (1 ns here): two threads whose clocks were read a few ns apart collide and
    // refuse. So each task gets its own limiter on 2 threads.
    bench.service_per_task("weir-leaky-bucket", || {
        RateLimitLayer::builder()
            .quota(huge())
            .algorithm(LeakyBucket)
            .build()
            .expect("valid")
            .layer(bare())
    });
    let fixed = RateLimitLayer::builder()
        .quota(huge())
        .algorithm(FixedWindow)
        .build()
        .expect("valid");
    bench.service("weir-fixed-window", || fixed.clone().layer(bare()));
    let sliding = RateLimitLayer::builder()
        .quota(huge())
        .algorithm(SlidingWindow)
        .build()
        .expect("valid");
    bench.service("weir-sliding-window", || sliding.clone().layer(bare()));
    // The log keeps one timestamp per admitted unit for a period: a short period keeps it small.
    let log = RateLimitLayer::builder()
        .quota(Quota::new(u32::MAX, Duration::from_millis(1)))
        .algorithm(SlidingLog)
        .build()
        .expect("valid");
    bench.service("weir-sliding-log", || log.clone().layer(bare()));
    let stacked = RateLimitLayer::builder()
        .quota(huge())
        .quota(Quota::per_day(u32::MAX))
        .build()
        .expect("valid");
    bench.service("weir-gcra-stacked-2", || stacked.clone().layer(bare()));

    // Keyed: the key is the request number modulo the key count; every key is stored before
    // measuring, so the figures are the steady state (hits), not the first inserts.
    let one_key = RateLimitLayer::builder()
        .quota(huge())
        .key(|_: &Req| Some(0u64))
        .build()
        .expect("valid");
    bench.service("weir-keyed-1-key", || one_key.clone().layer(bare()));
    let many = RateLimitLayer::builder()
        .quota(huge())
        .key(|n: &Req| Some(*n % KEYS))
        .max_keys(2 * KEYS as usize)
        .build()
        .expect("valid");
    let rt = runtime_1_thread();
    rt.block_on(async {
        let mut svc = many.clone().layer(bare());
        for n in 0..KEYS {
            let _ = svc.ready().await.expect("ready").call(n).await;
        }
    });
    bench.service("weir-keyed-100k-keys", || many.clone().layer(bare()));
    // Two threads on distinct keys: each instance offsets its requests by its own multiple of
    // the key count, so the two tasks never touch the same key (one shared limiter).
    let distinct = RateLimitLayer::builder()
        .quota(huge())
        .key(|n: &Req| Some(*n % (2 * KEYS)))
        .max_keys(4 * KEYS as usize)
        .build()
        .expect("valid");
    rt.block_on(async {
        let mut svc = distinct.clone().layer(bare());
        for n in 0..2 * KEYS {
            let _ = svc.ready().await.expect("ready").call(n).await;
        }
    });
    let instance = AtomicU64::new(0);
    bench.service_per_task("weir-keyed-distinct-keys", || {
        let offset = (instance.fetch_add(1, Ordering::Relaxed) % 2) * KEYS;
        ServiceBuilder::new()
            .map_request(move |n: Req| n % KEYS + offset)
            .layer(distinct.clone())
            .service(bare())
    });
    bench.finish();
}

criterion_group!(benches, rate_limit);
criterion_main!(benches);
