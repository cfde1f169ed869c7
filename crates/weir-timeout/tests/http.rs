//! Deadline propagation over real sockets: a client calls axum server A with a budget; A's
//! handler calls axum server B through a hyper client wrapped in weir's timeout (client mode);
//! B sees the budget A had left, minus the allowance.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use weir_core::{Deadline, Error, response::ErrorResponseLayer, wire::TIMEOUT_MS};
use weir_test::http::{connect, serve};
use weir_timeout::TimeoutLayer;

const ALLOWANCE: Duration = Duration::from_millis(100);

/// Server B: answers with the `x-timeout-ms` it received, and counts its calls.
async fn server_b(calls: Arc<AtomicUsize>) -> SocketAddr {
    let app = Router::new()
        .route(
            "/echo",
            get(
                |State(calls): State<Arc<AtomicUsize>>, headers: HeaderMap| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    headers
                        .get(TIMEOUT_MS)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned()
                },
            ),
        )
        .with_state(calls);
    serve(app).await.0
}

/// Server A: honours the caller's `x-timeout-ms` (up to 10 s) and calls B with what is left.
async fn server_a(b: SocketAddr) -> SocketAddr {
    let client = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder()
                .propagate(ALLOWANCE)
                .name("to-b")
                .build()
                .expect("valid"),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let handler = move |Extension(deadline): Extension<Deadline>| {
        let client = client.clone();
        async move {
            let mut req = Request::get(format!("http://{b}/echo"))
                .body(Empty::new())
                .expect("valid request");
            // Hand this request's budget to the outgoing call.
            deadline.set_earliest(req.extensions_mut());
            match client.oneshot(req).await {
                Ok(res) => {
                    let body = res.into_body().collect().await.expect("body").to_bytes();
                    (StatusCode::OK, String::from_utf8_lossy(&body).into_owned())
                }
                Err(err) if Error::find(&*err).is_some_and(Error::is_timeout) => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "not sent: no time left".to_owned(),
                ),
                Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()),
            }
        }
    };
    let app = Router::new().route("/call", get(handler)).layer(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(
                TimeoutLayer::server(Duration::from_secs(10))
                    .name("edge")
                    .build()
                    .expect("valid"),
            ),
    );
    serve(app).await.0
}

/// Calls A with `x-timeout-ms: budget_ms`; returns the status and body.
async fn call_a(a: SocketAddr, budget_ms: &str) -> (StatusCode, String) {
    let mut sender = connect(a).await;
    let req = Request::get("/call")
        .header("host", "127.0.0.1")
        .header(TIMEOUT_MS, budget_ms)
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let res = sender.send_request(req).await.expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_second_server_sees_the_reduced_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let b = server_b(Arc::clone(&calls)).await;
    let a = server_a(b).await;

    let (status, body) = call_a(a, "5000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen: u64 = body.parse().expect("B received a numeric x-timeout-ms");
    // 5000 ms, minus the 100 ms allowance, minus the time A took (well under a second).
    assert!(seen <= 4900, "B saw {seen} ms");
    assert!(seen > 3900, "B saw {seen} ms");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_budget_below_the_allowance_is_not_sent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let b = server_b(Arc::clone(&calls)).await;
    let a = server_a(b).await;

    // 50 ms is less than the 100 ms allowance: A's client refuses without calling B.
    let (status, body) = call_a(a, "50").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
