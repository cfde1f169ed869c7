//! Mounted in a real axum server on 127.0.0.1 the way the README says
//! (`nest_service("/weir", status)`), read by a hyper client over the socket: the page, the JSON
//! and the event stream, which stops when the client goes away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use weir_core::Name;
use weir_core::inspect::{Inspect, Registry, Snapshot};
use weir_status::StatusService;

/// Counts how often it is looked at.
struct Counted(Arc<AtomicU64>);

impl Inspect for Counted {
    fn snapshot(&self) -> Snapshot {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Snapshot::new("load_shed", Name::new("edge"))
            .state("normal", 0)
            .counter("looked_at", n)
    }
}

async fn serve(status: StatusService) -> SocketAddr {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "app" }))
        .nest_service("/weir", status);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn mounted_under_weir_it_serves_the_page_and_the_json() {
    let looked = Arc::new(AtomicU64::new(0));
    let registry = Registry::new();
    registry.register(Counted(Arc::clone(&looked)));
    let addr = serve(StatusService::new(registry)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let res = client
                .request(
                    Request::get(format!("http://{addr}{path}"))
                        .body(Empty::new())
                        .unwrap(),
                )
                .await
                .expect("answered");
            let status = res.status();
            let ct = res.headers().get("content-type").cloned();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, ct, String::from_utf8(body.to_vec()).unwrap())
        }
    };

    let (status, ct, json) = get("/weir/status.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.unwrap(), "application/json");
    assert!(
        json.starts_with(r#"{"actions_enabled":false,"layers":[{"pattern":"load_shed","layer":"edge","state":{"name":"normal","value":0}"#),
        "{json}"
    );
    let (status, ct, html) = get("/weir/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.unwrap(), "text/html; charset=utf-8");
    assert!(html.contains("<title>weir status</title>"));
    let (status, _, _) = get("/weir/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = get("/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "app"));
}

#[tokio::test(start_paused = true)]
async fn the_event_stream_stops_when_the_client_goes_away() {
    let looked = Arc::new(AtomicU64::new(0));
    let registry = Registry::new();
    registry.register(Counted(Arc::clone(&looked)));
    let status = StatusService::new(registry).events_every(Duration::from_millis(100));
    let addr = serve(status).await;
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();

    let res = client
        .request(
            Request::get(format!("http://{addr}/weir/status/events"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let mut events = 0;
    let mut text = String::new();
    while events < 3 {
        let frame = body.frame().await.expect("more").expect("no error");
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
            events = text.matches("\n\n").count();
        }
    }
    assert!(
        text.starts_with("data: {\"actions_enabled\":false"),
        "{text}"
    );
    assert!(looked.load(Ordering::SeqCst) >= 3);

    // The client goes away: the server drops the stream and stops looking at the registry.
    drop(body);
    drop(client);
    let mut last = looked.load(Ordering::SeqCst);
    let mut quiet = 0;
    for _ in 0..10_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = looked.load(Ordering::SeqCst);
        if now == last {
            quiet += 1;
            if quiet == 50 {
                // Five seconds of virtual time, fifty periods, without a snapshot.
                return;
            }
        } else {
            quiet = 0;
            last = now;
        }
    }
    panic!("the event stream went on after the client left ({last} snapshots)");
}
