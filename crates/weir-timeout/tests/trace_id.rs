//! A request refused for having no time left (`Event::Expired`) carries the W3C trace id of its
//! `traceparent` header (#19), read only on that refusal: a server sent no time, and a client
//! whose outer deadline has passed. A malformed header, or none, gives no id and no panic; a
//! call answered in time emits nothing. Paused time, so the deadlines are exact.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt};
use weir_core::{Deadline, Event as _};
use weir_test::Probe;
use weir_timeout::{Event, TimeoutLayer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const MALFORMED: [&str; 6] = [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "\u{e9}t\u{e9}",
    "",
];

fn request(traceparent: Option<&str>, timeout_ms: Option<&'static str>) -> Request<()> {
    let mut builder = Request::builder().uri("/");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    if let Some(value) = timeout_ms {
        builder = builder.header("x-timeout-ms", value);
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
            Event::Expired { trace_id, .. } => *trace_id,
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

fn ok(_: Request<()>) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_with_no_time_left_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = TimeoutLayer::server(Duration::from_secs(1))
        .observer(observer)
        .build()
        .unwrap();
    let (probe, control) = Probe::new(ok);
    let mut svc = layer.layer(probe);

    // Answered in time: nothing emitted (its header is never read).
    let answered = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(TRACEPARENT), Some("100")))
        .await;
    assert!(answered.is_ok());
    assert!(seen.lock().unwrap().is_empty());

    let headers = std::iter::once(Some(TRACEPARENT))
        .chain(MALFORMED.map(Some))
        .chain([None]);
    for traceparent in headers {
        let refused = svc
            .ready()
            .await
            .unwrap()
            .call(request(traceparent, Some("0")))
            .await;
        assert!(refused.is_err(), "the client sent no time");
    }
    assert_eq!(control.calls(), 1, "only the first request was sent on");
    let mut expected = vec![("expired", Some(TRACE_ID.to_owned()))];
    expected.extend(std::iter::repeat_n(("expired", None), MALFORMED.len() + 1));
    assert_eq!(*seen.lock().unwrap(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_client_request_whose_deadline_passed_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = TimeoutLayer::builder()
        .propagate(Duration::from_millis(20))
        .observer(observer)
        .build()
        .unwrap();
    let (probe, control) = Probe::new(ok);
    let mut svc = layer.layer(probe);

    let mut req = request(Some(TRACEPARENT), None);
    Deadline::after(Duration::from_millis(100)).set_earliest(req.extensions_mut());
    tokio::time::advance(Duration::from_millis(100)).await;
    let refused = svc.ready().await.unwrap().call(req).await;
    assert!(refused.is_err(), "the caller's deadline has passed");
    assert_eq!(control.calls(), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [("expired", Some(TRACE_ID.to_owned()))]
    );
}
