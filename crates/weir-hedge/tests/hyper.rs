//! A real axum server on 127.0.0.1 whose first answer is slow, and a hyper client behind
//! `HedgeLayer::http()`: the GET is hedged and the fast copy's answer comes back; a POST is
//! never hedged. Real sockets, so real time: the bounds are generous and nothing is timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::any;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use weir_core::HttpStatus;
use weir_hedge::HedgeLayer;
use weir_retry::ReplayBody;

/// The first request waits 30 s (far beyond any hedge delay); every later one answers at once.
async fn app() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/",
            any(|State(seen): State<Arc<AtomicUsize>>| async move {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 1 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                format!("attempt {n}")
            }),
        )
        .with_state(Arc::clone(&seen));
    let (addr, _server) = weir_test::http::serve(router).await;
    (addr, seen)
}

/// #21.1: over real sockets, a slow GET is hedged and the hedge's answer is taken.
#[tokio::test]
async fn a_slow_get_is_answered_by_its_hedge() {
    let (addr, seen) = app().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>();
    let (layer, handle) = HedgeLayer::http()
        .delay(Duration::from_millis(50))
        .classify(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let request = Request::get(format!("http://{addr}/"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        layer.layer(client).oneshot(request),
    )
    .await
    .expect("the hedge answers long before the slow primary")
    .expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "attempt 2");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (1, 1));
}

/// #21.1: a POST (not idempotent, no `Idempotency-Key`) is sent once, however slow.
#[tokio::test]
async fn a_post_is_never_hedged() {
    let (addr, seen) = app().await;
    // Use up the slow first answer, so the POST is fast.
    seen.store(1, Ordering::SeqCst);
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>();
    let (layer, handle) = HedgeLayer::http()
        .parallel()
        .classify(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let request = Request::post(format!("http://{addr}/"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = layer
        .layer(client)
        .oneshot(request)
        .await
        .expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "attempt 2");
    // Parallel mode would have sent a second copy at once; the POST went once.
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(handle.hedges_sent(), 0);
}
