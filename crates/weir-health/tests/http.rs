//! The HTTP probes over a real axum server on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use weir_health::{HEALTH_JSON, Health, HealthRegistry, HealthService, Verbose, from_fn};
use weir_test::http::{connect, serve};

async fn get_path(addr: std::net::SocketAddr, path: &str) -> (StatusCode, Option<String>, String) {
    let mut sender = connect(addr).await;
    let req = http::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status();
    let ty = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, ty, String::from_utf8(body.to_vec()).unwrap())
}

fn registry_with_switch() -> (HealthRegistry, Arc<AtomicBool>) {
    let registry = HealthRegistry::new();
    let down = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&down);
    registry
        .register(
            "upstream",
            from_fn(move || {
                let down = flag.load(Ordering::SeqCst);
                async move {
                    if down {
                        Health::unhealthy("refused \"x\"").with_details("10.0.0.1:5432")
                    } else {
                        Health::healthy()
                    }
                }
            }),
        )
        .ready()
        .cache_for(std::time::Duration::ZERO)
        .add()
        .unwrap();
    registry
        .register("cache", from_fn(|| async { Health::degraded("cold") }))
        .ready()
        .add()
        .unwrap();
    (registry, down)
}

/// #22.2: as an axum fallback service: the app's routes still answer, the probes answer 200
/// (degraded is still 200) or 503, in `application/health+json`, other paths 404.
#[tokio::test]
async fn probes_as_an_axum_fallback() {
    let (registry, down) = registry_with_switch();
    let app = Router::new()
        .route("/", get(|| async { "app" }))
        .fallback_service(HealthService::new(registry.clone()));
    let (addr, server) = serve(app).await;

    assert_eq!(get_path(addr, "/").await.2, "app");
    let (status, ty, body) = get_path(addr, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ty.as_deref(), Some(HEALTH_JSON));
    assert_eq!(body, r#"{"status":"warn"}"#);
    assert_eq!(get_path(addr, "/livez").await.2, r#"{"status":"pass"}"#);

    down.store(true, Ordering::SeqCst);
    let (status, _, body) = get_path(addr, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // No detail unless allowed, even when asked.
    assert_eq!(body, r#"{"status":"fail"}"#);
    assert_eq!(
        get_path(addr, "/readyz?verbose").await.2,
        r#"{"status":"fail"}"#
    );
    assert_eq!(get_path(addr, "/livez").await.0, StatusCode::OK);

    registry.lifecycle().draining();
    down.store(false, Ordering::SeqCst);
    assert_eq!(
        get_path(addr, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get_path(addr, "/livez").await.0, StatusCode::OK);
    assert_eq!(get_path(addr, "/nope").await.0, StatusCode::NOT_FOUND);
    server.abort();
}

/// #22.2: nested under a prefix at custom paths, with detail on `?verbose` when allowed: every
/// check's status, output, details and duration.
#[tokio::test]
async fn nested_with_custom_paths_and_detail() {
    let (registry, down) = registry_with_switch();
    down.store(true, Ordering::SeqCst);
    let probes = HealthService::new(registry)
        .ready_path("/ready")
        .live_path("/live")
        .verbose(Verbose::OnQuery);
    let app = Router::new().nest_service("/health", probes);
    let (addr, server) = serve(app).await;

    let (status, _, body) = get_path(addr, "/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"status":"fail"}"#);
    let (_, _, body) = get_path(addr, "/health/ready?verbose").await;
    assert!(body.starts_with(r#"{"status":"fail","checks":{"lifecycle":[{"status":"pass"}],"upstream":[{"status":"fail","output":"refused \"x\"","details":"10.0.0.1:5432","durationMs":"#), "{body}");
    assert!(
        body.contains(r#""cache":[{"status":"warn","output":"cold","durationMs":"#),
        "{body}"
    );
    for off in ["verbose=false", "verbose=0", "verbosely", "x=verbose"] {
        let (_, _, body) = get_path(addr, &format!("/health/ready?{off}")).await;
        assert_eq!(body, r#"{"status":"fail"}"#, "?{off} asks for no detail");
    }
    let (_, _, body) = get_path(addr, "/health/ready?verbose=true").await;
    assert!(body.contains(r#""checks""#), "{body}");
    assert_eq!(
        get_path(addr, "/health/readyz").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get_path(addr, "/health/live").await.0, StatusCode::OK);
    server.abort();
}
