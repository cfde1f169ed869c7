//! Each failed attempt's latency (#19, `weir_attempt_duration_seconds`): measured only when the
//! observer wants latencies, reported in `Retry` and `GaveUp`, and recorded by weir-core's
//! `Metrics` observer into its histogram (a Prometheus recorder, rendered). Paused time, so
//! each attempt takes exactly what the service sleeps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, ServiceExt, service_fn};
use weir_core::{BoxError, Event as _, Observer, backoff::Backoff};
use weir_retry::{Event, RetryBudget, RetryLayer};

const MS: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset")
    }
}

impl std::error::Error for Reset {}

/// A service whose `n`th call takes `took[n]` and fails while `n < failures`.
fn slow(
    took: &'static [u64],
    failures: usize,
) -> impl tower::Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    let calls = Arc::new(Mutex::new(0_usize));
    service_fn(move |req: u32| {
        let calls = Arc::clone(&calls);
        async move {
            let n = {
                let mut calls = calls.lock().unwrap();
                *calls += 1;
                *calls - 1
            };
            tokio::time::sleep(MS * u32::try_from(took[n]).unwrap()).await;
            if n < failures {
                Err(BoxError::from(Reset))
            } else {
                Ok(req)
            }
        }
    })
}

/// Each event's kind and its fields' latency.
type Seen = Arc<Mutex<Vec<(&'static str, Option<Duration>)>>>;

/// An observer that wants latencies (or not, as `wants` says) and keeps each event's.
#[derive(Clone, Default)]
struct Latencies {
    seen: Seen,
    wants: bool,
}

impl Observer<Event<'_>> for Latencies {
    fn on_event(&self, event: &Event<'_>) {
        let latency = match event {
            Event::Retry { latency, .. } | Event::GaveUp { latency, .. } => *latency,
            _ => None,
        };
        assert_eq!(latency, event.fields().latency, "the field is the event's");
        self.seen.lock().unwrap().push((event.kind(), latency));
    }

    fn wants_latency(&self) -> bool {
        self.wants
    }
}

fn layer<O>(
    observer: O,
) -> RetryLayer<weir_retry::IdempotentReplay, weir_core::classify::AnyError, O>
where
    O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
{
    RetryLayer::builder()
        .name("payments")
        .max_attempts(3)
        .backoff(Backoff::constant(10 * MS))
        .budget(RetryBudget::unlimited())
        .observer(observer)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_failed_attempt_reports_how_long_it_took() {
    let observer = Latencies {
        wants: true,
        ..Latencies::default()
    };
    let retry = layer(observer.clone()).layer(slow(&[30, 70, 20], 3));
    assert!(retry.oneshot(1).await.is_err(), "three attempts failed");
    assert_eq!(
        *observer.seen.lock().unwrap(),
        [
            ("retry", Some(30 * MS)),
            ("retry", Some(70 * MS)),
            ("gave_up", Some(20 * MS))
        ],
        "the backoff's 10 ms is not part of an attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn an_observer_that_does_not_want_latencies_gets_none() {
    let observer = Latencies::default();
    let retry = layer(observer.clone()).layer(slow(&[30, 70], 1));
    assert_eq!(retry.oneshot(1).await.unwrap(), 1);
    assert_eq!(*observer.seen.lock().unwrap(), [("retry", None)]);
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn the_metrics_observer_records_the_attempt_duration_histogram() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // This file's only test with a recorder: the global one is this test binary's.
    metrics::set_global_recorder(recorder).expect("the first recorder of this test binary");

    let retry = layer(weir_core::observer::Metrics).layer(slow(&[30, 70, 20], 1));
    assert_eq!(retry.clone().oneshot(1).await.unwrap(), 1);
    let retry = layer(weir_core::observer::Metrics).layer(slow(&[50, 20], 1));
    assert_eq!(retry.oneshot(1).await.unwrap(), 1);

    let text = handle.render();
    let labels = r#"{pattern="retry",layer="payments"}"#;
    let line = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("{name}{labels}")))
            .unwrap_or_else(|| panic!("no {name}{labels} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("weir_attempt_duration_seconds_count"), "2");
    let sum: f64 = line("weir_attempt_duration_seconds_sum").parse().unwrap();
    assert!((sum - 0.08).abs() < 1e-9, "30 ms and 50 ms: {sum}");
}
