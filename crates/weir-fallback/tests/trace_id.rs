//! A fallback's events carry the W3C trace id of the request's `traceparent` header (#19). The
//! request has gone to the primary when the fallback reports, so an HTTP-mode layer reads the
//! header at call, and only when its observer wants trace ids (`Tracing` does); a plain-mode
//! layer, or an observer that does not want them, reads nothing. A malformed header, or none,
//! gives no id.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Event as _, Observer};
use weir_fallback::{Cause, Event, FallbackLayer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const MALFORMED: [&str; 3] = [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "not a traceparent",
];

type Req = Request<String>;
type Res = Response<String>;

fn request(traceparent: Option<&str>) -> Req {
    let mut builder = Request::builder().uri("/items");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder.body(String::new()).expect("a valid request")
}

/// Each event's kind and trace id, written out.
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

/// An observer that records each event and wants trace ids when `wants` says so.
#[derive(Clone, Default)]
struct Recorder {
    seen: Seen,
    wants: bool,
}

impl Observer<Event<'_>> for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let trace_id = match event {
            Event::Answered { trace_id, .. } | Event::Exhausted { trace_id, .. } => *trace_id,
            _ => None,
        };
        assert_eq!(
            trace_id,
            event.fields().trace_id,
            "the field is the event's"
        );
        assert_eq!(trace_id, event.trace_id());
        self.seen
            .lock()
            .unwrap()
            .push((event.kind(), trace_id.map(|id| id.to_string())));
    }

    fn wants_trace_id(&self) -> bool {
        self.wants
    }
}

impl Recorder {
    fn take(&self) -> Vec<(&'static str, Option<String>)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A primary that always fails.
fn down() -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(|_req: Req| async { Err::<Res, BoxError>("connection refused".into()) })
}

fn stale(_: Cause<'_, Res, BoxError>) -> Option<Res> {
    Some(Response::new("stale".to_owned()))
}

async fn send<S>(svc: S, traceparent: Option<&str>) -> Res
where
    S: Service<Req, Response = Res, Error = BoxError>,
{
    svc.oneshot(request(traceparent)).await.expect("answered")
}

#[tokio::test]
async fn an_http_fallback_carries_the_trace_id_for_an_observer_that_wants_it() {
    let recorder = Recorder {
        wants: true,
        ..Recorder::default()
    };
    let layer = FallbackLayer::builder()
        .value(stale)
        .http()
        .observer(recorder.clone())
        .build()
        .expect("valid");
    let answer = send(layer.layer(down()), Some(TRACEPARENT)).await;
    assert_eq!(answer.body(), "stale");
    assert_eq!(
        recorder.take(),
        [("answered_value", Some(TRACE_ID.to_owned()))]
    );
    for traceparent in MALFORMED.map(Some).into_iter().chain([None]) {
        send(layer.layer(down()), traceparent).await;
        assert_eq!(
            recorder.take(),
            [("answered_value", None)],
            "{traceparent:?}"
        );
    }

    // Every source declining, and the alternative service answering: the same id.
    let declining = FallbackLayer::builder()
        .value(|_: Cause<'_, Res, BoxError>| None)
        .http()
        .observer(recorder.clone())
        .build()
        .expect("valid");
    let failed = declining
        .layer(down())
        .oneshot(request(Some(TRACEPARENT)))
        .await;
    assert!(failed.is_err(), "the primary's own error");
    assert_eq!(recorder.take(), [("exhausted", Some(TRACE_ID.to_owned()))]);

    let replica =
        service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new("replica".to_owned())) });
    let alternative = FallbackLayer::builder()
        .service(replica)
        .http()
        .observer(recorder.clone())
        .build()
        .expect("valid");
    let answer = send(alternative.layer(down()), Some(TRACEPARENT)).await;
    assert_eq!(answer.body(), "replica");
    assert_eq!(
        recorder.take(),
        [("answered_service", Some(TRACE_ID.to_owned()))]
    );
}

#[tokio::test]
async fn a_switched_request_carries_its_trace_id() {
    let recorder = Recorder {
        wants: true,
        ..Recorder::default()
    };
    let (layer, handle) = FallbackLayer::builder()
        .value(stale)
        .http()
        .observer(recorder.clone())
        .build_with_handle()
        .expect("valid");
    handle.set_forced(true);
    let answer = send(layer.layer(down()), Some(TRACEPARENT)).await;
    assert_eq!(answer.body(), "stale");
    assert_eq!(
        recorder.take(),
        [("answered_value", Some(TRACE_ID.to_owned()))]
    );
}

#[tokio::test]
async fn nothing_is_read_for_an_observer_that_does_not_want_it_or_in_plain_mode() {
    let recorder = Recorder::default();
    let http = FallbackLayer::builder()
        .value(stale)
        .http()
        .observer(recorder.clone())
        .build()
        .expect("valid");
    send(http.layer(down()), Some(TRACEPARENT)).await;
    assert_eq!(recorder.take(), [("answered_value", None)]);

    let wanting = Recorder {
        wants: true,
        ..Recorder::default()
    };
    let plain = FallbackLayer::builder()
        .value(stale)
        .observer(wanting.clone())
        .build()
        .expect("valid");
    send(plain.layer(down()), Some(TRACEPARENT)).await;
    assert_eq!(
        wanting.take(),
        [("answered_value", None)],
        "plain mode reads no header"
    );
}
