//! weir-rate-limit's happy path (every request admitted: quotas far above the call rate) against
//! the bare floor, tower's `RateLimit` (alone, one per task as it is not `Clone`, and shared
//! behind tower's `Buffer`, as a server needs it) and governor (direct `check`, keyed `check_key`); every
//! algorithm; keyed with 1 key and 100 000 keys; two threads on one limiter and on distinct keys;
//! allocations per call; bytes allocated per key by a flood of 1 000 000 keys, weir and governor;
//! weir-core's `Metrics` observer on the admitted path and on a refusing limiter (#19).
//!
//! `cargo bench --bench rate_limit -- --warm-up-time 1 --measurement-time 2`
//!
//! governor runs with its default features, so its clock is quanta's (the TSC, calibrated), not
//! `std::time::Instant` as weir's and tower's (tokio's `Instant` is std's). It is not a Tower
//! service: each is wrapped in a `service_fn` that decides in `call` and answers from an `async`
//! block, as the floor does, so the wrapper costs what the floor costs.

mod support;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use tower::limit::RateLimitLayer as TowerRateLimitLayer;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::observer::Metrics;
use weir_rate_limit::{
    FixedWindow, LeakyBucket, Quota, RateLimitLayer, SlidingLog, SlidingWindow, TokenBucket,
};

use crate::support::{Bench, Req, allocations, bare, runtime_1_thread};

/// A service whose refusals are answered `Ok(0)`, so the bench driver, which expects every call
/// to succeed, drives a refusing limiter.
fn answered<S>(
    svc: S,
) -> impl Service<Req, Response = Req, Error = weir_core::BoxError, Future: Send> + Clone
where
    S: Service<Req, Response = Req, Error = weir_core::BoxError> + Clone,
    S::Future: Send,
{
    tower::util::MapResult::new(svc, |result: Result<Req, weir_core::BoxError>| {
        Ok(result.unwrap_or(0))
    })
}

/// The HTTP handler of the `http/*` and `*-headers` rows: answers at once, from an `async`
/// block, an empty response (no allocation).
fn http_handler() -> impl Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_: http::Request<String>| async { Ok(http::Response::new(String::new())) })
}

/// An HTTP GET made from the bench's `u64` (no allocation: an empty `String` body).
fn http_request(_: Req) -> http::Request<String> {
    http::Request::new(String::new())
}

/// The two IETF fields an HTTP limiter with one quota writes on an admitted response, written
/// by `weir_core`'s writer without a limiter: the floor of the `*-headers` rows.
fn write_fields(res: &mut http::Response<String>) {
    weir_core::wire::RateLimitInfo::new("default", u64::from(u32::MAX), Duration::from_secs(1))
        .remaining(u64::from(u32::MAX) - 1)
        .write_headers(res.headers_mut(), weir_core::wire::HeaderStyle::Ietf);
}

/// Never refuses at benchmark speed: about 4.3 × 10⁹ units per second, a burst as large.
fn huge() -> Quota {
    Quota::per_second(u32::MAX)
}

const KEYS: u64 = 100_000;

/// governor's quota as large as weir's `huge()`.
fn governor_huge() -> GovernorQuota {
    GovernorQuota::per_second(NonZeroU32::MAX)
}

/// Reports the bytes allocated per key by a flood of `FLOOD` distinct keys, counted by the shared
/// allocator between `before` and now on this thread: cumulative (tables grow by doubling and
/// the old table is freed), so about twice the live bytes once the flood is over, for weir and
/// governor alike.
fn report_bytes_per_key(name: &str, before: usize) {
    let (_, after) = allocations();
    #[allow(clippy::cast_precision_loss, reason = "a report")]
    let per_key = (after - before) as f64 / FLOOD as f64;
    eprintln!("rate_limit.{name}: {per_key:.1} bytes allocated per key ({FLOOD} keys)");
}

const FLOOD: u64 = 1_000_000;

/// Bytes per key, governor's keyed limiter against weir's keyed layer (GCRA, one quota).
fn memory() {
    let governor = RateLimiter::keyed(governor_huge());
    let (_, before) = allocations();
    for key in 0..FLOOD {
        governor.check_key(&key).expect("admitted");
    }
    report_bytes_per_key("governor-keyed", before);
    drop(governor);

    let weir = RateLimitLayer::builder()
        .quota(huge())
        .key(|n: &Req| Some(*n))
        .max_keys(2 * FLOOD as usize)
        .build()
        .expect("valid");
    let rt = runtime_1_thread();
    rt.block_on(async {
        let mut svc = weir.layer(bare());
        let (_, before) = allocations();
        for key in 0..FLOOD {
            let _ = svc.ready().await.expect("ready").call(key).await;
        }
        report_bytes_per_key("weir-keyed", before);
    });
}

fn rate_limit(c: &mut Criterion) {
    let mut bench = Bench::new(c, "rate_limit");
    bench.service("service_fn", bare);
    // The floor of every limiter here, which all read the clock once per call: the bare
    // service plus one read of tokio's clock (tower's `RateLimit` and weir read it; governor,
    // with its default features, reads quanta's, which costs less).
    bench.service("clock-read", || {
        service_fn(|n: Req| {
            std::hint::black_box(tokio::time::Instant::now());
            async move { Ok::<_, std::convert::Infallible>(n.wrapping_add(1)) }
        })
    });
    // tower's `RateLimit` is not `Clone`: on 2 threads each task has its own.
    bench.service_per_task("tower-rate-limit", || {
        TowerRateLimitLayer::new(u64::MAX, Duration::from_secs(1)).layer(bare())
    });
    // Shared as a server needs it (axum wants a `Clone` service): tower's RateLimit behind its
    // Buffer, the combination axum's docs prescribe; one limit for every clone, as weir's.
    bench.service("tower-rate-limit-buffered", || {
        ServiceBuilder::new()
            .buffer(1_024)
            .rate_limit(u64::MAX, Duration::from_secs(1))
            .service(bare())
    });

    let gcra = RateLimitLayer::new(huge());
    bench.service("weir-gcra", || gcra.clone().layer(bare()));
    // #19: weir-core's `Metrics` observer, which runs only on a refusal: the admitted path is
    // the same code (no recorder is installed here: the facade's no-op, as a user without a
    // scrape has; the recorder is never reached on this path either way).
    let gcra_metrics = RateLimitLayer::builder()
        .quota(huge())
        .observer(Metrics)
        .build()
        .expect("valid");
    bench.service("weir-gcra-metrics", || gcra_metrics.clone().layer(bare()));
    // governor's limiters are built when their row first runs: quanta's clock calibrates itself
    // on first use in a loop bounded by wall time, so built up front it added a load-dependent
    // count of instructions to the set-up of every row, which `scripts/instructions.sh` does
    // not always cancel (weir's GCRA read anywhere from 177 to 219 on one binary).
    let direct = OnceLock::new();
    bench.service("governor-direct", || {
        let governor =
            Arc::clone(direct.get_or_init(|| Arc::new(RateLimiter::direct(governor_huge()))));
        service_fn(move |n: Req| {
            let decision = governor.check().map(|()| n + 1).map_err(|_| "limited");
            async move { decision }
        })
    });
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

    // #15: an HTTP limiter writing the IETF `RateLimit` fields on every admitted response, over
    // the HTTP floor (an empty `Request<String>` in, an empty `Response<String>` out). The
    // fields' values are allocated by `http::HeaderValue` and the response's `HeaderMap` grows
    // to hold them (`http/service_fn-headers` writes the same two fields without a limiter);
    // the limiter itself allocates nothing more.
    bench.service("http/service_fn", || {
        http_handler().map_request(http_request)
    });
    bench.service("http/service_fn-headers", || {
        http_handler()
            .map_response(|mut res| {
                write_fields(&mut res);
                res
            })
            .map_request(http_request)
    });
    let headers = RateLimitLayer::builder()
        .quota(huge())
        .http()
        .build()
        .expect("valid");
    bench.service("weir-gcra-headers", || {
        headers
            .clone()
            .layer(http_handler())
            .map_request(http_request)
    });
    let stacked_headers = RateLimitLayer::builder()
        .quota(huge())
        .quota(Quota::per_day(u32::MAX))
        .http()
        .build()
        .expect("valid");
    bench.service("weir-gcra-stacked-2-headers", || {
        stacked_headers
            .clone()
            .layer(http_handler())
            .map_request(http_request)
    });

    // Keyed: the key is the request number modulo the key count; every key is stored before
    // measuring, so the figures are the steady state (hits), not the first inserts.
    let one_key = RateLimitLayer::builder()
        .quota(huge())
        .key(|_: &Req| Some(0u64))
        .build()
        .expect("valid");
    bench.service("weir-keyed-1-key", || one_key.clone().layer(bare()));
    // One keyed limiter for both rows, built when the first runs.
    let governor_keyed = OnceLock::<Arc<governor::DefaultKeyedRateLimiter<u64>>>::new();
    let keyed =
        || Arc::clone(governor_keyed.get_or_init(|| Arc::new(RateLimiter::keyed(governor_huge()))));
    let keyed_service = |governor: Arc<governor::DefaultKeyedRateLimiter<u64>>, keys: u64| {
        service_fn(move |n: Req| {
            let key = n % keys;
            let decision = governor
                .check_key(&key)
                .map(|()| n + 1)
                .map_err(|_| "limited");
            async move { decision }
        })
    };
    bench.service("governor-keyed-1-key", || keyed_service(keyed(), 1));
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
    // Every key is stored before the row measures.
    let filled = OnceLock::new();
    bench.service("governor-keyed-100k-keys", || {
        let governor = keyed();
        filled.get_or_init(|| {
            for key in 0..KEYS {
                governor.check_key(&key).expect("admitted");
            }
        });
        keyed_service(governor, KEYS)
    });
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
    // #19: the refusal path, where an observer runs (every call refused: a quota of one a day,
    // spent by the first call; answered `Ok(0)` so the driver counts it): no observer, the
    // `Metrics` observer with no recorder (the facade's no-op), and with a Prometheus recorder
    // (metrics-exporter-prometheus, rendering nothing here). The recorder is installed last, for
    // the last row, since a global recorder cannot be removed.
    let spent = || {
        RateLimitLayer::builder()
            .quota(Quota::per_day(1))
            .name("edge")
    };
    let plain = spent().build().expect("valid");
    bench.service("weir-gcra-refusing", || {
        answered(plain.clone().layer(bare()))
    });
    let observed = spent().observer(Metrics).build().expect("valid");
    bench.service("weir-gcra-refusing-metrics", || {
        answered(observed.clone().layer(bare()))
    });
    // Installed when the row first runs, not before: building the recorder starts quanta's
    // clock, whose calibration (a loop bounded by wall time) would add a load-dependent count
    // to every other row's set-up (see governor's rows above).
    let scrape = OnceLock::new();
    let recorded = spent().observer(Metrics).build().expect("valid");
    bench.service("weir-gcra-refusing-prometheus", || {
        scrape.get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the only recorder of this bench");
            handle
        });
        answered(recorded.clone().layer(bare()))
    });
    bench.finish();
    // Not when counting one service's instructions: a flood of a million keys is slow under
    // valgrind, and counts nothing the count needs.
    if crate::support::count_only().is_none() {
        memory();
    }
}

criterion_group!(benches, rate_limit);

criterion_main!(benches);
