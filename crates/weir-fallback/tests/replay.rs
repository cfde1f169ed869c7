//! #20: the alternative service gets the request through weir-retry's replay, as a retry would
//! resend it: a POST's streamed body (not `Clone`) is read into memory up to the limit and sent
//! to both the primary and the alternative, here two axum servers on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::classify::HttpStatus;
use weir_fallback::{FALLBACK_HEADER, FallbackLayer, HttpReplay, ReplayBody};
use weir_test::http::{ChannelBody, serve};

type Req = http::Request<ReplayBody<ChannelBody>>;

/// A client that opens one HTTP/1 connection per request to `addr`, for bodies the replay made.
fn client(
    addr: SocketAddr,
) -> impl Service<Req, Response = http::Response<Incoming>, Error = hyper::Error> + Clone {
    service_fn(move |req: Req| async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender.send_request(req).await
    })
}

/// What one upstream saw: the bodies it received.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn bodies(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// The primary (503 while `down`, else `primary took <body>`) and the replica (`replica took
/// <body>`), each recording the bodies it received.
async fn upstreams(down: Arc<AtomicBool>) -> (SocketAddr, Seen, SocketAddr, Seen) {
    let primary_seen = Seen::default();
    let seen = primary_seen.clone();
    let primary = Router::new().route(
        "/orders",
        post(move |body: String| {
            seen.0.lock().unwrap().push(body.clone());
            let status = if down.load(SeqCst) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            async move { (status, format!("primary took {body}")) }
        }),
    );
    let replica_seen = Seen::default();
    let seen = replica_seen.clone();
    let replica = Router::new().route(
        "/orders",
        post(move |body: String| {
            seen.0.lock().unwrap().push(body.clone());
            async move { format!("replica took {body}") }
        }),
    );
    let (primary, _) = serve(primary).await;
    let (replica, _) = serve(replica).await;
    (primary, primary_seen, replica, replica_seen)
}

/// A POST whose body streams in two chunks (the sender is dropped: the body is complete).
async fn post_order(key: Option<&str>) -> http::Request<ChannelBody> {
    let (tx, body) = ChannelBody::channel(4);
    tx.send(Bytes::from_static(b"order ")).await.unwrap();
    tx.send(Bytes::from_static(b"7")).await.unwrap();
    drop(tx);
    let mut req = http::Request::post("/orders").header("host", "127.0.0.1");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.body(body).unwrap()
}

/// One call through `svc`, ready first; the test fails on an error.
async fn send<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

async fn text(res: http::Response<Incoming>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The primary answers: the replica is never called. Then it fails (503): the replica gets the
/// same POST body and its answer is marked `weir-fallback: service`.
#[tokio::test]
async fn a_post_body_reaches_the_alternative_when_the_primary_fails() {
    let down = Arc::new(AtomicBool::new(false));
    let (primary, primary_seen, replica, replica_seen) = upstreams(Arc::clone(&down)).await;
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .service_replay(client(replica), HttpReplay::new().non_idempotent(true))
        .http()
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(client(primary));

    let res = send(&mut svc, post_order(None).await).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get(FALLBACK_HEADER).is_none());
    assert_eq!(text(res).await, "primary took order 7");
    assert!(replica_seen.bodies().is_empty());

    down.store(true, SeqCst);
    let res = send(&mut svc, post_order(None).await).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[FALLBACK_HEADER], "service");
    assert_eq!(text(res).await, "replica took order 7");
    assert_eq!(primary_seen.bodies(), ["order 7", "order 7"]);
    assert_eq!(replica_seen.bodies(), ["order 7"]);
    assert_eq!(handle.stats().service, 1);
}

/// A body over the replay's limit is sent to the primary once, whole, as it streams; when the
/// primary fails the alternative is skipped and the caller gets the primary's own 503.
#[tokio::test]
async fn a_body_over_the_limit_skips_the_alternative() {
    let down = Arc::new(AtomicBool::new(true));
    let (primary, primary_seen, replica, replica_seen) = upstreams(down).await;
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .service_replay(
            client(replica),
            HttpReplay::new().non_idempotent(true).limit(4),
        )
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(client(primary));

    let res = send(&mut svc, post_order(None).await).await;
    assert_eq!(res.status(), 503);
    assert_eq!(text(res).await, "primary took order 7");
    assert_eq!(primary_seen.bodies(), ["order 7"]);
    assert!(replica_seen.bodies().is_empty());
    let stats = handle.stats();
    assert_eq!((stats.service, stats.exhausted), (0, 1));
}

/// `HttpReplay::new()` keeps a POST only with an `Idempotency-Key`: without one the alternative
/// is skipped, with one it gets the body.
#[tokio::test]
async fn the_replay_decides_which_posts_go_to_the_alternative() {
    let down = Arc::new(AtomicBool::new(true));
    let (primary, _, replica, replica_seen) = upstreams(down).await;
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .service_replay(client(replica), HttpReplay::new())
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(client(primary));

    let res = send(&mut svc, post_order(None).await).await;
    assert_eq!(res.status(), 503);
    assert!(replica_seen.bodies().is_empty());

    let res = send(&mut svc, post_order(Some("order-7")).await).await;
    assert_eq!(res.status(), 200);
    assert_eq!(text(res).await, "replica took order 7");
    assert_eq!(replica_seen.bodies(), ["order 7"]);
    let stats = handle.stats();
    assert_eq!((stats.service, stats.exhausted), (1, 1));
}

/// With the flag up the request goes to the alternative first, its body read for it; the
/// primary is not called.
#[tokio::test]
async fn a_switched_post_goes_to_the_alternative_with_its_body() {
    let down = Arc::new(AtomicBool::new(false));
    let (primary, primary_seen, replica, replica_seen) = upstreams(down).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let primary = client(primary).map_request(move |req: Req| {
        counted.fetch_add(1, SeqCst);
        req
    });
    let (layer, handle) = FallbackLayer::builder()
        .service_replay(client(replica), HttpReplay::new().non_idempotent(true))
        .build_with_handle()
        .unwrap();
    handle.set_forced(true);
    let mut svc = ServiceBuilder::new().layer(layer).service(primary);

    let res = send(&mut svc, post_order(None).await).await;
    assert_eq!(text(res).await, "replica took order 7");
    assert_eq!(calls.load(SeqCst), 0);
    assert!(primary_seen.bodies().is_empty());
    assert_eq!(replica_seen.bodies(), ["order 7"]);
    let stats = handle.stats();
    assert_eq!((stats.service, stats.switched), (1, 1));
}
