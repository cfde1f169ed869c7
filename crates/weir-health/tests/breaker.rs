//! #22.3: a circuit breaker's state as a readiness check (feature `circuit-breaker`).
#![cfg(feature = "circuit-breaker")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, ServiceExt, service_fn};
use weir_circuit_breaker::CircuitBreakerLayer;
use weir_health::{BreakerCheck, HealthRegistry, Status, Tag};

/// #22.3: open on a critical dependency = not ready, on an optional one = degraded; once the
/// open time is over the instance is ready again (degraded) so traffic can probe the
/// dependency; closed again = healthy.
#[tokio::test(start_paused = true)]
async fn breaker_state_drives_readiness() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(30))
        .half_open_probes(1)
        .build_with_handle()
        .unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&failing);
    let svc = layer.layer(service_fn(move |()| {
        let fail = flag.load(Ordering::SeqCst);
        async move {
            if fail {
                Err(std::io::Error::other("refused"))
            } else {
                Ok("ok")
            }
        }
    }));

    let critical = HealthRegistry::new();
    critical
        .register("upstream", BreakerCheck::critical(handle.clone()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();
    let optional = HealthRegistry::new();
    optional
        .register("recommendations", BreakerCheck::optional(handle.clone()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();
    let ready = async |r: &HealthRegistry| r.evaluate(&Tag::Ready).await.status();

    assert_eq!(ready(&critical).await, Status::Healthy);
    for _ in 0..2 {
        let _ = svc.clone().oneshot(()).await;
    }
    assert_eq!(ready(&critical).await, Status::Unhealthy);
    assert_eq!(ready(&optional).await, Status::Degraded);
    let summary = critical.evaluate(&Tag::Ready).await;
    assert_eq!(summary.checks()[0].health().reason(), Some("circuit open"));

    advance(Duration::from_secs(31)).await;
    assert_eq!(ready(&critical).await, Status::Degraded);

    failing.store(false, Ordering::SeqCst);
    assert_eq!(svc.clone().oneshot(()).await.unwrap(), "ok");
    assert_eq!(ready(&critical).await, Status::Healthy);
    assert_eq!(ready(&optional).await, Status::Healthy);

    handle.force_open();
    assert_eq!(ready(&critical).await, Status::Unhealthy);
    assert_eq!(ready(&optional).await, Status::Degraded);
}

/// #22.3: a keyed breaker (one per upstream) reads as its worst key, and the reason names it.
#[tokio::test(start_paused = true)]
async fn a_keyed_breaker_reads_as_its_worst_key() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(30))
        .keyed(|upstream: &&'static str| Some(*upstream))
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(service_fn(|upstream: &'static str| async move {
        if upstream == "b" {
            Err(std::io::Error::other("refused"))
        } else {
            Ok("ok")
        }
    }));
    let registry = HealthRegistry::new();
    registry
        .register("upstreams", BreakerCheck::critical_keyed(handle))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();

    assert_eq!(svc.clone().oneshot("a").await.unwrap(), "ok");
    let summary = registry.evaluate(&Tag::Ready).await;
    assert_eq!(summary.status(), Status::Healthy);

    let _ = svc.clone().oneshot("b").await;
    let summary = registry.evaluate(&Tag::Ready).await;
    assert_eq!(summary.status(), Status::Unhealthy);
    assert_eq!(
        summary.checks()[0].health().reason(),
        Some("\"b\": circuit open")
    );

    advance(Duration::from_secs(31)).await;
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Degraded
    );
}
