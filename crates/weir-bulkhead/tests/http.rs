//! A real axum server and hyper client on 127.0.0.1: the bulkhead's permit is held until the
//! streamed response body ends, not until the response head is sent.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower::ServiceBuilder;
use weir_bulkhead::BulkheadLayer;
use weir_core::response::ErrorResponseLayer;
use weir_test::http::{ChannelBody, connect, get_root, serve};

#[tokio::test]
async fn the_permit_is_held_until_the_streamed_body_ends() {
    let (layer, handle) = BulkheadLayer::http(1)
        .name("api")
        .build_with_handle()
        .expect("valid bulkhead");
    // Each request's handler hands the test the sender of its streamed body.
    let (senders_tx, mut senders) = mpsc::unbounded_channel::<mpsc::Sender<Bytes>>();
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let senders_tx = senders_tx.clone();
                async move {
                    let (tx, body) = ChannelBody::channel(4);
                    senders_tx.send(tx).expect("test listening");
                    Response::new(Body::new(body))
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(layer),
        );
    let (addr, server) = serve(app).await;

    // The first request gets its head at once; its body is still streaming.
    let mut first = connect(addr).await;
    first.ready().await.expect("ready");
    let response = first.send_request(get_root()).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body_tx = senders.recv().await.expect("the handler ran");
    assert_eq!(
        handle.stats().in_flight,
        1,
        "the streaming body holds the permit"
    );

    // A second request, meanwhile, finds the bulkhead full: 503 with Retry-After.
    let mut second = connect(addr).await;
    second.ready().await.expect("ready");
    let refused = second.send_request(get_root()).await.expect("response");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let text = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(text, "bulkhead full");
    assert_eq!(handle.stats().rejected, 1);

    // The first body streams two chunks and ends: only then is the permit released.
    let mut body = response.into_body();
    body_tx
        .send(Bytes::from("hello "))
        .await
        .expect("client reading");
    let frame = body.frame().await.expect("a frame").expect("no error");
    assert_eq!(frame.into_data().expect("data"), "hello ");
    assert_eq!(handle.stats().in_flight, 1, "still streaming");
    body_tx
        .send(Bytes::from("world"))
        .await
        .expect("client reading");
    drop(body_tx);
    let rest = body.collect().await.expect("body").to_bytes();
    assert_eq!(rest, "world");
    assert_eq!(
        handle.stats().in_flight,
        0,
        "released at the end of the body"
    );

    // And the next request is admitted.
    second.ready().await.expect("ready");
    let admitted = second.send_request(get_root()).await.expect("response");
    assert_eq!(admitted.status(), StatusCode::OK);
    drop(senders.recv().await.expect("the handler ran"));
    let _ = admitted.into_body().collect().await.expect("body");
    assert_eq!(handle.stats().in_flight, 0);

    server.abort();
}
