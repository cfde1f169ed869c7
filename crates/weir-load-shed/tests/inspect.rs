//! What a load shedder shows a status page: its `Inspect` snapshot against real traffic, and
//! its registration through the builder.

use std::convert::Infallible;

use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_load_shed::LoadShedLayer;
use weir_test::Probe;

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_handle() {
    let registry = Registry::new();
    let (layer, handle) = LoadShedLayer::builder()
        .name("edge")
        .max_in_flight(2)
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = layer.layer(probe);

    let shown = registry
        .find("load_shed", "edge")
        .expect("registered")
        .snapshot();
    assert_eq!(shown.state.map(|s| (s.name, s.value)), Some(("normal", 0)));

    let mut a = task::spawn(svc.ready().await.unwrap().call(1));
    let mut b = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    assert!(svc.ready().await.unwrap().call(3).await.is_err());

    let shown = Inspect::snapshot(&handle);
    let own = handle.stats();
    assert_eq!(
        shown.state.map(|s| (s.name, s.value)),
        Some(("critical", 2))
    );
    assert_eq!(shown.gauge_value("in_flight"), Some(2.0));
    assert_eq!(shown.gauge_value("in_flight"), Some(own.in_flight as f64));
    assert_eq!(shown.gauge_value("limit"), Some(2.0));
    assert_eq!(shown.counter_value("shed"), Some(1));
    assert_eq!(shown.counter_value("shed"), Some(own.shed));

    gate.open_gate();
    assert_ready!(a.poll()).unwrap();
    assert_ready!(b.poll()).unwrap();
    let shown = Inspect::snapshot(&handle);
    assert_eq!(shown.state.map(|s| s.name), Some("normal"));
    assert_eq!(shown.gauge_value("in_flight"), Some(0.0));
    assert_eq!(shown.counter_value("succeeded"), Some(2));
    assert_eq!(
        handle.act("reset", None),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[test]
fn a_second_shedder_of_the_same_name_is_refused() {
    let registry = Registry::new();
    LoadShedLayer::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let err = LoadShedLayer::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.snapshot()[0].layer.as_str(), "default");
}
