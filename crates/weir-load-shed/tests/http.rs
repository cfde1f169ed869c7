//! A real axum server and hyper client on 127.0.0.1: requests beyond the limit get a 503 with
//! Retry-After, and handlers read the load level from their request's extensions.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceBuilder;
use weir_core::ErrorResponseLayer;
use weir_load_shed::{LoadLevel, LoadLevelLayer, LoadShedLayer, Priority};

async fn get_root(addr: SocketAddr) -> (StatusCode, Option<String>, Bytes) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let res = sender.send_request(req).await.expect("response");
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // Two requests fill the limit (one at a time, so their levels are known).
    let first = tokio::spawn(get_root(addr));
    entered.recv().await.expect("first handler entered");
    let second = tokio::spawn(get_root(addr));
    entered.recv().await.expect("second handler entered");
    assert_eq!(handle.stats().in_flight, 2);

    // The third is shed: 503 with Retry-After, never reaching the handler.
    let (status, retry_after, body) = get_root(addr).await;
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
