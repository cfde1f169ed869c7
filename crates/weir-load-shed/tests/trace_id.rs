//! A shed request's event carries the W3C trace id of its `traceparent` header (#19), in
//! `Http` mode, read only on the refusal: above a fixed limit, above an adaptive one, above its
//! priority's share, and after the readiness wait ran out. A malformed header, or none, gives
//! no id and no panic; a `Plain` shedder reads no header; an admitted request emits nothing.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_core::Event as _;
use weir_load_shed::{Aimd, Event, LoadShedLayer, Priority};
use weir_test::Probe;

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
            Event::Shed { trace_id, .. } => *trace_id,
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

/// The header values sent to a full shedder: the valid one, each malformed one, and none.
fn every_header() -> Vec<Option<&'static str>> {
    std::iter::once(Some(TRACEPARENT))
        .chain(MALFORMED.map(Some))
        .chain([None])
        .collect()
}

/// What the observer sees for [`every_header`]'s requests, all shed: the id once.
fn every_header_shed() -> Vec<(&'static str, Option<String>)> {
    let mut expected = vec![("shed", Some(TRACE_ID.to_owned()))];
    expected.extend(std::iter::repeat_n(("shed", None), MALFORMED.len() + 1));
    expected
}

#[tokio::test(start_paused = true)]
async fn a_request_shed_above_a_fixed_limit_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = LoadShedLayer::http(1).observer(observer).build().unwrap();
    let (probe, gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    // The one slot, held; an admitted request emits nothing (its header is never read).
    let mut running = task::spawn(svc.ready().await.unwrap().call(request(Some(TRACEPARENT))));
    assert_pending!(running.poll());
    assert!(seen.lock().unwrap().is_empty());

    for traceparent in every_header() {
        let shed = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(shed.is_err(), "the limit is reached");
    }
    assert_eq!(*seen.lock().unwrap(), every_header_shed());

    gate.release(1);
    assert!(assert_ready!(running.poll()).is_ok());
    assert_eq!(
        seen.lock().unwrap().len(),
        MALFORMED.len() + 2,
        "no event for the admitted request"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_shed_above_an_adaptive_limit_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = LoadShedLayer::adaptive(Aimd::new().initial(1).bounds(1, 1))
        .http()
        .observer(observer)
        .build()
        .unwrap();
    let (probe, _gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(request(None)));
    assert_pending!(running.poll());
    for traceparent in every_header() {
        let shed = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(shed.is_err(), "the adaptive limit is reached");
    }
    assert_eq!(*seen.lock().unwrap(), every_header_shed());
}

#[tokio::test(start_paused = true)]
async fn a_request_shed_above_its_prioritys_share_carries_its_trace_id() {
    let (seen, observer) = recorder();
    // Two slots; a sheddable request (one with `x-sheddable`) may use one of them.
    let layer = LoadShedLayer::http(2)
        .priority(|req: &Request<()>| {
            if req.headers().contains_key("x-sheddable") {
                Priority::Sheddable
            } else {
                Priority::Normal
            }
        })
        .observer(observer)
        .build()
        .unwrap();
    let (probe, _gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(request(None)));
    assert_pending!(running.poll());
    let mut sheddable = request(Some(TRACEPARENT));
    sheddable
        .headers_mut()
        .insert("x-sheddable", http::HeaderValue::from_static("1"));
    let shed = svc.ready().await.unwrap().call(sheddable).await;
    assert!(shed.is_err(), "the sheddable share is used up");
    assert_eq!(*seen.lock().unwrap(), [("shed", Some(TRACE_ID.to_owned()))]);
}

#[tokio::test(start_paused = true)]
async fn a_request_shed_after_the_readiness_wait_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = LoadShedLayer::http(10)
        .max_ready_wait(Duration::from_millis(50))
        .observer(observer)
        .build()
        .unwrap();
    let (probe, control) = Probe::new(ok);
    control.set_ready(false);
    let mut svc = layer.layer(probe);

    let mut ready = task::spawn(async {
        svc.ready().await.unwrap();
    });
    assert_pending!(ready.poll());
    tokio::time::advance(Duration::from_millis(50)).await;
    assert_ready!(ready.poll());
    drop(ready);
    let shed = svc.call(request(Some(TRACEPARENT))).await;
    assert!(shed.is_err(), "waited its 50 ms for the inner service");
    assert_eq!(control.calls(), 0);
    assert_eq!(*seen.lock().unwrap(), [("shed", Some(TRACE_ID.to_owned()))]);
}

#[tokio::test(start_paused = true)]
async fn a_plain_shedder_reads_no_header() {
    let (seen, observer) = recorder();
    let layer = LoadShedLayer::builder()
        .max_in_flight(1)
        .observer(observer)
        .build()
        .unwrap();
    let (probe, _gate) = Probe::gated(ok);
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(request(None)));
    assert_pending!(running.poll());
    let shed = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(TRACEPARENT)))
        .await;
    assert!(shed.is_err(), "the limit is reached");
    assert_eq!(*seen.lock().unwrap(), [("shed", None)]);
}
