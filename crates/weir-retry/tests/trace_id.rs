//! A retry's and a refusal to retry's events carry the W3C trace id of the request's
//! `traceparent` header (#19), read from the kept copy of an HTTP request when the event is
//! built: with the default `IdempotentReplay` and with `HttpReplay`. A malformed header, or
//! none, gives no id and no panic; a request that is not kept (a POST without an
//! `Idempotency-Key`) gives none; a call that works emits nothing.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::Event as _;
use weir_core::backoff::Backoff;
use weir_core::classify::HttpStatus;
use weir_retry::{Event, RetryBudget, RetryLayer};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const MALFORMED: [&str; 4] = [
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "garbage",
];

/// Each event's kind and its trace id, written out.
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn recorder() -> (Seen, impl Fn(&Event<'_>) + Clone + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        let trace_id = match event {
            Event::Retry { trace_id, .. } | Event::GaveUp { trace_id, .. } => *trace_id,
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

fn request<B>(method: Method, traceparent: Option<&str>, body: B) -> Request<B> {
    let mut builder = Request::builder().method(method).uri("http://shop/orders");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder.body(body).expect("a valid request")
}

/// Fails with a 503 while the calls made are fewer than `failures`; counts them.
fn flaky<B: Send + 'static>(
    failures: u32,
) -> impl Service<Request<B>, Response = Response<String>, Error = Infallible, Future: Send> + Clone + Send
{
    let calls = Arc::new(Mutex::new(0_u32));
    service_fn(move |_req: Request<B>| {
        let calls = Arc::clone(&calls);
        async move {
            let mut calls = calls.lock().unwrap();
            *calls += 1;
            let status = if *calls <= failures { 503 } else { 200 };
            let mut response = Response::new(String::new());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok(response)
        }
    })
}

fn expected(id: Option<&str>) -> Vec<(&'static str, Option<String>)> {
    let id = id.map(str::to_owned);
    vec![
        ("retry", id.clone()),
        ("retry", id.clone()),
        ("gave_up", id),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_retried_request_carries_its_trace_id_and_a_malformed_one_none() {
    for (traceparent, id) in std::iter::once((Some(TRACEPARENT), Some(TRACE_ID)))
        .chain(MALFORMED.map(|bad| (Some(bad), None)))
        .chain([(None, None)])
    {
        let (seen, observer) = recorder();
        let layer = RetryLayer::builder()
            .classify(HttpStatus::new())
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(10)))
            .budget(RetryBudget::unlimited())
            .observer(observer)
            .build()
            .expect("valid");
        let response = layer
            .layer(flaky(u32::MAX))
            .oneshot(request(Method::GET, traceparent, String::new()))
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "every attempt failed");
        assert_eq!(*seen.lock().unwrap(), expected(id), "{traceparent:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_works_emits_nothing_and_a_request_not_kept_has_no_id() {
    let (seen, observer) = recorder();
    let layer = RetryLayer::builder()
        .classify(HttpStatus::new())
        .max_attempts(3)
        .budget(RetryBudget::unlimited())
        .observer(observer)
        .build()
        .expect("valid");
    let mut svc = layer.layer(flaky(0));
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::GET, Some(TRACEPARENT), String::new()))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(seen.lock().unwrap().is_empty(), "no event, no header read");

    // A POST without an `Idempotency-Key` is sent once and not kept: its refusal to retry
    // has no copy to read the id from.
    let mut svc = layer.layer(flaky(1));
    let failed = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::POST, Some(TRACEPARENT), String::new()))
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    assert_eq!(*seen.lock().unwrap(), [("gave_up", None)]);
}

#[tokio::test(start_paused = true)]
async fn http_replay_reads_the_trace_id_of_its_buffered_copy() {
    let (seen, observer) = recorder();
    let layer = RetryLayer::http()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(RetryBudget::unlimited())
        .observer(observer)
        .build()
        .expect("valid");
    let body = || Full::new(Bytes::from_static(b"{}"));
    let response = layer
        .layer(flaky(u32::MAX))
        .oneshot(request(Method::PUT, Some(TRACEPARENT), body()))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(*seen.lock().unwrap(), expected(Some(TRACE_ID)));

    seen.lock().unwrap().clear();
    let response = layer
        .layer(flaky(u32::MAX))
        .oneshot(request(Method::PUT, Some("00-nope"), body()))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(*seen.lock().unwrap(), expected(None));
}

#[tokio::test(start_paused = true)]
async fn a_retry_the_budget_refuses_carries_the_trace_id() {
    let (seen, observer) = recorder();
    let layer = RetryLayer::builder()
        .classify(HttpStatus::new())
        .max_attempts(3)
        .budget(RetryBudget::ratio(0.0).min_per_second(0))
        .observer(observer)
        .build()
        .expect("valid");
    let response = layer
        .layer(flaky(u32::MAX))
        .oneshot(request(Method::GET, Some(TRACEPARENT), String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "sent once, not retried");
    assert_eq!(
        *seen.lock().unwrap(),
        [("budget_exhausted", Some(TRACE_ID.to_owned()))]
    );
}
