//! What a fallback layer shows a status page: its `Inspect` snapshot against real traffic, the
//! flag as admin actions, and registration through the builder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::BoxError;
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_fallback::{Cause, FallbackLayer};

#[tokio::test(start_paused = true)]
async fn the_snapshot_follows_traffic_and_the_flag_is_an_action() {
    let registry = Registry::new();
    let (layer, handle) = FallbackLayer::builder()
        .name("prices")
        .value(|_: Cause<'_, u32, BoxError>| Some(0))
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(move |n: u32| {
            seen.fetch_add(1, SeqCst);
            std::future::ready(if n.is_multiple_of(2) {
                Ok(n)
            } else {
                Err::<u32, BoxError>("down".into())
            })
        }));
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 0);

    let shown = registry.find("fallback", "prices").expect("registered");
    let snapshot = shown.snapshot();
    assert_eq!(
        snapshot.state.map(|s| (s.name, s.value)),
        Some(("normal", 0))
    );
    assert_eq!(snapshot.counter_value("value"), Some(1));
    assert_eq!(snapshot.counter_value("value"), Some(handle.stats().value));
    assert_eq!(snapshot.counter_value("exhausted"), Some(0));

    // Forced: the fallback answers before the primary is called.
    shown.act("force", None).unwrap();
    assert!(handle.is_forced());
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 0);
    assert_eq!(calls.load(SeqCst), 2);
    let snapshot = Inspect::snapshot(&handle);
    assert_eq!(
        snapshot.state.map(|s| (s.name, s.value)),
        Some(("forced", 1))
    );
    assert_eq!(
        snapshot.counter_value("switched"),
        Some(handle.stats().switched)
    );
    assert_eq!(snapshot.counter_value("switched"), Some(1));

    shown.act("release", None).unwrap();
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 4);
    assert!(matches!(
        shown.act("force", Some("yes")),
        Err(ActionError::Invalid(_))
    ));
    assert!(!handle.is_forced());
    assert_eq!(
        shown.act("reset", None),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[test]
fn a_second_fallback_of_the_same_name_is_refused() {
    let registry = Registry::new();
    let value = |_: Cause<'_, u32, BoxError>| Some(0);
    FallbackLayer::builder()
        .value(value)
        .registry(&registry)
        .build()
        .unwrap();
    let err = FallbackLayer::builder()
        .value(value)
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
}
