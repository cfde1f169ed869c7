//! A health probe answered from cache (#22): every check's result is fresh, no check runs; each
//! on 1 and 2 threads, with allocations per call.
//!
//! - **HTTP** (`health`): a `GET /readyz` through weir-health's tower `Service` (three ready
//!   checks and the lifecycle), without and with detail, against the bare floor and against a
//!   handler answering the same response by hand (the two headers and a static body: what any
//!   HTTP answer of that shape allocates, its header map).
//! - **gRPC** (`health-grpc`): a `Check` of the whole server (the empty name) through the
//!   `grpc.health.v1.Health` trait, weir-health's `GrpcHealth` against tonic-health's own
//!   `HealthService` (a status set by hand, read from a map behind an async lock) and against an
//!   implementation answering `SERVING` at once: tonic's trait boxes every `check`'s future
//!   (`async_trait`), so that floor allocates once per call.
//!
//! The `u64` request of the benches becomes an `http::Request` (or a `HealthCheckRequest`)
//! without allocating: a static URI, no header.
//!
//! `cargo bench --bench health -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::Full;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health as HealthProto;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Service, ServiceBuilder, service_fn};
use weir::health::{
    GrpcHealth, HEALTH_JSON, Health, HealthRegistry, HealthService, Verbose, WatchStream, from_fn,
};

use crate::support::{Bench, Req, bare};

/// Long enough that no check runs again while the benchmark measures.
const CACHE_FOR: Duration = Duration::from_secs(3600);

/// A registry with three ready checks (healthy, healthy, degraded with a reason), serving.
fn registry() -> HealthRegistry {
    let registry = HealthRegistry::new();
    for (name, degraded) in [("database", false), ("queue", false), ("cache", true)] {
        registry
            .register(
                name,
                from_fn(move || async move {
                    if degraded {
                        Health::degraded("cold")
                    } else {
                        Health::healthy()
                    }
                }),
            )
            .ready()
            .cache_for(CACHE_FOR)
            .add()
            .expect("valid");
    }
    registry
}

/// `GET /readyz` from the bench's `u64`, without allocating.
fn readyz(_: Req) -> Request<()> {
    let mut req = Request::new(());
    *req.uri_mut() = Uri::from_static("/readyz");
    req
}

/// The bench's `u64` from an answer: its status code.
fn code(res: Response<Full<Bytes>>) -> Req {
    Req::from(res.status().as_u16())
}

/// A `/readyz` probe through weir-health's service, as a `Service<u64>`; the first call runs
/// the checks, every later one reads them from cache.
fn weir_readyz(
    verbose: Verbose,
) -> impl Service<Req, Response = Req, Error = Infallible, Future: Send> + Clone + Send + 'static {
    ServiceBuilder::new()
        .map_request(readyz)
        .map_response(code)
        .service(HealthService::new(registry()).verbose(verbose))
}

/// The same answer by hand, from an `async` block: the two headers and a static body.
fn by_hand()
-> impl Service<Req, Response = Req, Error = Infallible, Future: Send> + Clone + Send + 'static {
    ServiceBuilder::new()
        .map_request(readyz)
        .map_response(code)
        .service(service_fn(|_: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(br#"{"status":"warn"}"#)));
            let headers = res.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok::<_, Infallible>(res)
        }))
}

/// The floor of the gRPC rows: `SERVING` at once, through tonic's (boxing) trait.
struct Constant;

#[tonic::async_trait]
impl HealthProto for Constant {
    async fn check(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not benchmarked"))
    }
}

/// A `Check` of the whole server through `health`'s trait, as a `Service<u64>`.
fn grpc_check<H: HealthProto>(
    health: H,
) -> impl Service<Req, Response = Req, Error = Infallible, Future: Send> + Clone + Send + 'static {
    let health = Arc::new(health);
    service_fn(move |_: Req| {
        let health = Arc::clone(&health);
        async move {
            let res = health
                .check(tonic::Request::new(HealthCheckRequest::default()))
                .await
                .expect("the whole server is known");
            Ok(Req::from(res.into_inner().status.unsigned_abs()))
        }
    })
}

fn health(c: &mut Criterion) {
    let mut bench = Bench::new(c, "health");
    bench.service("service_fn", bare);
    bench.service("by-hand", by_hand);
    bench.service("weir-readyz", || weir_readyz(Verbose::Never));
    bench.service("weir-readyz-verbose", || weir_readyz(Verbose::Always));
    bench.finish();

    let mut bench = Bench::new(c, "health-grpc");
    bench.service("constant", || grpc_check(Constant));
    bench.service("tonic-health", || {
        grpc_check(tonic_health::server::HealthService::from_health_reporter(
            tonic_health::server::HealthReporter::new(),
        ))
    });
    bench.service("weir-health", || grpc_check(GrpcHealth::new(registry())));
    bench.finish();
}

criterion_group!(benches, health);
criterion_main!(benches);
