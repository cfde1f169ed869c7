//! #22: a probe answered from cache allocates nothing beyond its response: counted by a global
//! allocator around one HTTP probe of each path (and one gRPC `Check`, feature `tonic`), against
//! the same response built by hand.
//!
//! The counting allocator is `stats_alloc`'s, installed without `unsafe` code (the crate forbids
//! it; the benches' own allocator lives in the root package, whose tokio has no paused clock).
//! Its counters are global, so this binary holds one test: nothing else allocates meanwhile.

use std::alloc::System;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tower::{Service, ServiceExt};
use weir_health::{HEALTH_JSON, Health, HealthRegistry, HealthService, Verbose, from_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes asked for so far.
fn allocated() -> (usize, usize) {
    let stats = GLOBAL.stats();
    (
        stats.allocations + stats.reallocations,
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize,
    )
}

/// The allocations and bytes of polling `work` to completion, and its output.
async fn counted<T>(work: impl Future<Output = T>) -> ((usize, usize), T) {
    let before = allocated();
    let out = work.await;
    let after = allocated();
    ((after.0 - before.0, after.1 - before.1), out)
}

/// A registry whose ready checks say healthy and degraded (with a reason and details); a startup
/// check, a live check; every one cached for a minute; serving.
fn registry() -> HealthRegistry {
    let registry = HealthRegistry::new();
    registry
        .register("database", from_fn(|| async { Health::healthy() }))
        .ready()
        .cache_for(Duration::from_secs(60))
        .add()
        .expect("valid");
    registry
        .register(
            "cache",
            from_fn(|| async { Health::degraded("cold").with_details("3 of 8 shards") }),
        )
        .ready()
        .cache_for(Duration::from_secs(60))
        .add()
        .expect("valid");
    registry
        .register("migrations", from_fn(|| async { Health::healthy() }))
        .startup()
        .cache_for(Duration::from_secs(60))
        .add()
        .expect("valid");
    registry
        .register("event-loop", from_fn(|| async { Health::healthy() }))
        .live()
        .cache_for(Duration::from_secs(60))
        .add()
        .expect("valid");
    registry
}

/// One probe through the tower `Service`: the request is built before counting (parsing a URI
/// allocates, and a server has done it before the probe sees the request); the body is read
/// after.
async fn probe(svc: &mut HealthService, path: &'static str) -> ((usize, usize), StatusCode, Bytes) {
    let req = Request::get(path).body(()).expect("a valid request");
    let svc = ServiceExt::<Request<()>>::ready(svc)
        .await
        .expect("always ready");
    // `call` inside the counted future: a cached probe does its work there.
    let (allocs, res) = counted(async { svc.call(req).await }).await;
    let res = res.expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("full").to_bytes();
    (allocs, status, body)
}

/// The floor: the response a hand-written handler would build, the same two headers and a
/// static body. What it allocates is the response's own (its header map), not the probe's.
async fn by_hand() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(br#"{"status":"warn"}"#)));
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cached_probe_allocates_only_its_response() {
    let registry = registry();
    let mut svc = HealthService::new(registry.clone()).verbose(Verbose::OnQuery);
    let (floor, _) = counted(by_hand()).await;

    // Warm: each probe runs its checks once (a boxed evaluation, the list of reports).
    for path in ["/readyz", "/livez", "/startupz"] {
        let (allocs, _, _) = probe(&mut svc, path).await;
        assert!(allocs.0 > floor.0, "{path}: a check ran, {allocs:?}");
    }

    // Cached: the response's header map, and nothing else (the body is static).
    for (path, body) in [
        ("/readyz", r#"{"status":"warn"}"#),
        ("/livez", r#"{"status":"pass"}"#),
        ("/startupz", r#"{"status":"pass"}"#),
    ] {
        let (allocs, status, got) = probe(&mut svc, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(got, body, "{path}");
        assert_eq!(
            allocs, floor,
            "{path}: cached, as many as the response by hand"
        );
    }

    // Verbose: one more allocation, the JSON, of exactly the body's length.
    let (allocs, _, body) = probe(&mut svc, "/readyz?verbose").await;
    let text = std::str::from_utf8(&body).expect("UTF-8");
    assert!(
        text.starts_with(
            r#"{"status":"warn","checks":{"lifecycle":[{"status":"pass"}],"database":[{"status":"pass","durationMs":0.000}],"cache":[{"status":"warn","output":"cold","details":"3 of 8 shards","durationMs":"#
        ),
        "{text}"
    );
    assert_eq!(
        allocs,
        (floor.0 + 1, floor.1 + body.len()),
        "verbose and cached: the response and one buffer for the JSON"
    );

    // A gRPC `Check` of the whole server (readiness) and of one check, from cache: what tonic's
    // trait makes any implementation allocate (its boxed future), nothing more.
    #[cfg(feature = "tonic")]
    grpc::check_from_cache(registry.clone()).await;

    // Past the caching period the checks run again: the probe allocates more than the response
    // (so the counts above would see an allocation on the cached path).
    tokio::time::advance(Duration::from_secs(61)).await;
    let (allocs, _, _) = probe(&mut svc, "/readyz").await;
    assert!(allocs.0 > floor.0, "a check ran again: {allocs:?}");
    let (allocs, _, _) = probe(&mut svc, "/readyz").await;
    assert_eq!(allocs, floor, "cached again");
}

#[cfg(feature = "tonic")]
mod grpc {
    use tonic::{Request, Response, Status};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    use weir_health::{GrpcHealth, HealthRegistry, WatchStream};

    use super::counted;

    /// The floor: an implementation of the same trait answering `SERVING` at once.
    struct Constant;

    #[tonic::async_trait]
    impl Health for Constant {
        async fn check(
            &self,
            _: Request<HealthCheckRequest>,
        ) -> Result<Response<HealthCheckResponse>, Status> {
            Ok(Response::new(HealthCheckResponse {
                status: ServingStatus::Serving.into(),
            }))
        }

        type WatchStream = WatchStream;

        async fn watch(
            &self,
            _: Request<HealthCheckRequest>,
        ) -> Result<Response<WatchStream>, Status> {
            Err(Status::unimplemented("not measured"))
        }
    }

    fn request(service: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: service.to_owned(),
        })
    }

    pub(super) async fn check_from_cache(registry: HealthRegistry) {
        let req = request("");
        let (floor, _) = counted(async { Constant.check(req).await }).await;
        let health = GrpcHealth::new(registry);
        // The readiness checks and the one named are fresh in cache from the HTTP probes.
        for service in ["", "database"] {
            let req = request(service);
            let (allocs, res) = counted(async { health.check(req).await }).await;
            let res = res.expect("known").into_inner();
            assert_eq!(res.status, i32::from(ServingStatus::Serving), "{service:?}");
            // The count only: the boxed future is larger than the floor's.
            assert_eq!(
                allocs.0, floor.0,
                "{service:?}: cached, as many as the floor's"
            );
        }
    }
}
