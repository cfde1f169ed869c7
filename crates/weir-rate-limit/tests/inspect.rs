//! What a rate limiter shows a status page: its `Inspect` snapshot against real traffic, the
//! `reset` action, and registration through the builder.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::BoxError;
use weir_core::inspect::{ActionError, Inspect, Registry};
use weir_rate_limit::{Quota, RateLimitLayer};

fn echo() -> impl Service<
    String,
    Response = String,
    Error = Infallible,
    Future = std::future::Ready<Result<String, Infallible>>,
> + Clone {
    service_fn(|s: String| std::future::ready(Ok(s)))
}

async fn hit<S>(svc: &mut S, key: &str) -> Result<String, BoxError>
where
    S: Service<String, Response = String, Error = BoxError>,
{
    svc.ready().await?.call(key.to_owned()).await
}

#[tokio::test(start_paused = true)]
async fn a_global_limiter_shows_what_is_left_and_what_it_refused() {
    let registry = Registry::new();
    let (layer, handle) = RateLimitLayer::builder()
        .quota(Quota::per_minute(3))
        .name("edge")
        .registry(&registry)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(echo());
    let shown = registry
        .find("rate_limit", "edge")
        .expect("registered")
        .snapshot();
    assert_eq!(shown.gauge_value("remaining"), Some(3.0));
    assert_eq!(shown.gauge_value("keys"), None);

    hit(&mut svc, "a").await.unwrap();
    hit(&mut svc, "b").await.unwrap();
    let shown = Inspect::snapshot(&handle);
    assert_eq!(shown.gauge_value("remaining"), Some(1.0));
    hit(&mut svc, "c").await.unwrap();
    assert!(hit(&mut svc, "d").await.is_err());
    assert!(hit(&mut svc, "e").await.is_err());
    let shown = Inspect::snapshot(&handle);
    assert_eq!(shown.gauge_value("remaining"), Some(0.0));
    assert_eq!(shown.counter_value("rejected"), Some(2));
    assert_eq!(shown.counter_value("rejected"), Some(handle.refused()));

    // A third of the minute later one unit is back.
    advance(Duration::from_secs(20)).await;
    assert_eq!(
        Inspect::snapshot(&handle).gauge_value("remaining"),
        Some(1.0)
    );
    assert!(handle.actions().is_empty());
    assert_eq!(
        handle.act("reset", Some("a")),
        Err(ActionError::Unknown("reset".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn a_keyed_limiter_counts_keys_and_resets_one() {
    let registry = Registry::new();
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_minute(1))
        .name("clients")
        .key(|s: &String| Some(s.clone()))
        .registry(&registry)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    for key in ["ann", "bob", "ann"] {
        let _ = hit(&mut svc, key).await;
    }
    let handle = registry.find("rate_limit", "clients").expect("registered");
    let shown = handle.snapshot();
    assert_eq!(shown.gauge_value("keys"), Some(2.0));
    assert_eq!(
        shown.gauge_value("keys"),
        Some(layer.handle().keys() as f64)
    );
    assert_eq!(shown.counter_value("rejected"), Some(1));
    assert_eq!(handle.actions(), ["reset"]);

    assert!(hit(&mut svc, "ann").await.is_err());
    handle.act("reset", Some("ann")).unwrap();
    hit(&mut svc, "ann").await.unwrap();
    assert!(hit(&mut svc, "bob").await.is_err());
    assert_eq!(handle.snapshot().counter_value("rejected"), Some(3));

    assert!(matches!(
        handle.act("reset", None),
        Err(ActionError::Invalid(_))
    ));
    assert!(matches!(
        handle.act("reset", Some("nobody")),
        Err(ActionError::Invalid(_))
    ));
    assert_eq!(
        handle.act("force_open", None),
        Err(ActionError::Unknown("force_open".into()))
    );
}

#[test]
fn a_second_limiter_of_the_same_name_is_refused() {
    let registry = Registry::new();
    RateLimitLayer::per_second(1)
        .registry(&registry)
        .build()
        .unwrap();
    let err = RateLimitLayer::per_second(1)
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate());
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.snapshot()[0].layer.as_str(), "rate_limit");
}
