//! #22.3: a bulkhead near saturation and a load shedder's load level as checks: degraded,
//! never unhealthy.
#![cfg(all(feature = "bulkhead", feature = "load-shed"))]

use std::time::Duration;

use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_bulkhead::BulkheadLayer;
use weir_health::{BulkheadCheck, HealthRegistry, LoadCheck, Status, Tag};
use weir_load_shed::LoadShedLayer;

/// A service whose calls take ten seconds.
fn slow() -> impl Service<(), Response = (), Error = std::io::Error, Future: Send> + Clone + Send {
    service_fn(|()| async {
        sleep(Duration::from_secs(10)).await;
        Ok::<_, std::io::Error>(())
    })
}

fn start<S>(svc: &S, n: usize)
where
    S: Service<()> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    S::Response: Send,
{
    for _ in 0..n {
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = svc.oneshot(()).await;
        });
    }
}

async fn ready(registry: &HealthRegistry) -> (Status, Option<String>) {
    let summary = registry.evaluate(&Tag::Ready).await;
    let reason = summary.checks()[0].health().reason().map(str::to_owned);
    (summary.status(), reason)
}

/// #22.3: a bulkhead with every permit in use is degraded (still ready), healthy again when
/// the calls end.
#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_is_degraded() {
    let layer = BulkheadLayer::new(2);
    let registry = HealthRegistry::new();
    registry
        .register("bulkhead", BulkheadCheck::new(layer.handle()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();
    let svc = layer.layer(slow());
    start(&svc, 1);
    tokio::task::yield_now().await;
    assert_eq!(ready(&registry).await.0, Status::Healthy);
    start(&svc, 1);
    tokio::task::yield_now().await;
    assert_eq!(
        ready(&registry).await,
        (
            Status::Degraded,
            Some("bulkhead near saturation".to_owned())
        )
    );
    let report = registry.check("bulkhead").await.unwrap();
    assert_eq!(report.health().details(), Some("2 of 2 in use, 0 queued"));
    advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(ready(&registry).await.0, Status::Healthy);
}

/// #22.3: a load shedder at its critical level is degraded, elevated is healthy with a reason.
#[tokio::test(start_paused = true)]
async fn the_load_level_degrades_at_critical() {
    let layer = LoadShedLayer::new(10);
    let registry = HealthRegistry::new();
    registry
        .register("load", LoadCheck::new(layer.handle()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();
    let svc = layer.layer(slow());
    assert_eq!(ready(&registry).await, (Status::Healthy, None));
    start(&svc, 7);
    tokio::task::yield_now().await;
    assert_eq!(
        ready(&registry).await,
        (Status::Healthy, Some("load elevated".to_owned()))
    );
    start(&svc, 2);
    tokio::task::yield_now().await;
    assert_eq!(
        ready(&registry).await,
        (Status::Degraded, Some("load critical".to_owned()))
    );
    advance(Duration::from_secs(10)).await;
    tokio::task::yield_now().await;
    assert_eq!(ready(&registry).await, (Status::Healthy, None));
}
