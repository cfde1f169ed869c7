//! What a hedge layer shows a status page: its `Inspect` snapshot against real traffic, and its
//! registration through the builder.

mod support;

use support::{Kind, Upstream, classify, ms};
use tower::{Layer, ServiceExt};
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_hedge::{HedgeBudget, HedgeLayer};

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_handle() {
    let registry = Registry::new();
    let upstream = Upstream::new(vec![(ms(100), Kind::Ok), (ms(10), Kind::Ok)]);
    let (layer, handle) = HedgeLayer::builder()
        .name("search")
        .delay(ms(20))
        .classify(classify)
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    layer.layer(upstream.clone()).oneshot(()).await.unwrap();

    let shown = registry
        .find("hedge", "search")
        .expect("registered")
        .snapshot();
    assert_eq!(shown.counter_value("hedges_sent"), Some(1));
    assert_eq!(
        shown.counter_value("hedges_sent"),
        Some(handle.hedges_sent())
    );
    assert_eq!(shown.counter_value("hedges_won"), Some(1));
    assert_eq!(shown.counter_value("cancelled"), Some(handle.cancelled()));
    assert_eq!(shown.counter_value("budget_exhausted"), Some(0));
    assert_eq!(
        shown.gauge_value("budget_available"),
        handle.budget_available().map(|n| n as f64)
    );
    assert!(shown.gauge_value("budget_available").is_some());
    // A fixed delay: no percentile delay to show.
    assert_eq!(shown.gauge_value("delay_ms"), None);
    assert_eq!(
        handle.act("reset", None),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[test]
fn an_unlimited_budget_shows_no_gauge_and_names_must_differ() {
    let registry = Registry::new();
    let (_, handle) = HedgeLayer::builder()
        .delay(ms(20))
        .budget(HedgeBudget::unlimited())
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    assert_eq!(
        Inspect::snapshot(&handle).gauge_value("budget_available"),
        None
    );
    let err = HedgeLayer::builder()
        .delay(ms(20))
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
}
