//! Partitions: flooding one partition leaves another's latency and success rate unchanged;
//! named sizes; borrowing from the pool within its cap.

use std::convert::Infallible;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_bulkhead::BulkheadLayer;
use weir_core::{Error, MissingKey};

/// A request for a tenant (A or B); the service takes 10 ms.
type Req = (u8, u32);
const A: u8 = b'a';
const B: u8 = b'b';

fn tenant(req: &Req) -> Option<u8> {
    Some(req.0)
}

fn slow_service()
-> impl Service<Req, Response = u32, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(|req: Req| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, Infallible>(req.1)
    })
}

/// Runs 20 sequential requests for tenant "b", optionally while 200 concurrent requests flood
/// tenant "a"; returns b's successes and latencies, and a's successes.
async fn run(flood: bool) -> (usize, Vec<Duration>, usize) {
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(5)
        .build()
        .unwrap();
    let svc = layer.layer(slow_service());
    let mut flooders = JoinSet::new();
    if flood {
        for i in 0..200 {
            let svc = svc.clone();
            flooders.spawn(async move { svc.oneshot((A, i)).await.is_ok() });
        }
        tokio::task::yield_now().await;
        assert_eq!(
            layer.stats(&A).unwrap().in_flight,
            5,
            "a fills its own partition"
        );
    }
    let (mut ok, mut latencies) = (0, Vec::new());
    for i in 0..20 {
        let start = Instant::now();
        if svc.clone().oneshot((B, i)).await.is_ok() {
            ok += 1;
        }
        latencies.push(start.elapsed());
    }
    let mut a_ok = 0;
    while let Some(done) = flooders.join_next().await {
        a_ok += usize::from(done.unwrap());
    }
    (ok, latencies, a_ok)
}

#[tokio::test(start_paused = true)]
async fn flooding_one_partition_leaves_another_unchanged() {
    let (quiet_ok, quiet_latencies, _) = run(false).await;
    let (flooded_ok, flooded_latencies, a_ok) = run(true).await;
    assert_eq!(quiet_ok, 20);
    assert_eq!(flooded_ok, 20, "b's success rate is unchanged");
    assert_eq!(
        flooded_latencies, quiet_latencies,
        "b's latency is unchanged"
    );
    assert!(
        quiet_latencies
            .iter()
            .all(|l| *l == Duration::from_millis(10))
    );
    assert_eq!(
        a_ok, 5,
        "a got its 5 permits; the other 195 were refused at once"
    );
}

#[tokio::test(start_paused = true)]
async fn named_partitions_have_their_own_size_and_key_less_requests_follow_missing_key() {
    const PAYMENTS: u8 = 1;
    const INVENTORY: u8 = 2;
    let layer = BulkheadLayer::partitioned(|req: &(Option<u8>, u32)| req.0)
        .partition(PAYMENTS, 2)
        .per_key(1)
        .missing_key(MissingKey::Reject)
        .name("downstreams")
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|req: (Option<u8>, u32)| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, Infallible>(req.1)
    }));
    let mut calls = JoinSet::new();
    for (key, n) in [
        (Some(PAYMENTS), 0),
        (Some(PAYMENTS), 1),
        (Some(INVENTORY), 2),
    ] {
        let svc = svc.clone();
        calls.spawn(svc.oneshot((key, n)));
    }
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&PAYMENTS).unwrap().in_flight, 2);
    assert_eq!(layer.stats(&INVENTORY).unwrap().in_flight, 1);
    for key in [Some(PAYMENTS), Some(INVENTORY), None] {
        let err = svc.clone().oneshot((key, 9)).await.unwrap_err();
        let err = Error::find(&*err).unwrap();
        assert!(err.is_bulkhead_full(), "{key:?}");
        assert_eq!(err.layer(), Some("downstreams"));
    }
    while let Some(done) = calls.join_next().await {
        assert!(done.unwrap().is_ok());
    }
    assert_eq!(layer.stats(&PAYMENTS).unwrap().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_partition_borrows_idle_capacity_within_its_cap() {
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(2)
        .borrow(3, 2)
        .build()
        .unwrap();
    let svc = layer.layer(slow_service());
    let mut calls = JoinSet::new();
    for i in 0..10 {
        let svc = svc.clone();
        calls.spawn(async move { svc.oneshot((A, i)).await.is_ok() });
    }
    tokio::task::yield_now().await;
    // 2 of its own + 2 borrowed (the cap), the pool keeps 1 for the others.
    assert_eq!(layer.stats(&A).unwrap().in_flight, 2);
    assert_eq!(layer.pool_stats().unwrap().in_flight, 2);
    let mut b = JoinSet::new();
    for i in 0..4 {
        let svc = svc.clone();
        b.spawn(async move { svc.oneshot((B, i)).await.is_ok() });
    }
    tokio::task::yield_now().await;
    assert_eq!(
        layer.pool_stats().unwrap().in_flight,
        3,
        "b borrowed the last one"
    );
    let mut a_ok = 0;
    while let Some(done) = calls.join_next().await {
        a_ok += usize::from(done.unwrap());
    }
    let mut b_ok = 0;
    while let Some(done) = b.join_next().await {
        b_ok += usize::from(done.unwrap());
    }
    assert_eq!((a_ok, b_ok), (4, 3));
    assert_eq!(layer.pool_stats().unwrap().in_flight, 0, "loans come back");
    assert_eq!(layer.stats(&A).unwrap().in_flight, 0);
}
