//! A refusal's event carries the W3C trace id of the request's `traceparent` header (#19), read
//! only on the refusal: on arrival, after a wait in the queue, and in a partitioned bulkhead. A
//! malformed header, or none, gives no id and no panic. Paused time, so the waits are exact.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_bulkhead::{BulkheadLayer, Event};
use weir_core::Event as _;
use weir_core::KeyExtractor;
use weir_core::observer::TraceId;
use weir_test::Probe;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn request(traceparent: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri("/");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder.body(()).expect("a valid request")
}

/// What the observer saw: each event's kind and the trace id of its fields, written out.
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn recorder() -> (Seen, impl Fn(&Event<'_>) + Clone + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        let trace_id = match event {
            Event::Rejected { trace_id, .. } => *trace_id,
            _ => None,
        };
        assert_eq!(
            trace_id,
            event.fields().trace_id,
            "the field is the event's"
        );
        log.lock()
            .unwrap()
            .push((event.kind(), trace_id.map(|id| id.to_string())));
    };
    (seen, observer)
}

fn ok(_: Request<()>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

#[tokio::test(start_paused = true)]
async fn a_refusal_on_arrival_carries_the_trace_id_and_a_malformed_header_none() {
    let (seen, observer) = recorder();
    let layer = BulkheadLayer::http(1).observer(observer).build().unwrap();
    let (probe, gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    // The one permit, held; an admitted request emits nothing (its header is never read).
    let mut running = task::spawn(svc.ready().await.unwrap().call(request(Some(TRACEPARENT))));
    assert_pending!(running.poll());
    assert!(seen.lock().unwrap().is_empty());

    let malformed = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
        "",
    ];
    for traceparent in std::iter::once(TRACEPARENT)
        .chain(malformed)
        .map(Some)
        .chain([None])
    {
        let refused = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(refused.is_err(), "the bulkhead is full");
    }
    let mut expected = vec![("rejected", Some(TRACE_ID.to_owned()))];
    expected.extend(std::iter::repeat_n(("rejected", None), malformed.len() + 1));
    assert_eq!(*seen.lock().unwrap(), expected);

    gate.release(1);
    assert!(assert_ready!(running.poll()).is_ok());
    assert_eq!(
        seen.lock().unwrap().len(),
        expected.len(),
        "no event for it"
    );
    // The id is the header's, byte for byte.
    assert_eq!(
        TraceId::parse(TRACEPARENT.as_bytes()).map(TraceId::to_bytes),
        Some([
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_a_wait_carries_the_trace_id() {
    let (seen, observer) = recorder();
    let layer = BulkheadLayer::queueing(1, 4, Duration::from_millis(100))
        .http()
        .observer(observer)
        .build()
        .unwrap();
    let (probe, _gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(request(None)));
    assert_pending!(running.poll());
    let mut queued = task::spawn(svc.ready().await.unwrap().call(request(Some(TRACEPARENT))));
    assert_pending!(queued.poll());
    assert!(seen.lock().unwrap().is_empty(), "queued: no event yet");

    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(assert_ready!(queued.poll()).is_err(), "waited its 100 ms");
    assert_eq!(
        *seen.lock().unwrap(),
        [("rejected", Some(TRACE_ID.to_owned()))]
    );
}

/// Every request is the one partition `"all"`.
#[derive(Clone, Copy)]
struct One;

impl KeyExtractor<Request<()>> for One {
    type Key = &'static str;

    fn extract(&self, _req: &Request<()>) -> Option<&'static str> {
        Some("all")
    }
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_refusal_carries_the_trace_id() {
    let (seen, observer) = recorder();
    let layer = BulkheadLayer::partitioned(One)
        .per_key(1)
        .http()
        .observer(observer)
        .build()
        .unwrap();
    let (probe, _gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(request(None)));
    assert_pending!(running.poll());
    for traceparent in [Some(TRACEPARENT), Some("00-xyz"), None] {
        let refused = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(refused.is_err(), "the partition is full");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("rejected", Some(TRACE_ID.to_owned())),
            ("rejected", None),
            ("rejected", None)
        ]
    );
}
