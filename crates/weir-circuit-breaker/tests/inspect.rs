//! What a breaker shows a status page: its `Inspect` snapshot against real traffic, its admin
//! actions, and its registration through the builder.

use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::BoxError;
use weir_core::inspect::{ActionError, Inspect, Registry};

fn inner() -> impl Service<bool, Response = (), Error = BoxError, Future: Send> + Clone {
    service_fn(|ok: bool| async move {
        if ok {
            Ok(())
        } else {
            Err(BoxError::from("boom"))
        }
    })
}

async fn send<S>(svc: &mut S, ok: bool) -> Result<(), BoxError>
where
    S: Service<bool, Response = (), Error = BoxError>,
{
    svc.ready().await?.call(ok).await
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_handle() {
    let registry = Registry::new();
    let (layer, handle) = CircuitBreakerLayer::builder()
        .name("db")
        .count_window(10)
        .minimum_calls(4)
        .failure_rate(50.0)
        .open_duration(Duration::from_secs(5))
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    for ok in [true, true, false] {
        let _ = send(&mut svc, ok).await;
    }
    let shown = Inspect::snapshot(&handle);
    assert_eq!(shown.pattern, "circuit_breaker");
    assert_eq!(shown.layer.as_str(), "db");
    assert_eq!(shown.state.map(|s| (s.name, s.value)), Some(("closed", 0)));
    assert_eq!(shown.gauge_value("calls"), Some(3.0));
    assert_eq!(shown.gauge_value("failures"), Some(1.0));
    // Below the minimum number of calls there is no rate to show.
    assert_eq!(shown.gauge_value("failure_rate"), None);
    assert!(shown.recent.is_empty());

    // The fourth call, a failure: 2 of 4 failed, the circuit opens.
    let _ = send(&mut svc, false).await;
    assert!(send(&mut svc, true).await.is_err());
    let own = handle.snapshot();
    let shown = registry.find("circuit_breaker", "db").unwrap().snapshot();
    assert_eq!(shown.state.map(|s| (s.name, s.value)), Some(("open", 1)));
    assert_eq!(shown.counter_value("opened"), Some(own.opened()));
    assert_eq!(shown.counter_value("opened"), Some(1));
    assert_eq!(shown.counter_value("rejected"), Some(own.rejected()));
    assert_eq!(shown.counter_value("rejected"), Some(1));
    assert_eq!(shown.gauge_value("failure_rate"), own.failure_rate());
    assert_eq!(shown.gauge_value("failure_rate"), Some(50.0));
    assert_eq!(shown.recent.len(), 1);
    let trip = shown.recent[0];
    assert_eq!(
        (trip.from, trip.to, trip.reason),
        ("closed", "open", Some("failure_rate"))
    );

    // Open time over: the next call is a probe (half-open), its success closes the circuit.
    advance(Duration::from_secs(5)).await;
    send(&mut svc, true).await.unwrap();
    let shown = Inspect::snapshot(&handle);
    let path: Vec<_> = shown.recent.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(path[..2], [("closed", "open"), ("open", "half_open")]);
    assert!(shown.recent.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test(start_paused = true)]
async fn actions_change_the_state_and_unknown_ones_are_refused() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::builder()
        .name("api")
        .registry(&registry)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner());
    let handle = registry.find("circuit_breaker", "api").expect("registered");
    assert_eq!(handle.actions(), ["force_open", "force_closed", "reset"]);

    handle.act("force_open", None).unwrap();
    assert_eq!(layer.handle().state(), State::ForcedOpen);
    assert!(send(&mut svc, true).await.is_err());
    let shown = handle.snapshot();
    assert_eq!(
        shown.state.map(|s| (s.name, s.value)),
        Some(("forced_open", 3))
    );
    assert_eq!(shown.recent.last().map(|t| t.reason), Some(Some("manual")));

    handle.act("force_closed", None).unwrap();
    assert_eq!(layer.handle().state(), State::ForcedClosed);
    send(&mut svc, true).await.unwrap();
    handle.act("reset", None).unwrap();
    assert_eq!(layer.handle().state(), State::Closed);

    assert_eq!(
        handle.act("explode", None),
        Err(ActionError::Unknown("explode".into()))
    );
    assert!(matches!(
        handle.act("force_open", Some("now")),
        Err(ActionError::Invalid(_))
    ));
    // A refused action changed nothing.
    assert_eq!(layer.handle().state(), State::Closed);
}

#[test]
fn a_second_breaker_of_the_same_name_is_refused() {
    let registry = Registry::new();
    CircuitBreakerLayer::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let err = CircuitBreakerLayer::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(err.field(), "name");
    CircuitBreakerLayer::builder()
        .name("other")
        .registry(&registry)
        .build()
        .unwrap();
    let names: Vec<_> = registry
        .snapshot()
        .iter()
        .map(|s| s.layer.as_str().to_owned())
        .collect();
    assert_eq!(names, ["circuit_breaker", "other"]);
}

#[tokio::test(start_paused = true)]
async fn the_keyed_handle_counts_keys_and_resets_one() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .name("hosts")
        .registry(&registry)
        .keyed(|req: &(&'static str, bool)| Some(req.0))
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|(_, ok): (&'static str, bool)| async move {
        if ok {
            Ok(())
        } else {
            Err(BoxError::from("boom"))
        }
    }));
    for req in [("a", true), ("b", false), ("c", false)] {
        let _ = svc.ready().await.unwrap().call(req).await;
    }
    assert!(svc.ready().await.unwrap().call(("b", true)).await.is_err());
    let handle = registry
        .find("circuit_breaker", "hosts")
        .expect("registered");
    let shown = handle.snapshot();
    assert_eq!(shown.gauge_value("keys"), Some(3.0));
    assert_eq!(shown.gauge_value("open"), Some(2.0));
    assert_eq!(shown.counter_value("opened"), Some(2));
    assert_eq!(shown.counter_value("rejected"), Some(1));
    assert_eq!(shown.recent.len(), 2);

    handle.act("reset", Some("b")).unwrap();
    svc.ready().await.unwrap().call(("b", true)).await.unwrap();
    assert_eq!(handle.snapshot().gauge_value("open"), Some(1.0));
    assert!(matches!(
        handle.act("reset", Some("zzz")),
        Err(ActionError::Invalid(_))
    ));
    assert!(matches!(
        handle.act("reset", None),
        Err(ActionError::Invalid(_))
    ));
    assert_eq!(
        handle.act("force_open", None),
        Err(ActionError::Unknown("force_open".into()))
    );
}
