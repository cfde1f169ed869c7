//! Real sockets: an axum route behind a breaker answers 503 with Retry-After once the circuit is
//! open; a hyper client protected by a breaker stops calling a failing server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::{Error, classify::HttpStatus, response::ErrorResponseLayer};
use weir_test::http::serve;

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn get_req(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).expect("valid request")
}

#[tokio::test]
async fn an_axum_route_behind_an_open_breaker_answers_503_with_retry_after() {
    let hits = Arc::new(AtomicUsize::new(0));
    let handler_hits = Arc::clone(&hits);
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .name("orders")
        .open_duration(Duration::from_secs(30))
        .classifier(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let app = Router::new()
        .route(
            "/",
            get(move || {
                handler_hits.fetch_add(1, Ordering::SeqCst);
                async { (StatusCode::INTERNAL_SERVER_ERROR, "database down") }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(breaker),
        );
    let (addr, server) = serve(app).await;
    let client = client();
    let uri = format!("http://{addr}/");

    for _ in 0..2 {
        let response = client.request(get_req(&uri)).await.expect("response");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(handle.state(), State::Open);

    let response = client.request(get_req(&uri)).await.expect("response");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "circuit open");
    // The handler was not called for the rejected request.
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    server.abort();
}

#[tokio::test]
async fn a_hyper_client_behind_a_breaker_stops_calling_a_failing_server() {
    let hits = Arc::new(AtomicUsize::new(0));
    let handler_hits = Arc::clone(&hits);
    let app = Router::new().route(
        "/",
        get(move || {
            handler_hits.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "7")],
                    "busy",
                )
            }
        }),
    );
    let (addr, server) = serve(app).await;
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(3)
        .classifier(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let mut client = ServiceBuilder::new().layer(breaker).service(client());
    let uri = format!("http://{addr}/");

    for _ in 0..3 {
        let response = client
            .ready()
            .await
            .expect("ready")
            .call(get_req(&uri))
            .await
            .expect("a response");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(handle.state(), State::Open);
    let err = client
        .ready()
        .await
        .expect("ready")
        .call(get_req(&uri))
        .await
        .expect_err("rejected");
    let weir = Error::find(&*err).expect("a weir error");
    assert!(weir.is_circuit_open());
    // #27.2: the server's Retry-After (7 s) answered one request; the open time is the
    // breaker's own (5 s by default).
    let after = weir.retry_after().expect("retry after");
    assert!(
        after <= Duration::from_secs(5) && after > Duration::from_secs(4),
        "{after:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    server.abort();
}
