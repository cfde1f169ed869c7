//! What a chaos layer shows a status page: its `Inspect` snapshot against real traffic, its
//! switch as admin actions, and registration through the builder.

use tower::{Layer, Service, ServiceExt, service_fn};
use weir_chaos::{ChaosLayer, Fault};
use weir_core::BoxError;
use weir_core::inspect::{ActionError, Inspect, Registry};

#[tokio::test(start_paused = true)]
async fn the_snapshot_counts_faults_and_the_switch_is_an_action() {
    let registry = Registry::new();
    let (layer, handle) = ChaosLayer::builder()
        .error(1.0, weir_core::Error::overloaded)
        .name("drill")
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    for n in 0..3 {
        assert!(svc.ready().await.unwrap().call(n).await.is_err());
    }
    let shown = registry.find("chaos", "drill").expect("registered");
    let snapshot = shown.snapshot();
    assert_eq!(
        snapshot.state.map(|s| (s.name, s.value)),
        Some(("enabled", 1))
    );
    assert_eq!(snapshot.counter_value("injected_error"), Some(3));
    assert_eq!(
        snapshot.counter_value("injected_error"),
        Some(handle.injected(Fault::Error))
    );
    assert_eq!(snapshot.counter_value("injected_latency"), Some(0));

    shown.act("disable", None).unwrap();
    assert!(!handle.is_enabled());
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    let snapshot = Inspect::snapshot(&handle);
    assert_eq!(
        snapshot.state.map(|s| (s.name, s.value)),
        Some(("disabled", 0))
    );
    assert_eq!(snapshot.counter_value("injected_error"), Some(3));
    shown.act("enable", None).unwrap();
    assert!(svc.ready().await.unwrap().call(8).await.is_err());
    assert!(matches!(
        shown.act("enable", Some("now")),
        Err(ActionError::Invalid(_))
    ));
    assert_eq!(
        shown.act("reset", None),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[test]
fn a_second_chaos_layer_of_the_same_name_is_refused() {
    let registry = Registry::new();
    ChaosLayer::builder().registry(&registry).build().unwrap();
    let err = ChaosLayer::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
}
