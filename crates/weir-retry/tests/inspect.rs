//! What a retry layer shows a status page: its `Inspect` snapshot against real traffic, and its
//! registration through the builder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower::{Layer, ServiceExt, service_fn};
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_core::{BoxError, backoff::Backoff};
use weir_retry::{RetryBudget, RetryLayer};

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("down")
    }
}

impl std::error::Error for Down {}

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_handle() {
    let registry = Registry::new();
    // 2 retries a second over 1 s and no ratio: two retries in all, then the budget refuses.
    let (layer, handle) = RetryLayer::builder()
        .name("upstream")
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(
            RetryBudget::ratio(0.0)
                .min_per_second(2)
                .window(Duration::from_secs(1)),
        )
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = layer.layer(service_fn(move |_: u32| {
        seen.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Err::<u32, BoxError>(Down.into()))
    }));

    let shown = registry
        .find("retry", "upstream")
        .expect("registered")
        .snapshot();
    assert_eq!(shown.gauge_value("budget_available"), Some(2.0));
    // The first request retries twice; the second is refused its first retry.
    assert!(svc.clone().oneshot(1).await.is_err());
    assert!(svc.clone().oneshot(2).await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 4);

    let shown = Inspect::snapshot(&handle);
    assert_eq!(shown.pattern, "retry");
    assert_eq!(shown.counter_value("retries"), Some(2));
    assert_eq!(shown.counter_value("retries"), Some(handle.retries()));
    assert_eq!(shown.counter_value("budget_exhausted"), Some(1));
    assert_eq!(
        shown.counter_value("budget_exhausted"),
        Some(handle.budget_exhausted())
    );
    assert_eq!(shown.counter_value("gave_up"), Some(handle.gave_up()));
    assert_eq!(
        shown.gauge_value("budget_available"),
        handle.available().map(|n| n as f64)
    );
    assert_eq!(shown.gauge_value("budget_available"), Some(0.0));
    assert_eq!(
        handle.act("reset", None),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[test]
fn an_unlimited_budget_shows_no_gauge_and_names_must_differ() {
    let registry = Registry::new();
    let (_, handle) = RetryLayer::builder()
        .budget(RetryBudget::unlimited())
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    assert_eq!(
        Inspect::snapshot(&handle).gauge_value("budget_available"),
        None
    );
    let err = RetryLayer::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
}
