//! The per-request cost of weir's full presets against the bare service and against the same
//! stacks built from tower's own layers, where tower has them; each on 1 and 2 threads, with
//! allocations per call.
//!
//! - **Server** (HTTP): `weir::ServerStack` (error-to-response mapping, a keyed-capable rate
//!   limit with a quota never reached, load shedding, a server timeout reading the client's
//!   deadline) against tower's `LoadShed` + `ConcurrencyLimit` + `Timeout` + `RateLimit` (which
//!   maps nothing to a response and is not `Clone`: one instance per task), and the same with
//!   tower's `Buffer` above its `RateLimit`, which is how an axum server (a `Clone` service)
//!   must mount it to share one limit.
//! - **Client** (`u64` requests): `weir::ClientStack` (total timeout, budgeted retry, circuit
//!   breaker, bulkhead, attempt timeout), in both orders, against tower's `Timeout` + `Retry`
//!   (a never-retry policy that clones the request) + `ConcurrencyLimit` + `Timeout` (tower has
//!   no circuit breaker and no retry budget on this path).
//!
//! - **Five layers** (`u64` requests), the issue #18 row: weir's load shed, bulkhead, GCRA rate
//!   limit, timeout and retry (default budget) against tower's `LoadShed`, `ConcurrencyLimit`,
//!   `RateLimit` (one per task: not `Clone`), `Timeout` and `Retry` (never-retry policy), in that
//!   order, outermost first; no preset, the layers as a user would stack them.
//!
//! Every inner service answers from an `async` block, as a real handler does.
//!
//! The server rows are run twice: with a bare `http::Request` (no header, no extension) and
//! with a "routed" request as a server behind axum's router receives it (a `host` header, an
//! extension already there). The
//! `parts/*` rows run each layer of the server stack alone, to show where its cost goes.
//!
//! `cargo bench --bench stacks -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;
use std::future::Ready;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::retry::Policy;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use weir::rate_limit::{Quota, RateLimitLayer};
use weir::{ClientStack, ServerStack};

use crate::support::{Bench, Req, bare};

/// tower's `Retry` policy that never retries; it clones the request as a real policy must.
#[derive(Clone, Copy)]
struct NeverRetry;

impl<Res, E> Policy<Req, Res, E> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, _: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(*req)
    }
}

/// The HTTP handler every server stack wraps: answers at once, from an `async` block as a real
/// handler does.
fn handler()
-> impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_: Request<String>| async { Ok(Response::new(String::new())) })
}

/// An HTTP GET made from the bench's `u64` (no allocation: an empty `String` body).
fn request(_: Req) -> Request<String> {
    Request::new(String::new())
}

/// The same GET as a server really receives it behind axum's router: a `host` header (every
/// HTTP/1.1 request has one, so the layers that read headers search a non-empty map) and an
/// extension already there (axum puts `MatchedPath` in every request).
fn routed_request(n: Req) -> Request<String> {
    let mut req = request(n);
    req.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_static("api.example.com"),
    );
    req.extensions_mut().insert(n);
    req
}

fn server(c: &mut Criterion) {
    let mut bench = Bench::new(c, "stacks-server");
    bench.service("http/service_fn", || handler().map_request(request));
    bench.service("weir-server", || {
        ServerStack::builder()
            .build()
            .expect("valid")
            .layer(handler())
            .map_request(request)
    });
    bench.service("weir-server+rate-limit", || {
        let limit = RateLimitLayer::new(Quota::per_second(u32::MAX));
        ServerStack::builder()
            .rate_limit(limit)
            .build()
            .expect("valid")
            .layer(handler())
            .map_request(request)
    });
    // tower's RateLimit is not Clone (it owns its Sleep): one stack per task on 2 threads.
    bench.service_per_task("tower-server", || {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1_000)
            .timeout(Duration::from_secs(30))
            .rate_limit(u64::MAX, Duration::from_secs(1))
            .service(handler())
            .map_request(request)
    });
    // The same stack as an axum server can mount it (a `Clone` service, one limit shared by
    // every connection): tower's RateLimit behind tower's Buffer, as axum's docs prescribe.
    bench.service("tower-server-buffered", || {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1_000)
            .timeout(Duration::from_secs(30))
            .buffer(1_024)
            .rate_limit(u64::MAX, Duration::from_secs(1))
            .service(handler())
            .map_request(request)
    });
    // The server stack's parts, one at a time over the same handler: where its cost goes.
    bench.service("parts/error-responses", || {
        weir::core::response::ErrorResponseLayer::new()
            .layer(handler())
            .map_request(request)
    });
    bench.service("parts/load-shed", || {
        weir::load_shed::LoadShedLayer::new(1_000)
            .layer(handler())
            .map_request(request)
    });
    bench.service("parts/timeout-server", || {
        weir::timeout::TimeoutLayer::server(Duration::from_secs(30))
            .build()
            .expect("valid")
            .layer(handler())
            .map_request(request)
    });
    bench.service("parts/rate-limit", || {
        RateLimitLayer::new(Quota::per_second(u32::MAX))
            .layer(handler())
            .map_request(request)
    });
    bench.service("routed/service_fn", || {
        handler().map_request(routed_request)
    });
    bench.service("routed/weir-server", || {
        ServerStack::builder()
            .build()
            .expect("valid")
            .layer(handler())
            .map_request(routed_request)
    });
    bench.service("routed/weir-server+rate-limit", || {
        let limit = RateLimitLayer::new(Quota::per_second(u32::MAX));
        ServerStack::builder()
            .rate_limit(limit)
            .build()
            .expect("valid")
            .layer(handler())
            .map_request(routed_request)
    });
    bench.service_per_task("routed/tower-server", || {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1_000)
            .timeout(Duration::from_secs(30))
            .rate_limit(u64::MAX, Duration::from_secs(1))
            .service(handler())
            .map_request(routed_request)
    });
    bench.finish();
}

fn client(c: &mut Criterion) {
    let mut bench = Bench::new(c, "stacks-client");
    bench.service("service_fn", bare);
    bench.service("weir-client", || {
        ClientStack::builder().build().expect("valid").layer(bare())
    });
    bench.service("weir-client-breaker-outside", || {
        ClientStack::builder()
            .breaker_outside_retry()
            .build()
            .expect("valid")
            .layer(bare())
    });
    bench.service("tower-client", || {
        ServiceBuilder::new()
            .timeout(Duration::from_secs(30))
            .retry(NeverRetry)
            .concurrency_limit(1_000)
            .timeout(Duration::from_secs(10))
            .service(bare())
    });
    bench.finish();
}

fn five_layers(c: &mut Criterion) {
    let mut bench = Bench::new(c, "stacks-5");
    bench.service("service_fn", bare);
    let limit = RateLimitLayer::new(Quota::per_second(u32::MAX));
    bench.service("weir-5", || {
        ServiceBuilder::new()
            .layer(weir::load_shed::LoadShedLayer::new(1_000))
            .layer(weir::bulkhead::BulkheadLayer::new(1_000))
            .layer(limit.clone())
            .layer(weir::timeout::TimeoutLayer::new(Duration::from_secs(30)))
            .layer(weir::retry::RetryLayer::new(3))
            .service(bare())
    });
    // tower's RateLimit is not Clone: one stack per task on 2 threads.
    bench.service_per_task("tower-5", || {
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1_000)
            .rate_limit(u64::MAX, Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .retry(NeverRetry)
            .service(bare())
    });
    bench.finish();
}

criterion_group!(benches, server, client, five_layers);
criterion_main!(benches);
