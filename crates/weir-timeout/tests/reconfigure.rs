//! New settings through `TimeoutHandle` while calls run (#25): the timeout, a route table, the
//! server's cap and floor, a call in flight keeping its deadline, refused settings, and a
//! multi-thread run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderValue, Request};
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, Deadline, Error, wire::TIMEOUT_MS};
use weir_timeout::{BelowFloor, RouteTimeouts, TimeoutLayer};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Answers with the time the deadline in force leaves (none: `None`), after `wait`.
fn remaining(
    wait: Duration,
) -> impl Service<Request<()>, Response = Option<Duration>, Error = BoxError, Future: Send> + Clone
{
    service_fn(move |req: Request<()>| {
        let left = Deadline::get(req.extensions()).map(Deadline::remaining);
        async move {
            sleep(wait).await;
            Ok::<_, BoxError>(left)
        }
    })
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

fn with_timeout_ms(value: &'static str) -> Request<()> {
    let mut req = get("/");
    req.headers_mut()
        .insert(TIMEOUT_MS, HeaderValue::from_static(value));
    req
}

#[tokio::test(start_paused = true)]
async fn a_new_timeout_applies_to_every_later_call_and_not_to_one_in_flight() {
    let (layer, handle) = TimeoutLayer::builder()
        .timeout(ms(100))
        .name("edge")
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(remaining(ms(150)));
    let in_flight = tokio::spawn(svc.clone().oneshot(get("/")));
    tokio::task::yield_now().await;
    handle
        .apply(TimeoutLayer::builder().timeout(ms(200)).name("ignored"))
        .unwrap();
    // Started under 100 ms: it times out at 100 ms, though the new timeout would let it end.
    let err = in_flight.await.unwrap().unwrap_err();
    let err = Error::find(&*err).expect("a weir error");
    assert_eq!(err.layer(), Some("edge"));
    // Every later call: 200 ms, whichever clone of the service makes it.
    for _ in 0..3 {
        let left = svc.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(left, Some(ms(200)));
    }
    let mut one = svc.clone();
    assert_eq!(
        one.ready().await.unwrap().call(get("/")).await.unwrap(),
        Some(ms(200))
    );
    handle
        .apply(TimeoutLayer::builder().timeout(ms(50)))
        .unwrap();
    assert!(
        one.ready().await.unwrap().call(get("/")).await.is_err(),
        "50 ms now"
    );
    advance(ms(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_route_table_applies_at_once() {
    let table = RouteTimeouts::new(Some(ms(100))).route("/slow", Some(ms(1_000)));
    let (layer, handle) = TimeoutLayer::builder()
        .routes(table)
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(remaining(Duration::ZERO));
    assert_eq!(
        svc.clone().oneshot(get("/slow")).await.unwrap(),
        Some(ms(1_000))
    );
    let table = RouteTimeouts::new(Some(ms(300))).route("/slow", Some(ms(5_000)));
    handle.apply(TimeoutLayer::builder().routes(table)).unwrap();
    assert_eq!(
        svc.clone().oneshot(get("/slow")).await.unwrap(),
        Some(ms(5_000))
    );
    assert_eq!(
        svc.clone().oneshot(get("/other")).await.unwrap(),
        Some(ms(300))
    );
    // A table with a zero timeout is refused, naming the route.
    let zero = RouteTimeouts::new(Some(ms(300))).route("/health", Some(Duration::ZERO));
    let err = handle
        .apply(TimeoutLayer::builder().routes(zero))
        .unwrap_err();
    assert!(err.is_zero(), "{err}");
    assert_eq!(
        svc.clone().oneshot(get("/other")).await.unwrap(),
        Some(ms(300))
    );
}

#[tokio::test(start_paused = true)]
async fn the_servers_cap_and_floor_change_together() {
    let (layer, handle) = TimeoutLayer::server(ms(10_000))
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(remaining(Duration::ZERO));
    let capped = svc.clone().oneshot(with_timeout_ms("60000")).await.unwrap();
    assert_eq!(capped, Some(ms(10_000)));
    let low = svc.clone().oneshot(with_timeout_ms("5")).await.unwrap();
    assert_eq!(low, Some(ms(5)));

    handle
        .apply(TimeoutLayer::server(ms(2_000)).incoming_floor(ms(50), BelowFloor::Raise))
        .unwrap();
    let capped = svc.clone().oneshot(with_timeout_ms("60000")).await.unwrap();
    assert_eq!(capped, Some(ms(2_000)));
    let raised = svc.clone().oneshot(with_timeout_ms("5")).await.unwrap();
    assert_eq!(raised, Some(ms(50)));
}

#[tokio::test(start_paused = true)]
async fn a_refused_setting_changes_nothing_and_names_the_field() {
    let (layer, handle) = TimeoutLayer::server(ms(1_000)).build_with_handle().unwrap();
    let svc = layer.layer(remaining(Duration::ZERO));
    for (builder, field) in [
        (TimeoutLayer::builder().timeout(Duration::ZERO), "timeout"),
        (
            TimeoutLayer::server(ms(100)).incoming_floor(ms(500), BelowFloor::Reject),
            "incoming_floor",
        ),
        (
            TimeoutLayer::builder()
                .timeout(ms(100))
                .incoming(Duration::ZERO),
            "incoming",
        ),
    ] {
        let err = handle.apply(builder).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(handle.version(), 0);
        let capped = svc.clone().oneshot(with_timeout_ms("60000")).await.unwrap();
        assert_eq!(capped, Some(ms(1_000)), "the running settings");
    }
}

/// Two versions applied again and again while tasks on four threads call: A (a timeout of
/// 1 s, a cap of 5 s on the client's deadline) and B (5 s, a cap of 2 s). A client asking for
/// 4 s gets 1 s under A and 2 s under B; a call that read A's cap with B's timeout would get
/// 4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_applied_while_calls_run_are_read_whole() {
    let version = |timeout: u64, cap: u64| {
        TimeoutLayer::builder()
            .timeout(Duration::from_secs(timeout))
            .incoming(Duration::from_secs(cap))
    };
    let (layer, handle) = version(1, 5).build_with_handle().unwrap();
    let svc = layer.layer(service_fn(|req: Request<()>| async move {
        Ok::<_, BoxError>(Deadline::get(req.extensions()).map(Deadline::remaining))
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (mut svc, stop, calls, seen) = (svc.clone(), stop.clone(), calls.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                calls.fetch_add(1, Ordering::Relaxed);
                let left = svc
                    .ready()
                    .await
                    .unwrap()
                    .call(with_timeout_ms("4000"))
                    .await
                    .unwrap()
                    .expect("a deadline");
                assert!(
                    left <= Duration::from_secs(2),
                    "a mix of two versions: {left:?}"
                );
                seen[usize::from(left > Duration::from_secs(1))].fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    // Until the tasks made 4 000 calls under both versions, and at least 1 000 applications.
    let mut i = 0u32;
    while i < 1_000
        || calls.load(Ordering::Relaxed) < 4_000
        || seen.iter().any(|n| n.load(Ordering::Relaxed) == 0)
    {
        let next = if i.is_multiple_of(2) {
            version(5, 2)
        } else {
            version(1, 5)
        };
        handle.apply(next).unwrap();
        i += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
}
