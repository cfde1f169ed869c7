//! The hedge layer's events carry the W3C trace id of the request's `traceparent` header (#19),
//! read from the kept copy of an HTTP request when the event is built (a hedge sent, won or
//! refused by the budget, an attempt failed), and each attempt's latency when the observer
//! wants latencies. A malformed header, or none, gives no id; paused time, so the latencies are
//! exact.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::classify::HttpStatus;
use weir_core::{Event as _, Observer};
use weir_hedge::{Event, HedgeBudget, HedgeLayer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn request(traceparent: Option<&str>) -> Request<String> {
    let mut builder = Request::builder().uri("http://upstream/items");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder.body(String::new()).expect("a valid request")
}

/// Each event: its kind, attempt, latency and trace id (written out).
type Line = (&'static str, Option<u32>, Option<Duration>, Option<String>);

/// An observer that keeps every event's fields, and wants latencies when `wants` says so.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Line>>>,
    wants: bool,
}

impl Observer<Event<'_>> for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let fields = event.fields();
        let trace_id = match event {
            Event::HedgeSent { trace_id, .. }
            | Event::HedgeWon { trace_id, .. }
            | Event::AttemptFailed { trace_id, .. }
            | Event::BudgetExhausted { trace_id, .. } => *trace_id,
            _ => None,
        };
        assert_eq!(trace_id, fields.trace_id, "the field is the event's");
        self.seen.lock().unwrap().push((
            event.kind(),
            fields.attempt,
            fields.latency,
            trace_id.map(|id| id.to_string()),
        ));
    }

    fn wants_latency(&self) -> bool {
        self.wants
    }
}

impl Recorder {
    fn take(&self) -> Vec<Line> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// The `n`th call (from 0) takes `script[n].0` and answers `script[n].1`.
fn upstream(
    script: Vec<(Duration, u16)>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    let calls = Arc::new(Mutex::new(0_usize));
    let script = Arc::new(script);
    service_fn(move |_req: Request<String>| {
        let calls = Arc::clone(&calls);
        let script = Arc::clone(&script);
        async move {
            let n = {
                let mut calls = calls.lock().unwrap();
                *calls += 1;
                *calls - 1
            };
            let (took, status) = script[n];
            tokio::time::sleep(took).await;
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok(response)
        }
    })
}

/// The primary fails after 5 ms (a hedge goes at once), the first hedge is slow, the second
/// (20 ms after the first) answers after 10 ms.
fn script() -> Vec<(Duration, u16)> {
    vec![(ms(5), 503), (ms(100), 200), (ms(10), 200)]
}

fn hedged(
    recorder: &Recorder,
    budget: HedgeBudget,
) -> HedgeLayer<weir_retry::IdempotentReplay, HttpStatus, Recorder> {
    HedgeLayer::builder()
        .delay(ms(20))
        .max_attempts(3)
        .budget(budget)
        .classify(HttpStatus::new())
        .observer(recorder.clone())
        .build()
        .expect("valid")
}

#[tokio::test(start_paused = true)]
async fn every_event_of_a_hedged_request_carries_its_trace_id_and_latencies() {
    let recorder = Recorder {
        wants: true,
        ..Recorder::default()
    };
    let layer = hedged(&recorder, HedgeBudget::unlimited());
    let id = || Some(TRACE_ID.to_owned());
    let response = layer
        .layer(upstream(script()))
        .oneshot(request(Some(TRACEPARENT)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        recorder.take(),
        [
            ("attempt_failed", Some(1), Some(ms(5)), id()),
            ("hedge_sent", Some(2), None, id()),
            ("hedge_sent", Some(3), None, id()),
            ("hedge_won", Some(3), Some(ms(10)), id()),
            ("cancelled", None, None, None),
        ]
    );

    // A malformed header, or none: the same events, no id.
    for traceparent in [Some("00-4bf92f3577b34da6a3ce929d0e0e4736-zz"), None] {
        let response = layer
            .layer(upstream(script()))
            .oneshot(request(traceparent))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let ids: Vec<_> = recorder.take().into_iter().map(|line| line.3).collect();
        assert_eq!(ids, [None, None, None, None, None], "{traceparent:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_latency_for_an_observer_that_does_not_want_it() {
    let recorder = Recorder::default();
    let layer = hedged(&recorder, HedgeBudget::unlimited());
    let response = layer
        .layer(upstream(script()))
        .oneshot(request(Some(TRACEPARENT)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = recorder.take();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|line| line.2.is_none()), "{seen:?}");
    assert_eq!(seen[0].3.as_deref(), Some(TRACE_ID));
}

#[tokio::test(start_paused = true)]
async fn a_hedge_the_budget_refuses_carries_the_trace_id() {
    let recorder = Recorder::default();
    // One hedge in the balance, none earned.
    let budget = HedgeBudget::ratio(0.0).min_per_second(0).burst(1);
    let layer = hedged(&recorder, budget);
    let slow = || upstream(vec![(ms(50), 200), (ms(50), 200)]);
    let first = layer.layer(slow()).oneshot(request(None)).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(recorder.take()[0].0, "hedge_sent", "the one hedge spent");

    let second = layer
        .layer(slow())
        .oneshot(request(Some(TRACEPARENT)))
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(
        recorder.take(),
        [("budget_exhausted", None, None, Some(TRACE_ID.to_owned()))]
    );
}
