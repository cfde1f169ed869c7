//! Over real sockets: an axum upstream with an outage, and a hyper client stack that serves the
//! last good answer, with `Age`, while the upstream is down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http::header::AGE;
use http_body_util::{BodyExt, Empty};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::{classify::HttpStatus, degrade::Degraded, key::MethodPath};
use weir_fallback::{FALLBACK_HEADER, FallbackLayer, LastGood};
use weir_test::http::{connect, serve};

/// A client that opens one HTTP/1 connection per request to `addr` (clonable, as the fallback
/// needs of its primary).
fn client(
    addr: SocketAddr,
) -> impl Service<
    http::Request<Empty<Bytes>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = hyper::Error,
> + Clone {
    service_fn(move |req: http::Request<Empty<Bytes>>| async move {
        let mut sender = connect(addr).await;
        sender.send_request(req).await
    })
}

fn get_items() -> http::Request<Empty<Bytes>> {
    http::Request::get("/api/items")
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .unwrap()
}

/// #20.3 / #20.4: the upstream answers, goes down (503), and the client stack serves the last
/// good answer with `Age`, the marker header, and a `Degraded` mark its outer layers see.
#[tokio::test]
async fn the_client_serves_the_last_good_answer_during_an_outage() {
    let down = Arc::new(AtomicBool::new(false));
    let down_in = Arc::clone(&down);
    let app = Router::new().route(
        "/api/items",
        get(move || {
            let down = down_in.load(SeqCst);
            async move {
                if down {
                    (StatusCode::SERVICE_UNAVAILABLE, "outage")
                } else {
                    (StatusCode::OK, "items v1")
                }
            }
        }),
    );
    let (addr, server) = serve(app).await;

    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(LastGood::new(MethodPath))
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(client(addr));

    let fresh = svc.ready().await.unwrap().call(get_items()).await.unwrap();
    assert_eq!(fresh.status(), 200);
    assert!(fresh.headers().get(FALLBACK_HEADER).is_none());
    let body = fresh.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "items v1");

    down.store(true, SeqCst);
    let stale = svc.ready().await.unwrap().call(get_items()).await.unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()[FALLBACK_HEADER], "last_good");
    let age: u64 = stale.headers()[AGE].to_str().unwrap().parse().unwrap();
    assert!(age < 60, "age {age}");
    assert!(Degraded::of(&stale).is_some_and(|o| o.is_failure()));
    let body = stale.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "items v1");
    assert_eq!(handle.stats().last_good, 1);

    server.abort();
}
