//! An injected fault's event carries the W3C trace id of the request's `traceparent` header
//! (#19) in HTTP mode, read only when a fault is injected: a request left alone, or a disabled
//! layer, emits nothing and reads nothing. A malformed header, or none, gives no id; plain mode
//! reads no header.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_chaos::{ChaosLayer, Event, Latency};
use weir_core::Event as _;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn request(traceparent: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri("/");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder.body(()).expect("a valid request")
}

/// Each event's kind and trace id, written out.
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn recorder() -> (Seen, impl Fn(&Event<'_>) + Clone + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        let Event::Injected { trace_id, .. } = event else {
            return;
        };
        assert_eq!(
            *trace_id,
            event.fields().trace_id,
            "the field is the event's"
        );
        log.lock()
            .unwrap()
            .push((event.kind(), trace_id.map(|id| id.to_string())));
    };
    (seen, observer)
}

fn ok() -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) })
}

#[tokio::test(start_paused = true)]
async fn an_injected_fault_carries_the_trace_id_and_a_malformed_header_none() {
    let (seen, observer) = recorder();
    let (layer, handle) = ChaosLayer::http()
        .status(1.0, StatusCode::BAD_GATEWAY)
        .latency(1.0, Latency::fixed(Duration::from_millis(5)))
        .observer(observer)
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(ok());
    let id = || Some(TRACE_ID.to_owned());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(TRACEPARENT)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        std::mem::take(&mut *seen.lock().unwrap()),
        [("injected_latency", id()), ("injected_status", id())]
    );

    for traceparent in [Some("00-0af7651916cd43dd8448eb211c80319c-xyz-01"), None] {
        svc.ready()
            .await
            .unwrap()
            .call(request(traceparent))
            .await
            .unwrap();
        assert_eq!(
            std::mem::take(&mut *seen.lock().unwrap()),
            [("injected_latency", None), ("injected_status", None)],
            "{traceparent:?}"
        );
    }

    // Disabled: the request is left alone, nothing is emitted.
    handle.disable();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(TRACEPARENT)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn plain_mode_reads_no_header() {
    let (seen, observer) = recorder();
    let layer = ChaosLayer::builder()
        .latency(1.0, Latency::fixed(Duration::from_millis(5)))
        .observer(observer)
        .build()
        .expect("valid");
    let res = layer.layer(ok()).oneshot(request(Some(TRACEPARENT))).await;
    assert!(res.is_ok());
    assert_eq!(*seen.lock().unwrap(), [("injected_latency", None)]);
}
