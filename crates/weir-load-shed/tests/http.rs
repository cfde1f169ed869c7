//! A real axum server and hyper client on 127.0.0.1: requests beyond the limit get a 503 with
//! Retry-After, handlers read the load level from their request's extensions, and in `Http`
//! mode a call stays in flight until its streamed response body ends.

use std::net::SocketAddr;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, watch};
use tower::ServiceBuilder;
use weir_core::response::ErrorResponseLayer;
use weir_load_shed::{LoadLevel, LoadLevelLayer, LoadShedLayer, Priority};
use weir_test::http::{ChannelBody, connect, get_root, serve};

/// One `GET /` on a connection of its own: status, `Retry-After` and body.
async fn fetch_root(addr: SocketAddr) -> (StatusCode, Option<String>, Bytes) {
    let res = connect(addr)
        .await
        .send_request(get_root())
        .await
        .expect("response");
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, retry_after, body)
}

#[tokio::test]
async fn sheds_with_503_and_hands_the_load_level_to_handlers() {
    let (shed, handle) = LoadShedLayer::builder()
        .max_in_flight(2)
        .share(Priority::Normal, 1.0)
        .name("edge")
        .build_with_handle()
        .expect("valid load shedder");
    let (open_tx, open_rx) = watch::channel(false);
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let app = Router::new()
        .route(
            "/",
            get(move |Extension(level): Extension<LoadLevel>| {
                let mut open = open_rx.clone();
                let entered = entered_tx.clone();
                async move {
                    entered.send(()).expect("test listening");
                    open.wait_for(|open| *open).await.expect("gate");
                    level.as_str()
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(shed)
                .layer(LoadLevelLayer::new(handle.clone())),
        );
    let (addr, server) = serve(app).await;

    // Two requests fill the limit (one at a time, so their levels are known).
    let first = tokio::spawn(fetch_root(addr));
    entered.recv().await.expect("first handler entered");
    let second = tokio::spawn(fetch_root(addr));
    entered.recv().await.expect("second handler entered");
    assert_eq!(handle.stats().in_flight, 2);

    // The third is shed: 503 with Retry-After, never reaching the handler.
    let (status, retry_after, body) = fetch_root(addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body, "overloaded");
    assert_eq!(handle.stats().shed, 1);

    open_tx.send(true).expect("handlers waiting");
    let (status, _, body) = first.await.expect("first");
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"normal"[..]),
        "1 of 2 in flight"
    );
    let (status, _, body) = second.await.expect("second");
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"critical"[..]),
        "2 of 2 in flight"
    );
    assert_eq!(handle.stats().in_flight, 0);
    server.abort();
}

#[tokio::test]
async fn in_http_mode_the_slot_is_held_until_the_streamed_body_ends() {
    let (shed, handle) = LoadShedLayer::http(1)
        .name("edge")
        .build_with_handle()
        .expect("valid load shedder");
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
                .layer(shed),
        );
    let (addr, server) = serve(app).await;

    // The first request gets its head at once; its body is still streaming, and the call is
    // still in flight (not yet counted as a success).
    let mut first = connect(addr).await;
    first.ready().await.expect("ready");
    let response = first.send_request(get_root()).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body_tx = senders.recv().await.expect("the handler ran");
    let s = handle.stats();
    assert_eq!(
        (s.in_flight, s.succeeded),
        (1, 0),
        "the streaming body holds the slot"
    );

    // A second request, meanwhile, is shed: 503 with Retry-After, never reaching the handler.
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
    assert_eq!(text, "overloaded");
    assert_eq!(handle.stats().shed, 1);

    // The first body streams two chunks and ends: only then does the call leave.
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
    let s = handle.stats();
    assert_eq!(
        (s.in_flight, s.succeeded, s.ignored),
        (0, 1, 0),
        "released, and counted a success, at the end of the body"
    );

    // The next request is admitted; a client that goes away mid-body releases the slot too.
    second.ready().await.expect("ready");
    let admitted = second.send_request(get_root()).await.expect("response");
    assert_eq!(admitted.status(), StatusCode::OK);
    let body_tx = senders.recv().await.expect("the handler ran");
    assert_eq!(handle.stats().in_flight, 1);
    drop(admitted);
    drop(second);
    // The server notices the closed connection when it writes, and drops the body.
    let mut chunks = 0;
    while handle.stats().in_flight != 0 {
        assert!(
            chunks < 10_000,
            "the server never dropped the abandoned body"
        );
        if body_tx.send(Bytes::from("more")).await.is_err() {
            break;
        }
        chunks += 1;
        tokio::task::yield_now().await;
    }
    let s = handle.stats();
    assert_eq!(
        (s.in_flight, s.succeeded, s.ignored),
        (0, 2, 0),
        "an abandoned body ends the call as the success its head was"
    );
    let mut third = connect(addr).await;
    third.ready().await.expect("ready");
    let admitted = third.send_request(get_root()).await.expect("response");
    assert_eq!(
        admitted.status(),
        StatusCode::OK,
        "the abandoned body's slot came back"
    );
    drop(senders.recv().await.expect("the handler ran"));
    let _ = admitted.into_body().collect().await.expect("body");
    assert_eq!(handle.stats().in_flight, 0);

    server.abort();
}
