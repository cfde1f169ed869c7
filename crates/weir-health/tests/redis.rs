//! #22.3: a Redis store's connection as a check (feature `redis`), against a port where no
//! Redis listens (a real socket: the connection is refused at once).
#![cfg(feature = "redis")]

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use weir_health::{HealthRegistry, RedisCheck, Status, Tag};
use weir_rate_limit::{Ask, Quota, Store, Tier};
use weir_redis::RedisStore;

/// #22.3: healthy before any failure; once a decision finds Redis unreachable, degraded by
/// default and unhealthy when critical.
#[tokio::test]
async fn an_unreachable_store_degrades_readiness() {
    // A free port, closed again: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let (store, handle) = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .connection_timeout(Duration::from_secs(5))
        .build_with_handle()
        .expect("valid");
    let registry = HealthRegistry::new();
    registry
        .register("redis", RedisCheck::new(handle.clone()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();
    registry
        .register("redis-critical", RedisCheck::new(handle).critical())
        .tag(Tag::custom("strict"))
        .cache_for(Duration::ZERO)
        .add()
        .unwrap();
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Healthy
    );

    let tier = Tier::new("default", [Quota::per_second(10)]);
    let ask = Ask {
        cost: 1,
        max_wait: Duration::ZERO,
    };
    let _ = store.decide(Some(&1_u32), &tier, ask, Instant::now()).await;

    let summary = registry.evaluate(&Tag::Ready).await;
    assert_eq!(summary.status(), Status::Degraded);
    assert_eq!(
        summary.checks()[0].health().reason(),
        Some("redis unreachable: the failure policy decides")
    );
    assert_eq!(
        registry.evaluate(&Tag::custom("strict")).await.status(),
        Status::Unhealthy
    );
}
