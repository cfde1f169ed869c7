//! A refusal's event carries the W3C trace id of the request's `traceparent` header (#19), read
//! only for a refused (or shadowed) request of an HTTP limiter; a malformed header, or none,
//! gives no id and no panic, and an admitted request emits nothing.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::Event as _;
use weir_rate_limit::{Event, Quota, RateLimitLayer};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const MALFORMED: [&str; 5] = [
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
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

/// Each event's kind and its fields' trace id, written out.
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn recorder() -> (Seen, impl Fn(&Event<'_>) + Clone + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        let trace_id = match event {
            Event::Rejected { trace_id, .. } | Event::Shadowed { trace_id, .. } => *trace_id,
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

/// Sends a request with each of `traceparents` in turn; whether each was admitted.
async fn send<S>(svc: &mut S, traceparents: &[Option<&str>]) -> Vec<bool>
where
    S: Service<Request<()>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    let mut admitted = Vec::new();
    for traceparent in traceparents {
        let answer = svc
            .ready()
            .await
            .expect("ready")
            .call(request(*traceparent))
            .await;
        admitted.push(answer.is_ok());
    }
    admitted
}

fn ok() -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) })
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_carries_its_trace_id_and_a_malformed_one_none() {
    let (seen, observer) = recorder();
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_day(1))
        .http()
        .observer(observer)
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok());

    let mut traceparents = vec![Some(TRACEPARENT), Some(TRACEPARENT)];
    traceparents.extend(MALFORMED.map(Some));
    traceparents.push(None);
    let admitted = send(&mut svc, &traceparents).await;
    assert!(admitted[0], "the quota's one request");
    assert!(admitted[1..].iter().all(|a| !a), "every other one refused");

    let mut expected = vec![("rejected", Some(TRACE_ID.to_owned()))];
    expected.extend(std::iter::repeat_n(("rejected", None), MALFORMED.len() + 1));
    assert_eq!(
        *seen.lock().unwrap(),
        expected,
        "no event for the admitted request; the id for the valid header only"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shadowed_request_carries_its_trace_id() {
    let (seen, observer) = recorder();
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_day(1))
        .http()
        .shadow()
        .observer(observer)
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok());

    let admitted = send(&mut svc, &[None, Some(TRACEPARENT), Some("00-bad")]).await;
    assert_eq!(
        admitted,
        [true, true, true],
        "shadow mode lets them through"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [("shadowed", Some(TRACE_ID.to_owned())), ("shadowed", None)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_limiter_that_is_not_http_reads_no_trace_id() {
    let (seen, observer) = recorder();
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_day(1))
        .observer(observer)
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok());

    let admitted = send(&mut svc, &[None, Some(TRACEPARENT)]).await;
    assert_eq!(admitted, [true, false]);
    assert_eq!(*seen.lock().unwrap(), [("rejected", None)]);
}
