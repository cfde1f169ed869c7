//! Partitions: flooding one partition leaves another's latency and success rate unchanged;
//! named sizes; borrowing from the pool within its cap.

use std::convert::Infallible;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_bulkhead::BulkheadLayer;
use weir_core::{Error, key::MissingKey};

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

/// Each request takes as many milliseconds as its payload.
fn timed_service()
-> impl Service<Req, Response = u32, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(|req: Req| async move {
        tokio::time::sleep(Duration::from_millis(req.1.into())).await;
        Ok::<_, Infallible>(req.1)
    })
}

#[tokio::test(start_paused = true)]
async fn a_full_partition_queues_in_order_up_to_its_max_wait() {
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&reasons);
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(1)
        .max_queue(2)
        .max_wait(Duration::from_millis(100))
        .observer(move |event: &weir_bulkhead::Event<'_>| {
            if let weir_bulkhead::Event::Rejected {
                reason, partition, ..
            } = event
            {
                seen.lock()
                    .unwrap()
                    .push((*reason, format!("{:?}", partition.unwrap())));
            }
        })
        .build()
        .unwrap();
    let svc = layer.layer(timed_service());
    let start = Instant::now();
    let call = |req: Req| {
        let svc = svc.clone();
        tokio::spawn(async move {
            let result = svc.oneshot(req).await;
            let result = result.map_err(|e| {
                let error = Error::find(&*e).unwrap();
                (error.is_bulkhead_full(), error.retry_after())
            });
            (result, start.elapsed())
        })
    };
    let first = call((A, 60)); // runs at once, 0..60 ms
    tokio::task::yield_now().await;
    let second = call((A, 60)); // waits 60 ms, runs 60..120 ms
    let third = call((A, 60)); // still waiting at 100 ms: refused
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&A).unwrap().queued, 2);
    // The line is full: refused at once.
    let fourth = svc.clone().oneshot((A, 60)).await.unwrap_err();
    assert!(Error::find(&*fourth).unwrap().is_bulkhead_full());
    // Another partition is not held up by a's line.
    assert_eq!(svc.clone().oneshot((B, 5)).await.unwrap(), 5);
    assert_eq!(start.elapsed(), Duration::from_millis(5));

    let ms = Duration::from_millis;
    let (result, at) = first.await.unwrap();
    assert_eq!((result.unwrap(), at), (60, ms(60)));
    let (result, at) = third.await.unwrap();
    assert_eq!(result, Err((true, Some(Duration::from_secs(1)))));
    assert_eq!(at, ms(100), "refused when its max_wait ran out");
    let (result, at) = second.await.unwrap();
    assert_eq!((result.unwrap(), at), (60, ms(120)), "served first in line");
    let a = layer.stats(&A).unwrap();
    assert_eq!((a.in_flight, a.queued, a.rejected), (0, 0, 2));
    assert_eq!(
        *reasons.lock().unwrap(),
        [
            (weir_bulkhead::RejectReason::QueueFull, "97".to_owned()),
            (weir_bulkhead::RejectReason::MaxWait, "97".to_owned()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_partition_line_to_the_next() {
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(1)
        .max_queue(4)
        .build()
        .unwrap();
    let svc = layer.layer(timed_service());
    let start = Instant::now();
    let running = tokio::spawn(svc.clone().oneshot((A, 50)));
    tokio::task::yield_now().await;
    let gone = tokio::spawn(svc.clone().oneshot((A, 50)));
    let next = tokio::spawn({
        let svc = svc.clone();
        async move {
            let n = svc.oneshot((A, 10)).await.unwrap();
            (n, start.elapsed())
        }
    });
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&A).unwrap().queued, 2);
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    assert_eq!(layer.stats(&A).unwrap().queued, 1);
    assert_eq!(running.await.unwrap().unwrap(), 50);
    assert_eq!(next.await.unwrap(), (10, Duration::from_millis(60)));
    let a = layer.stats(&A).unwrap();
    assert_eq!((a.in_flight, a.queued, a.available), (0, 0, 1));
}

#[test]
fn a_partition_wait_needs_a_queue() {
    let refused = BulkheadLayer::partitioned::<_, u8>(tenant)
        .max_wait(Duration::from_millis(10))
        .build();
    let err = refused.expect_err("no queue");
    assert!(err.is_conflict() && err.field() == "max_wait", "{err}");
}

#[tokio::test(start_paused = true)]
async fn while_somebody_waits_a_newcomer_does_not_borrow_past_the_line() {
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(1)
        .borrow(2, 1)
        .max_queue(4)
        .build()
        .unwrap();
    let svc = layer.layer(timed_service());
    let own = tokio::spawn(svc.clone().oneshot((A, 100))); // a's own permit, 0..100 ms
    let loan = tokio::spawn(svc.clone().oneshot((A, 10))); // borrowed, 0..10 ms
    let waiting = tokio::spawn(svc.clone().oneshot((A, 10))); // waits for a's own permit
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&A).unwrap().queued, 1);
    assert_eq!(loan.await.unwrap().unwrap(), 10);
    assert_eq!(
        layer.pool_stats().unwrap().in_flight,
        0,
        "the loan came back"
    );
    // The pool could lend again, but somebody is already waiting in a's line.
    let newcomer = tokio::spawn(svc.clone().oneshot((A, 10)));
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&A).unwrap().queued, 2);
    assert_eq!(layer.pool_stats().unwrap().in_flight, 0);
    assert_eq!(own.await.unwrap().unwrap(), 100);
    assert_eq!(waiting.await.unwrap().unwrap(), 10);
    assert_eq!(newcomer.await.unwrap().unwrap(), 10);
    let a = layer.stats(&A).unwrap();
    assert_eq!((a.in_flight, a.queued, a.rejected), (0, 0, 0));
}

/// #16.8: a partitioned layer gives a handle (kept apart from the layer) on the partitions its
/// services share.
#[tokio::test(start_paused = true)]
async fn a_partitioned_layer_gives_a_handle_on_its_partitions() {
    let layer = BulkheadLayer::partitioned(tenant)
        .per_key(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(slow_service());
    drop(layer);
    let mut running = JoinSet::new();
    for i in 0..3 {
        let svc = svc.clone();
        running.spawn(async move { svc.oneshot((A, i)).await.is_ok() });
    }
    tokio::task::yield_now().await;
    let stats = handle.clone().stats(&A).expect("a's partition");
    assert_eq!((stats.in_flight, stats.rejected), (2, 1));
    assert!(handle.stats(&B).is_none());
    assert!(handle.pool_stats().is_none());
    while running.join_next().await.is_some() {}
    assert_eq!(handle.stats(&A).unwrap().in_flight, 0);
}

/// #15.15: a named partition for a header value above the extractor's `max_len`, named in code
/// through `Header::listed`, is the partition of the requests carrying that value (they are
/// keyed by its digest).
#[tokio::test(start_paused = true)]
async fn a_partition_named_by_a_long_key_through_listed_gets_its_requests() {
    use http::{HeaderName, HeaderValue, Request};
    use weir_core::key::{DEFAULT_MAX_KEY_LEN, Header};

    let tenant = Header::new(HeaderName::from_static("x-tenant"));
    let long = HeaderValue::from_str(&"t".repeat(DEFAULT_MAX_KEY_LEN + 1)).unwrap();
    let layer = BulkheadLayer::partitioned(tenant.clone())
        .partition(tenant.listed(long.clone()), 3)
        .per_key(1)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|_: Request<()>| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok::<_, Infallible>(())
    }));
    let mut calls = JoinSet::new();
    for _ in 0..3 {
        let req = Request::builder()
            .header("x-tenant", long.clone())
            .body(())
            .unwrap();
        calls.spawn(svc.clone().oneshot(req));
    }
    tokio::task::yield_now().await;
    // Three at once: the named partition's 3 permits, not `per_key`'s 1.
    let stats = layer.stats(&tenant.listed(long)).unwrap();
    assert_eq!((stats.max_concurrent, stats.in_flight), (3, 3));
    while let Some(done) = calls.join_next().await {
        assert!(done.unwrap().is_ok());
    }
}
