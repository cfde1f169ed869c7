//! #22 over real sockets on 127.0.0.1: the server preset (`ServerStack`) exempts the health
//! probes from its rate limit and its load shedder, so a probe is never refused by the
//! protections it reports on.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use weir::ServerStack;
use weir::health::{HealthRegistry, HealthService};
use weir::rate_limit::RateLimitLayer;

type TestClient = Client<HttpConnector, Empty<Bytes>>;

/// Serves `app` on a free port of 127.0.0.1.
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn get(client: &TestClient, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let response = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .expect("valid request"),
        )
        .await
        .expect("the server answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The application: `/` answers at once, `/slow` when `gate` is notified; the probes beside them.
fn app(registry: &HealthRegistry, gate: &Arc<Notify>) -> Router {
    let probes = HealthService::new(registry.clone());
    let gate = Arc::clone(gate);
    Router::new()
        .route("/", routing::get(|| async { "hello" }))
        .route(
            "/slow",
            routing::get(move || {
                let gate = Arc::clone(&gate);
                async move {
                    gate.notified().await;
                    "slow"
                }
            }),
        )
        .route_service("/livez", probes.clone())
        .route_service("/readyz", probes.clone())
        .route_service("/startupz", probes)
}

/// A flood that makes the rate limit refuse everyone: the probes still answer, from the
/// registry. With the exemption turned off they are refused too (the stack before #22).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_the_rate_limit_refuses_leaves_the_probes_answering() {
    let registry = HealthRegistry::new();
    let gate = Arc::new(Notify::new());
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();

    // One request a minute for the whole server.
    let limit = || {
        RateLimitLayer::per_minute(1)
            .http()
            .build()
            .expect("a valid limit")
    };
    let stack = ServerStack::builder()
        .rate_limit(limit())
        .build()
        .expect("valid");
    assert_eq!(stack.exempt_paths(), weir::DEFAULT_EXEMPT_PATHS);
    let addr = serve(app(&registry, &gate).layer(stack)).await;

    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&client, addr, "/").await.0);
    }
    assert_eq!(statuses[0], StatusCode::OK);
    assert!(
        statuses[1..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    for path in ["/livez", "/readyz", "/startupz"] {
        let (status, body) = get(&client, addr, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, r#"{"status":"pass"}"#, "{path}");
    }
    // The probes took nothing from the limit: `/` is still refused, not admitted.
    assert_eq!(
        get(&client, addr, "/").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Draining: readiness says so (503 from the registry, not a refusal of the stack).
    registry.lifecycle().draining();
    let (status, body) = get(&client, addr, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"status":"fail"}"#);
    registry.lifecycle().serving();

    // Without the exemption the probe is refused by the limit it should report on.
    let stack = ServerStack::builder()
        .rate_limit(limit())
        .exempt_paths(Vec::<&'static str>::new())
        .build()
        .expect("valid");
    let addr = serve(app(&registry, &gate).layer(stack)).await;
    assert_eq!(get(&client, addr, "/").await.0, StatusCode::OK);
    assert_eq!(
        get(&client, addr, "/readyz").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// The load shedder full (one call in flight, the most it admits): a request is shed with a 503,
/// the probes answer; custom probe paths are exempt in place of the defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_load_shedder_leaves_the_probes_answering() {
    let registry = HealthRegistry::new();
    let gate = Arc::new(Notify::new());
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let stack = ServerStack::builder()
        .max_in_flight(1)
        .exempt_paths(["/livez", "/readyz"])
        .build()
        .expect("valid");
    let shedder = stack.load_shed();
    let addr = serve(app(&registry, &gate).layer(stack)).await;

    let slow = {
        let client = client.clone();
        tokio::spawn(async move { get(&client, addr, "/slow").await })
    };
    // Wait (without a clock) until the slow call holds the one slot.
    while shedder.stats().in_flight == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        get(&client, addr, "/").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&client, addr, "/livez").await.0, StatusCode::OK);
    assert_eq!(get(&client, addr, "/readyz").await.0, StatusCode::OK);
    // `/startupz` is not among the paths given: it is shed like any request.
    assert_eq!(
        get(&client, addr, "/startupz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    gate.notify_one();
    assert_eq!(
        slow.await.expect("no panic"),
        (StatusCode::OK, "slow".to_owned())
    );
    assert_eq!(get(&client, addr, "/").await.0, StatusCode::OK);
}
