//! The idempotency layer's events carry the W3C trace id of the request's `traceparent` header
//! (#19): a refusal before anything ran (a missing key), a concurrent repeat (409), a key
//! reused with another body (422) and a replay, so a refusal shows up inside the caller's
//! trace. A malformed header, or none, gives no id and no panic. Paused time.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use tokio::sync::Notify;
use tower::{Layer, ServiceExt, service_fn};
use weir_core::Event as _;
use weir_idempotency::{Event, IdempotencyLayer};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const MALFORMED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331";

type Req = Request<Full<Bytes>>;
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn request(key: Option<&str>, traceparent: Option<&str>, body: &'static str) -> Req {
    let mut builder = Request::builder().method(Method::POST).uri("/orders");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_event_carries_the_requests_trace_id() {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        assert_eq!(
            event.trace_id(),
            event.fields().trace_id,
            "the field is the event's"
        );
        log.lock()
            .unwrap()
            .push((event.kind(), event.trace_id().map(|id| id.to_string())));
    };
    // The handler waits for `release` once, so a repeat can arrive while the first runs.
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let handler = service_fn(move |_: Req| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let layer = IdempotencyLayer::builder()
        .required()
        .observer(observer)
        .build()
        .expect("valid settings");
    let svc = layer.layer(handler);

    // A missing key: 400, refused before anything ran.
    let refused = svc
        .clone()
        .oneshot(request(None, Some(TRACEPARENT), "a"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // The first request with key k1 runs (held); a repeat while it runs: 409.
    let first = tokio::spawn(svc.clone().oneshot(request(Some("k1"), None, "a")));
    tokio::task::yield_now().await;
    let repeat = svc
        .clone()
        .oneshot(request(Some("k1"), Some(TRACEPARENT), "a"))
        .await
        .unwrap();
    assert_eq!(repeat.status(), 409);
    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);

    // The same key with another body: 422; the same request again: replayed.
    let mismatch = svc
        .clone()
        .oneshot(request(Some("k1"), Some(MALFORMED), "b"))
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 422);
    let replayed = svc
        .clone()
        .oneshot(request(Some("k1"), Some(TRACEPARENT), "a"))
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);

    let id = Some(TRACE_ID.to_owned());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("refused", id.clone()),
            ("in_flight", id.clone()),
            ("mismatch", None),
            ("replayed", id),
        ]
    );
}
