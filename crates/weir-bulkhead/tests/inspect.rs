//! What a bulkhead shows a status page: its `Inspect` snapshot against real traffic, and its
//! registration through the builder.

use std::convert::Infallible;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_bulkhead::BulkheadLayer;
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_test::Probe;

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_handle() {
    let registry = Registry::new();
    let (layer, handle) = BulkheadLayer::queueing(2, 1, Duration::from_secs(10))
        .name("db")
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = layer.layer(probe);

    let mut running = Vec::new();
    for n in 1..=3 {
        let mut f = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(f.poll());
        running.push(f);
    }
    // The fourth finds both permits taken and the queue full.
    assert!(svc.ready().await.unwrap().call(4).await.is_err());

    let shown = registry
        .find("bulkhead", "db")
        .expect("registered")
        .snapshot();
    let own = handle.stats();
    assert_eq!(shown.pattern, "bulkhead");
    assert_eq!(shown.state, None);
    assert_eq!(shown.gauge_value("in_flight"), Some(2.0));
    assert_eq!(shown.gauge_value("in_flight"), Some(own.in_flight as f64));
    assert_eq!(shown.gauge_value("available"), Some(0.0));
    assert_eq!(shown.gauge_value("max_concurrent"), Some(2.0));
    assert_eq!(shown.gauge_value("queued"), Some(1.0));
    assert_eq!(shown.gauge_value("queued"), Some(own.queued as f64));
    assert_eq!(shown.counter_value("rejected"), Some(1));
    assert_eq!(shown.counter_value("rejected"), Some(own.rejected));

    gate.open_gate();
    for f in &mut running {
        assert_ready!(f.poll()).unwrap();
    }
    let shown = Inspect::snapshot(&handle);
    assert_eq!(shown.gauge_value("in_flight"), Some(0.0));
    assert_eq!(shown.gauge_value("available"), Some(2.0));
    assert_eq!(shown.gauge_value("queued"), Some(0.0));
    assert_eq!(
        handle.act("reset", None),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[test]
fn a_second_bulkhead_of_the_same_name_is_refused() {
    let registry = Registry::new();
    BulkheadLayer::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let err = BulkheadLayer::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    BulkheadLayer::builder()
        .name("pool")
        .registry(&registry)
        .build()
        .unwrap();
    let names: Vec<_> = registry
        .snapshot()
        .iter()
        .map(|s| s.layer.as_str().to_owned())
        .collect();
    assert_eq!(names, ["default", "pool"]);
}

#[tokio::test(start_paused = true)]
async fn the_partitioned_handle_sums_its_partitions() {
    let registry = Registry::new();
    let layer = BulkheadLayer::partitioned(|n: &u32| Some(*n % 2))
        .name("tenants")
        .per_key(1)
        .registry(&registry)
        .build()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = layer.layer(probe);
    let mut a = task::spawn(svc.ready().await.unwrap().call(1));
    let mut b = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    // Key 1's partition is full.
    assert!(svc.ready().await.unwrap().call(3).await.is_err());

    let shown = registry
        .find("bulkhead", "tenants")
        .expect("registered")
        .snapshot();
    // Two keyed partitions and the key-less one.
    assert_eq!(shown.gauge_value("partitions"), Some(3.0));
    assert_eq!(shown.gauge_value("in_flight"), Some(2.0));
    assert_eq!(shown.counter_value("rejected"), Some(1));
    assert_eq!(
        layer.stats(&1).map(|s| s.rejected),
        shown.counter_value("rejected")
    );
    gate.open_gate();
    assert_ready!(a.poll()).unwrap();
    assert_ready!(b.poll()).unwrap();
    assert_eq!(
        layer.handle().snapshot().gauge_value("in_flight"),
        Some(0.0)
    );
}
