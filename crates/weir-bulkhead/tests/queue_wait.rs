//! How long a queued request waited is reported (#19: `weir_queue_wait_seconds`): a `Dequeued`
//! event when it gets its permit, the wait on a refusal after waiting, and nothing for a call
//! admitted at once. Paused time, so the waits are exact.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_bulkhead::{BulkheadLayer, Event, RejectReason};
use weir_core::Event as _;
use weir_test::Probe;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the observer saw: `(kind, partition, wait, reason)`.
type Seen = Arc<
    Mutex<
        Vec<(
            &'static str,
            Option<String>,
            Option<Duration>,
            Option<RejectReason>,
        )>,
    >,
>;

fn recorder() -> (Seen, impl Fn(&Event<'_>) + Clone + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = move |event: &Event<'_>| {
        let (partition, reason) = match event {
            Event::Rejected {
                partition, reason, ..
            } => (partition.map(|p| format!("{p:?}")), Some(*reason)),
            Event::Dequeued { partition, .. } => (partition.map(|p| format!("{p:?}")), None),
            _ => (None, None),
        };
        log.lock()
            .unwrap()
            .push((event.kind(), partition, event.fields().wait, reason));
    };
    (seen, observer)
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_reports_its_wait_and_an_immediate_one_reports_nothing() {
    let (seen, observer) = recorder();
    let layer = BulkheadLayer::queueing(1, 4, ms(100))
        .observer(observer)
        .build()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(running.poll());
    assert!(
        seen.lock().unwrap().is_empty(),
        "admitted at once: no event"
    );
    let mut queued = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(queued.poll());

    tokio::time::advance(ms(40)).await;
    gate.release(1);
    assert_eq!(assert_ready!(running.poll()).unwrap(), 1);
    assert_pending!(queued.poll(), "it runs now, held by the gate");
    assert_eq!(
        *seen.lock().unwrap(),
        [("dequeued", None, Some(ms(40)), None)]
    );
    let event_fields = {
        let name = weir_core::Name::new("db");
        Event::Dequeued {
            layer: &name,
            partition: None,
            waited: ms(40),
        }
        .fields()
    };
    assert_eq!(event_fields.fate, None, "waiting is not a fate");

    // A request that waits its whole `max_wait` is refused with that wait.
    let mut late = task::spawn(svc.ready().await.unwrap().call(3));
    assert_pending!(late.poll());
    tokio::time::advance(ms(100)).await;
    assert!(assert_ready!(late.poll()).is_err());
    assert_eq!(
        seen.lock().unwrap()[1],
        ("rejected", None, Some(ms(100)), Some(RejectReason::MaxWait))
    );
    gate.open_gate();
    assert_eq!(assert_ready!(queued.poll()).unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_on_arrival_without_a_wait() {
    let (seen, observer) = recorder();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .observer(observer)
        .build()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = layer.layer(probe);
    let mut running = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(running.poll());
    assert!(svc.ready().await.unwrap().call(2).await.is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        [("rejected", None, None, Some(RejectReason::QueueFull))]
    );
    gate.open_gate();
    assert_eq!(assert_ready!(running.poll()).unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_partition_names_its_key_with_the_wait() {
    let (seen, observer) = recorder();
    let layer = BulkheadLayer::partitioned(|req: &(u8, u64)| Some(req.0))
        .per_key(1)
        .max_queue(2)
        .max_wait(ms(100))
        .observer(observer)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|req: (u8, u64)| async move {
        tokio::time::sleep(ms(req.1)).await;
        Ok::<_, Infallible>(req.1)
    }));
    let first = tokio::spawn(svc.clone().oneshot((b'a', 60)));
    tokio::task::yield_now().await;
    let second = tokio::spawn(svc.clone().oneshot((b'a', 10)));
    assert_eq!(first.await.unwrap().unwrap(), 60);
    assert_eq!(second.await.unwrap().unwrap(), 10);
    assert_eq!(
        *seen.lock().unwrap(),
        [("dequeued", Some("97".to_owned()), Some(ms(60)), None)]
    );
}
