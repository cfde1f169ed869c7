//! #17.3: weir's HTTP stacks hold a call's slot until its response body ends. A real axum server
//! on 127.0.0.1 streams a body the test feeds: while it streams, a second request is refused with
//! a 503; once it has ended, the next request is admitted. `ServerStack`, and
//! `ServiceBuilderExt::{weir_bulkhead, weir_load_shed}`, ran in plain mode before and let the
//! second request in as soon as the first head was sent.

#![cfg(all(feature = "bulkhead", feature = "load-shed", feature = "presets"))]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower::ServiceBuilder;
use weir::{ServerStack, ServiceBuilderExt};
use weir_test::http::{ChannelBody, connect, get_root, serve};

/// A router whose `GET /` streams a body, and the receiver of each such body's sender (the test
/// decides what the body sends and when it ends).
fn streaming_router() -> (Router, mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>) {
    let (senders_tx, senders) = mpsc::unbounded_channel();
    let router = Router::new().route(
        "/",
        get(move || {
            let senders_tx = senders_tx.clone();
            async move {
                let (tx, body) = ChannelBody::channel(4);
                senders_tx.send(tx).expect("test listening");
                Response::new(Body::new(body))
            }
        }),
    );
    (router, senders)
}

/// Serves `app` (one slot) and checks that a streaming body holds the slot until it ends;
/// `in_flight` reads the stack's own count, where it has a handle.
async fn a_streaming_body_holds_the_only_slot(
    app: Router,
    mut senders: mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>,
    in_flight: impl Fn() -> Option<usize>,
) {
    let (addr, server) = serve(app).await;

    // The first request gets its head at once; its body is still streaming.
    let mut first = connect(addr).await;
    first.ready().await.expect("ready");
    let response = first.send_request(get_root()).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body_tx = senders.recv().await.expect("the handler ran");
    if let Some(n) = in_flight() {
        assert_eq!(n, 1, "the streaming body holds its slot");
    }

    // Meanwhile a second request finds the slot taken: 503 with Retry-After.
    let mut second = connect(addr).await;
    second.ready().await.expect("ready");
    let refused = second.send_request(get_root()).await.expect("response");
    assert_eq!(
        refused.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a second request is refused while the first body streams"
    );
    assert!(refused.headers().contains_key("retry-after"));
    let _ = refused.into_body().collect().await.expect("body");

    // The first body sends its chunk and ends: only then is the slot free.
    body_tx
        .send(Bytes::from("hello"))
        .await
        .expect("client reading");
    drop(body_tx);
    let text = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(text, "hello");
    if let Some(n) = in_flight() {
        assert_eq!(n, 0, "released at the end of the body");
    }

    // And the next request is admitted.
    second.ready().await.expect("ready");
    let admitted = second.send_request(get_root()).await.expect("response");
    assert_eq!(admitted.status(), StatusCode::OK);
    drop(senders.recv().await.expect("the handler ran"));
    let _ = admitted.into_body().collect().await.expect("body");

    server.abort();
}

#[tokio::test]
async fn server_stack_counts_a_call_until_its_body_ends() {
    let stack = ServerStack::builder()
        .max_in_flight(1)
        .build()
        .expect("valid stack");
    let shedder = stack.load_shed();
    let (router, senders) = streaming_router();
    a_streaming_body_holds_the_only_slot(router.layer(stack), senders, || {
        Some(shedder.stats().in_flight)
    })
    .await;
    assert_eq!(shedder.stats().shed, 1);
}

#[tokio::test]
async fn service_builder_bulkhead_holds_its_permit_until_the_body_ends() {
    let (router, senders) = streaming_router();
    let app = router.layer(ServiceBuilder::new().weir_error_response().weir_bulkhead(1));
    a_streaming_body_holds_the_only_slot(app, senders, || None).await;
}

#[tokio::test]
async fn service_builder_shed_load_counts_a_call_until_its_body_ends() {
    let (router, senders) = streaming_router();
    let app = router.layer(
        ServiceBuilder::new()
            .weir_error_response()
            .weir_load_shed(1),
    );
    a_streaming_body_holds_the_only_slot(app, senders, || None).await;
}
