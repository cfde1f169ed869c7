//! What an idempotency layer shows a status page: its `Inspect` snapshot against real traffic,
//! and its registration through the builder.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_idempotency::IdempotencyLayer;

type Req = Request<Full<Bytes>>;

fn post(key: &str, body: &'static str) -> Req {
    Request::post("/orders")
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_handle() {
    let registry = Registry::new();
    let (layer, handle) = IdempotencyLayer::builder()
        .name("orders")
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let mut svc = layer.layer(service_fn(move |_: Req| {
        seen.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::CREATED)
                    .body(Full::new(Bytes::from_static(b"made")))
                    .unwrap(),
            )
        }
    }));
    for body in ["book", "book", "pen"] {
        let response = svc
            .ready()
            .await
            .unwrap()
            .call(post("k1", body))
            .await
            .unwrap();
        drop(response.into_body().collect().await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let shown = registry
        .find("idempotency", "orders")
        .expect("registered")
        .snapshot();
    let own = handle.stats();
    assert_eq!(shown.counter_value("executed"), Some(1));
    assert_eq!(shown.counter_value("executed"), Some(own.executed));
    assert_eq!(shown.counter_value("replayed"), Some(1));
    assert_eq!(shown.counter_value("replayed"), Some(own.replayed));
    assert_eq!(shown.counter_value("mismatched"), Some(1));
    assert_eq!(shown.counter_value("stored"), Some(own.stored));
    assert_eq!(
        handle.act("reset", Some("k1")),
        Err(ActionError::Unknown("reset".into()))
    );
    assert!(Inspect::snapshot(&handle).state.is_none());
}

#[test]
fn a_second_idempotency_layer_of_the_same_name_is_refused() {
    let registry = Registry::new();
    IdempotencyLayer::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let err = IdempotencyLayer::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
}
