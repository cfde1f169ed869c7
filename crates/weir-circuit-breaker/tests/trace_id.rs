//! A refused call's event carries the W3C trace id of the request's `traceparent` header (#19)
//! in `http()` mode, read only on the refusal: open, forced open, half-open with every probe
//! slot taken, a circuit that opened between `poll_ready` and `call`, and a keyed breaker. A
//! malformed header, or none, gives no id and no panic; a plain breaker reads no header; the
//! event is emitted once per refused call, by `call`. Paused time, so the open time is exact.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_circuit_breaker::{CircuitBreakerLayer, Event, State};
use weir_core::Event as _;
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

/// What the observer saw of each rejection: the state that refused and the trace id of its
/// fields, written out. Transitions are left out.
type Seen = Arc<Mutex<Vec<(State, Option<String>)>>>;

fn recorder() -> (Seen, impl Fn(&Event<'_>) + Clone + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        if let Event::Rejected {
            state, trace_id, ..
        } = event
        {
            assert_eq!(
                *trace_id,
                event.fields().trace_id,
                "the field is the event's"
            );
            log.lock()
                .unwrap()
                .push((*state, trace_id.map(|id| id.to_string())));
        }
    };
    (seen, observer)
}

/// Answers `Ok`, or fails for a request with an `x-fail` header.
fn answer(req: Request<()>) -> Result<Response<String>, std::io::Error> {
    if req.headers().contains_key("x-fail") {
        Err(std::io::Error::other("upstream failed"))
    } else {
        Ok(Response::new(String::new()))
    }
}

fn failing() -> Request<()> {
    let mut req = request(Some(TRACEPARENT));
    req.headers_mut()
        .insert("x-fail", http::HeaderValue::from_static("1"));
    req
}

/// The header values sent to an open breaker: the valid one, each malformed one, and none.
fn every_header() -> Vec<Option<&'static str>> {
    std::iter::once(Some(TRACEPARENT))
        .chain(MALFORMED.map(Some))
        .chain([None])
        .collect()
}

/// What the observer sees for [`every_header`]'s requests, all refused in `state`.
fn every_header_refused(state: State) -> Vec<(State, Option<String>)> {
    let mut expected = vec![(state, Some(TRACE_ID.to_owned()))];
    expected.extend(std::iter::repeat_n((state, None), MALFORMED.len() + 1));
    expected
}

#[tokio::test(start_paused = true)]
async fn a_call_refused_by_an_open_circuit_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .observer(observer)
        .build()
        .unwrap()
        .http();
    let (probe, control) = Probe::new(answer);
    let mut svc = layer.layer(probe);

    // An admitted call emits nothing (its header is never read); its failure opens the circuit.
    let failed = svc.ready().await.unwrap().call(failing()).await;
    assert!(failed.is_err(), "the upstream's own error");
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(layer.handle().state(), State::Open);

    for traceparent in every_header() {
        let refused = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(refused.is_err(), "the circuit is open");
    }
    assert_eq!(*seen.lock().unwrap(), every_header_refused(State::Open));
    assert_eq!(
        control.calls(),
        1,
        "only the first call reached the upstream"
    );

    // Forced open: the same.
    seen.lock().unwrap().clear();
    layer.handle().force_open();
    for traceparent in every_header() {
        let refused = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(refused.is_err(), "the circuit is forced open");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        every_header_refused(State::ForcedOpen)
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_refused_while_every_probe_slot_is_taken_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(1)
        .observer(observer)
        .build()
        .unwrap()
        .http();
    let (probe, control) = Probe::new(answer);
    let mut svc = layer.layer(probe);
    layer.handle().open();
    tokio::time::advance(Duration::from_secs(1)).await;

    // The one probe, held at the gate.
    control.close_gate();
    let mut probing = task::spawn(svc.ready().await.unwrap().call(request(None)));
    assert_pending!(probing.poll());
    assert_eq!(layer.handle().state(), State::HalfOpen);

    let refused = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(TRACEPARENT)))
        .await;
    assert!(refused.is_err(), "no probe slot left");
    assert_eq!(
        *seen.lock().unwrap(),
        [(State::HalfOpen, Some(TRACE_ID.to_owned()))]
    );
    control.open_gate();
    assert!(assert_ready!(probing.poll()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_call_refused_after_the_circuit_moved_since_poll_ready_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = CircuitBreakerLayer::builder()
        .observer(observer)
        .build()
        .unwrap()
        .http();
    let (probe, control) = Probe::new(answer);
    let mut svc = layer.layer(probe);

    // Readied while closed, called after the circuit opened: refused afresh in `call`.
    svc.ready().await.unwrap();
    layer.handle().open();
    let refused = svc.call(request(Some(TRACEPARENT))).await;
    assert!(refused.is_err(), "the circuit opened since poll_ready");
    assert_eq!(control.calls(), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [(State::Open, Some(TRACE_ID.to_owned()))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_reported_once_by_the_call_it_refuses() {
    let (seen, observer) = recorder();
    let layer = CircuitBreakerLayer::builder()
        .observer(observer)
        .build()
        .unwrap()
        .http();
    layer.handle().force_open();
    let (probe, _control) = Probe::new(answer);
    let mut svc = layer.layer(probe);

    // Readied (the refusal decided) twice, then dropped: no call was refused, nothing reported.
    svc.ready().await.unwrap();
    svc.ready().await.unwrap();
    drop(svc);
    assert!(seen.lock().unwrap().is_empty());

    let mut svc = layer.layer(Probe::new(answer).0);
    svc.ready().await.unwrap();
    svc.ready().await.unwrap();
    assert!(
        svc.call(request(Some(TRACEPARENT))).await.is_err(),
        "forced open"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [(State::ForcedOpen, Some(TRACE_ID.to_owned()))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_keyed_refusal_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .observer(observer)
        .keyed(|_: &Request<()>| Some("upstream"))
        .build()
        .unwrap()
        .http();
    let (probe, _control) = Probe::new(answer);
    let mut svc = layer.layer(probe);

    assert!(svc.ready().await.unwrap().call(failing()).await.is_err());
    for traceparent in every_header() {
        let refused = svc.ready().await.unwrap().call(request(traceparent)).await;
        assert!(refused.is_err(), "the key's circuit is open");
    }
    assert_eq!(*seen.lock().unwrap(), every_header_refused(State::Open));
}

#[tokio::test(start_paused = true)]
async fn a_plain_breaker_reads_no_header() {
    let (seen, observer) = recorder();
    let layer = CircuitBreakerLayer::builder()
        .observer(observer)
        .build()
        .unwrap();
    layer.handle().force_open();
    let (probe, _control) = Probe::new(|_: Request<()>| Ok::<_, Infallible>(Response::new(())));
    let refused = layer.layer(probe).oneshot(request(Some(TRACEPARENT))).await;
    assert!(refused.is_err(), "forced open");
    assert_eq!(*seen.lock().unwrap(), [(State::ForcedOpen, None)]);
}
