//! #20.5: the observer hears every fallback by source: each source's answer and the exhausted
//! case have their own event kind (`weir_core::Event::kind`, what the `Tracing` and `Metrics`
//! observers name them by), and the handle's counters agree.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt, service_fn};
use weir_core::{classify::HttpStatus, key::MethodPath};
use weir_fallback::{Cause, Event, FALLBACK_HEADER, FallbackLayer, LastGood};

type Body = Full<Bytes>;

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_source_has_its_event_kind() {
    let down = Arc::new(AtomicBool::new(false));
    let upstream_down = Arc::clone(&down);
    let upstream = service_fn(move |req: Request<()>| {
        let status = if upstream_down.load(SeqCst) { 503 } else { 200 };
        let body = Body::from(format!("fresh {}", req.uri().path()));
        async move { Ok::<_, Infallible>(Response::builder().status(status).body(body).unwrap()) }
    });
    // A replica that has `/replica` only.
    let replica = service_fn(|uri: Uri| async move {
        if uri.path() == "/replica" {
            Ok(Response::new(Body::from("from the replica")))
        } else {
            Err("not on the replica")
        }
    });
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&kinds);
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(LastGood::new(MethodPath))
        .service_from(replica, |req: &Request<()>| req.uri().clone(), |uri| uri)
        // A default for `/value`, nothing for any other path.
        .value_from(
            |req: &Request<()>| req.uri().path() == "/value",
            |_: Cause<'_, Response<Body>, Infallible>, known: &bool| {
                known.then(|| Response::new(Body::from("default")))
            },
        )
        .observer(move |event: &Event<'_>| {
            seen.lock().unwrap().push(weir_core::Event::kind(event));
        })
        .build_with_handle()
        .unwrap();
    let mut svc = tower::Layer::layer(&layer, upstream);

    // Kept while the upstream is up (once the body ends).
    let fresh = svc.ready().await.unwrap().call(get("/kept")).await.unwrap();
    fresh.into_body().collect().await.unwrap();
    assert!(kinds.lock().unwrap().is_empty(), "no event for a success");

    down.store(true, SeqCst);
    let mut answer = async |path: &str| {
        let response = svc.ready().await.unwrap().call(get(path)).await.unwrap();
        let source = response
            .headers()
            .get(FALLBACK_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), source)
    };
    assert_eq!(answer("/kept").await, (200, Some("last_good".to_owned())));
    assert_eq!(answer("/replica").await, (200, Some("service".to_owned())));
    assert_eq!(answer("/value").await, (200, Some("value".to_owned())));
    assert_eq!(answer("/none").await, (503, None));

    assert_eq!(
        *kinds.lock().unwrap(),
        [
            "answered_last_good",
            "answered_service",
            "answered_value",
            "exhausted"
        ]
    );
    let stats = handle.stats();
    assert_eq!(
        (stats.last_good, stats.service, stats.value, stats.exhausted),
        (1, 1, 1, 1)
    );
}
