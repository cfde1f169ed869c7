//! Behaviour with paused time: tower-test mocks, weir-test probes and `tokio::time::advance`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tokio::sync::Semaphore;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Deadline, Error, wire::GRPC_TIMEOUT, wire::TIMEOUT_MS};
use weir_test::Probe;
use weir_timeout::{Event, RouteTimeouts, TimeoutLayer};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The weir error in `err`, which must be a timeout from the layer named `layer` (`"default"`:
/// an unnamed layer, which names no layer in its errors).
fn assert_timeout(err: &BoxError, layer: &str) {
    let weir = Error::find(&**err).unwrap_or_else(|| panic!("not a weir error: {err}"));
    assert!(weir.is_timeout(), "{weir:?}");
    assert_eq!(weir.layer(), (layer != "default").then_some(layer));
}

fn grpc_request() -> Request<()> {
    Request::builder()
        .header("content-type", "application/grpc")
        .body(())
        .expect("valid request")
}

#[tokio::test(start_paused = true)]
async fn expiry_is_at_exactly_the_configured_time() {
    let layer = TimeoutLayer::new(ms(100));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<u32, u32, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(1));
    let (_req, _send) = handle
        .next_request()
        .await
        .expect("the inner service was called");

    assert_pending!(fut.poll());
    advance(ms(99)).await;
    assert_pending!(fut.poll());
    advance(ms(1)).await;
    assert!(fut.is_woken());
    let err = assert_ready!(fut.poll()).unwrap_err();
    assert_timeout(&err, "default");
}

#[tokio::test(start_paused = true)]
async fn an_http_deadline_counts_from_call_other_timeouts_from_the_first_poll() {
    // HTTP: the deadline is fixed at `call` (it is stored in the request for others to read).
    let layer = TimeoutLayer::new(ms(100));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(Request::new(())));
    let _req = handle.next_request().await.expect("called");
    advance(ms(60)).await;
    assert_pending!(fut.poll());
    advance(ms(40)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");

    // Not HTTP: the timer starts when the call first runs and is pending (no clock reading for
    // a call answered at once).
    let layer = TimeoutLayer::new(ms(100));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<u32, u32, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(1));
    let _req = handle.next_request().await.expect("called");
    advance(ms(60)).await;
    assert_pending!(fut.poll());
    advance(ms(99)).await;
    assert_pending!(fut.poll());
    advance(ms(1)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");
}

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_deadline_passes_through() {
    let layer = TimeoutLayer::new(ms(100));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<u32, u32, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(1));
    let (req, send) = handle.next_request().await.expect("called");
    assert_pending!(fut.poll());
    advance(ms(99)).await;
    send.send_response(req + 1);
    assert_eq!(assert_ready_ok!(fut.poll()), 2);
}

#[tokio::test(start_paused = true)]
async fn no_timer_is_armed_until_the_inner_future_is_pending() {
    let mut cx = Context::from_waker(Waker::noop());
    let (probe, probe_handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::new(ms(100)).layer(probe);
    svc.ready().await.expect("ready");
    let mut fut = Box::pin(svc.call(7));
    assert!(format!("{fut:?}").contains("state: \"running\""), "{fut:?}");
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(
        format!("{fut:?}").contains("running (timer armed)"),
        "{fut:?}"
    );
    probe_handle.release(1);
    assert_eq!(
        fut.as_mut().poll(&mut cx).map(Result::ok),
        Poll::Ready(Some(7))
    );
    assert!(format!("{fut:?}").contains("state: \"done\""), "{fut:?}");

    // Without any deadline, a pending future never arms a timer.
    let (probe, _probe_handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::builder().build().expect("valid").layer(probe);
    svc.ready().await.expect("ready");
    let mut fut = Box::pin(svc.call(7));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(format!("{fut:?}").contains("state: \"running\""), "{fut:?}");
}

#[tokio::test(start_paused = true)]
async fn an_answer_ready_at_once_wins_even_with_no_time_left_to_arm() {
    let (probe, handle) = Probe::new(|n: u32| Ok::<_, Infallible>(n * 2));
    let mut svc = TimeoutLayer::new(ms(1)).layer(probe);
    let answer = svc.ready().await.expect("ready").call(21).await;
    assert_eq!(answer.expect("answered"), 42);
    assert_eq!((handle.completed(), handle.cancelled()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_earlier_of_two_deadlines_wins() {
    // The request's deadline (50 ms) is earlier than the layer's (100 ms).
    let layer = TimeoutLayer::new(ms(100));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    let mut req = Request::new(());
    let outer = Deadline::after(ms(50)).set_earliest(req.extensions_mut());
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(req));
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(Deadline::get(seen.extensions()), Some(outer));
    assert_pending!(fut.poll());
    advance(ms(49)).await;
    assert_pending!(fut.poll());
    advance(ms(1)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");

    // The layer's deadline (100 ms) is earlier than the request's (500 ms): it replaces it.
    let layer = TimeoutLayer::new(ms(100));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    let mut req = Request::new(());
    Deadline::after(ms(500)).set_earliest(req.extensions_mut());
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(req));
    let (seen, _send) = handle.next_request().await.expect("called");
    let in_force = Deadline::get(seen.extensions()).expect("a deadline");
    assert_eq!(in_force.remaining(), ms(100));
    assert_pending!(fut.poll());
    advance(ms(100)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");
}

#[tokio::test(start_paused = true)]
async fn nested_layers_never_extend_the_outer_deadline() {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let inner = service_fn(move |req: Request<()>| {
        *record.lock().expect("lock") = Deadline::get(req.extensions()).map(Deadline::remaining);
        async { Ok::<_, BoxError>(Response::new(())) }
    });
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::new(ms(200)))
        .layer(TimeoutLayer::new(ms(900)))
        .service(inner);
    svc.oneshot(Request::new(())).await.expect("answered");
    assert_eq!(*seen.lock().expect("lock"), Some(ms(200)));
}

#[tokio::test(start_paused = true)]
async fn an_incoming_grpc_timeout_of_100m_limits_the_handler_to_100_ms() {
    let layer = TimeoutLayer::server(Duration::from_secs(30))
        .name("edge")
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, HeaderValue::from_static("100m"));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(req));
    let (seen, _send) = handle.next_request().await.expect("called");
    let deadline = Deadline::get(seen.extensions()).expect("a deadline");
    assert_eq!(deadline.remaining(), ms(100));
    assert_pending!(fut.poll());
    advance(ms(99)).await;
    assert_pending!(fut.poll());
    advance(ms(1)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "edge");
}

#[tokio::test(start_paused = true)]
async fn a_client_supplied_10h_is_capped_at_the_servers_maximum() {
    let layer = TimeoutLayer::server(Duration::from_secs(30))
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, HeaderValue::from_static("10H"));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(req));
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(
        Deadline::get(seen.extensions()).map(Deadline::remaining),
        Some(Duration::from_secs(30))
    );
    assert_pending!(fut.poll());
    advance(Duration::from_secs(30)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");
}

#[tokio::test(start_paused = true)]
async fn server_mode_reads_x_timeout_ms_and_ignores_garbage() {
    let layer = TimeoutLayer::server(Duration::from_secs(30))
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    for (header, value, expected) in [
        (TIMEOUT_MS, "250", Some(ms(250))),
        // Garbage is no deadline: the server's own 30 s apply, and are not exposed.
        (TIMEOUT_MS, "-5", None),
        (GRPC_TIMEOUT, "1 S", None),
        // 99999999 hours, capped at the server's 30 s.
        (GRPC_TIMEOUT, "99999999H", Some(Duration::from_secs(30))),
    ] {
        let mut req = Request::new(());
        req.headers_mut()
            .insert(header, HeaderValue::from_static(value));
        assert_ready_ok!(svc.poll_ready());
        let _fut = svc.call(req);
        let (seen, _send) = handle.next_request().await.expect("called");
        assert_eq!(
            Deadline::get(seen.extensions()).map(Deadline::remaining),
            expected,
            "{value}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn server_mode_exposes_its_own_deadline_only_when_asked() {
    // Default: a request that carried no deadline gets none in its extensions (no allocation),
    // but the server's timeout still fires.
    let layer = TimeoutLayer::server(Duration::from_secs(30))
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(Request::new(())));
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(Deadline::get(seen.extensions()), None);
    assert_eq!(seen.extensions().len(), 0);
    // The 30 s count from the first poll that finds the handler not done (the clock is not read
    // for a handler that answers at once).
    assert_pending!(fut.poll());
    advance(Duration::from_secs(30) - ms(1)).await;
    assert_pending!(fut.poll());
    advance(ms(1)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");

    // An outer layer's later deadline is tightened in place to the server's 30 s.
    assert_ready_ok!(svc.poll_ready());
    let mut req = Request::new(());
    Deadline::after(Duration::from_secs(60)).set_earliest(req.extensions_mut());
    let _fut = svc.call(req);
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(
        Deadline::get(seen.extensions()).map(Deadline::remaining),
        Some(Duration::from_secs(30))
    );

    // `expose_deadline(true)`: every request carries it, for `Extension<Deadline>` handlers.
    let layer = TimeoutLayer::builder()
        .timeout(Duration::from_secs(30))
        .incoming(Duration::from_secs(30))
        .expose_deadline(true)
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(Request::new(()));
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(
        Deadline::get(seen.extensions()).map(Deadline::remaining),
        Some(Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn without_server_mode_incoming_headers_are_ignored() {
    let layer = TimeoutLayer::new(Duration::from_secs(5));
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, HeaderValue::from_static("100m"));
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(req);
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(
        Deadline::get(seen.extensions()).map(Deadline::remaining),
        Some(Duration::from_secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_written_is_the_deadline_minus_elapsed_minus_the_allowance() {
    let layer = TimeoutLayer::builder()
        .propagate(ms(50))
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);

    // HTTP: x-timeout-ms.
    let mut req = Request::new(());
    Deadline::after(Duration::from_secs(1)).set_earliest(req.extensions_mut());
    advance(ms(300)).await;
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(req);
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(seen.headers()[TIMEOUT_MS], "650"); // 1000 - 300 - 50
    assert!(!seen.headers().contains_key(GRPC_TIMEOUT));

    // gRPC: grpc-timeout.
    let mut req = grpc_request();
    Deadline::after(Duration::from_secs(1)).set_earliest(req.extensions_mut());
    advance(ms(300)).await;
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(req);
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(seen.headers()[GRPC_TIMEOUT], "650000u");
    assert!(!seen.headers().contains_key(TIMEOUT_MS));

    // No deadline in force: nothing is written.
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(Request::new(()));
    let (seen, _send) = handle.next_request().await.expect("called");
    assert!(seen.headers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn client_mode_with_its_own_timeout_writes_that_budget() {
    let layer = TimeoutLayer::builder()
        .timeout(ms(800))
        .propagate(ms(10))
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(Request::new(()));
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(seen.headers()[TIMEOUT_MS], "790");
}

#[tokio::test(start_paused = true)]
async fn client_mode_keeps_an_earlier_timeout_the_request_already_carries() {
    let layer = TimeoutLayer::builder()
        .timeout(Duration::from_secs(2))
        .propagate(Duration::ZERO)
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, HeaderValue::from_static("50m"));
    assert_ready_ok!(svc.poll_ready());
    let _fut = svc.call(req);
    let (seen, _send) = handle.next_request().await.expect("called");
    assert_eq!(seen.headers()[GRPC_TIMEOUT], "50000000n");
    assert_eq!(
        Deadline::get(seen.extensions()).map(Deadline::remaining),
        Some(ms(50))
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_deadline_never_reaches_the_inner_service() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&events);
    let observer = move |event: &Event<'_>| {
        record
            .lock()
            .expect("lock")
            .push(weir_core::Event::kind(event));
    };
    let (probe, handle) = Probe::new(|_req: Request<()>| Ok::<_, Infallible>(()));
    let mut svc = TimeoutLayer::builder()
        .propagate(ms(20))
        .name("client")
        .observer(observer)
        .build()
        .expect("valid")
        .layer(probe);

    // The deadline has passed.
    let mut req = Request::new(());
    Deadline::after(ms(100)).set_earliest(req.extensions_mut());
    advance(ms(100)).await;
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .unwrap_err();
    assert_timeout(&err, "client");

    // 15 ms left: less than the 20 ms allowance, so nothing would reach the server in time.
    let mut req = Request::new(());
    Deadline::after(ms(15)).set_earliest(req.extensions_mut());
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .unwrap_err();
    assert_timeout(&err, "client");
    assert_eq!(handle.calls(), 0);
    assert_eq!(*events.lock().expect("lock"), ["expired", "expired"]);

    // A server refuses a client that sent no time at all.
    let (probe, handle) = Probe::new(|_req: Request<()>| Ok::<_, Infallible>(()));
    let mut svc = TimeoutLayer::server(Duration::from_secs(1))
        .build()
        .expect("valid")
        .layer(probe);
    let mut req = grpc_request();
    req.headers_mut()
        .insert(GRPC_TIMEOUT, HeaderValue::from_static("0m"));
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .unwrap_err();
    assert_timeout(&err, "default");
    assert_eq!(handle.calls(), 0);
}

/// #17.5: `TimeoutLayer::new` never refuses every request: a zero timeout is raised to 1 ms (the
/// rule of every `new` in weir), so the call is made and a prompt answer passes; a call still
/// pending after 1 ms times out. The builder refuses the same zero.
#[tokio::test(start_paused = true)]
async fn new_raises_a_zero_timeout_to_one_millisecond() {
    let (probe, handle) = Probe::new(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::new(Duration::ZERO).layer(probe);
    let answer = svc.ready().await.expect("ready").call(1).await;
    assert_eq!(answer.expect("answered"), 1);
    assert_eq!(handle.calls(), 1);

    let (mut svc, mut mock) =
        tower_test::mock::spawn_layer::<u32, u32, _>(TimeoutLayer::new(Duration::ZERO));
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(1));
    let _req = mock
        .next_request()
        .await
        .expect("the inner service was called");
    assert_pending!(fut.poll());
    advance(Duration::from_micros(999)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_micros(1)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "default");

    let err = TimeoutLayer::builder()
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.is_zero() && err.field() == "timeout", "{err}");
}

#[tokio::test(start_paused = true)]
async fn on_timeout_the_inner_future_is_dropped_and_its_permit_released() {
    let permits = Arc::new(Semaphore::new(1));
    let held = Arc::clone(&permits);
    let inner = service_fn(move |_req: u32| {
        let held = Arc::clone(&held);
        async move {
            let _permit = held.acquire_owned().await.expect("open");
            std::future::pending::<()>().await;
            Ok::<u32, Infallible>(0)
        }
    });
    let mut svc = TimeoutLayer::new(ms(100)).layer(inner);
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    assert_eq!(permits.available_permits(), 0);
    advance(ms(100)).await;
    let err = assert_ready!(fut.poll()).unwrap_err();
    assert_timeout(&err, "default");
    // Released as the timeout fired, while the caller still holds the finished future.
    assert_eq!(permits.available_permits(), 1);
    drop(fut);

    // Cancelled (dropped) by the caller before the deadline: released as well.
    let (probe, handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::new(ms(100)).layer(probe);
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    assert_eq!(handle.in_flight(), 1);
    drop(fut);
    assert_eq!((handle.in_flight(), handle.cancelled()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn the_observer_hears_of_each_timeout() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&events);
    let observer = move |event: &Event<'_>| {
        if let Event::TimedOut {
            layer, deadline, ..
        } = event
        {
            record
                .lock()
                .expect("lock")
                .push((layer.to_string(), deadline.instant()));
        }
    };
    let (probe, _handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::builder()
        .timeout(ms(30))
        .name("db")
        .observer(observer)
        .build()
        .expect("valid")
        .layer(probe);
    let start = tokio::time::Instant::now();
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    advance(ms(30)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "db");
    assert_eq!(
        *events.lock().expect("lock"),
        [("db".to_owned(), start + ms(30))]
    );
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    #[derive(Debug, PartialEq)]
    struct Refused;
    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused")
        }
    }
    impl std::error::Error for Refused {}

    let (probe, _handle) = Probe::new(|_n: u32| Err::<u32, _>(Refused));
    let mut svc = TimeoutLayer::new(ms(100)).layer(probe);
    let err = svc.ready().await.expect("ready").call(1).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Refused>(), Some(&Refused));
    assert!(Error::find(&*err).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_timeout_per_request_from_a_closure() {
    let layer = TimeoutLayer::builder()
        .timeout_fn(|n: &u32| (*n > 0).then(|| ms(u64::from(*n))))
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<u32, u32, _>(layer);

    assert_ready_ok!(svc.poll_ready());
    let mut short = task::spawn(svc.call(10));
    let _short_req = handle.next_request().await;
    assert_ready_ok!(svc.poll_ready());
    let mut none = task::spawn(svc.call(0));
    let _none_req = handle.next_request().await;
    assert_pending!(short.poll());
    assert_pending!(none.poll());
    advance(ms(10)).await;
    assert_timeout(&assert_ready!(short.poll()).unwrap_err(), "default");
    advance(Duration::from_secs(3600)).await;
    assert_pending!(none.poll());
}

#[tokio::test(start_paused = true)]
async fn a_timeout_per_route_from_a_table() {
    let table = RouteTimeouts::new(Some(ms(500)))
        .route("/health", Some(ms(20)))
        .prefix("/reports/", Some(Duration::from_secs(60)))
        .prefix("/events/", None);
    let layer = TimeoutLayer::builder()
        .routes(table)
        .build()
        .expect("valid");
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<Request<()>, (), _>(layer);
    for (path, expected) in [
        ("/health", Some(ms(20))),
        ("/reports/q3", Some(Duration::from_secs(60))),
        ("/events/live", None),
        ("/users/7", Some(ms(500))),
    ] {
        assert_ready_ok!(svc.poll_ready());
        let _fut = svc.call(Request::get(path).body(()).expect("valid"));
        let (seen, _send) = handle.next_request().await.expect("called");
        assert_eq!(
            Deadline::get(seen.extensions()).map(Deadline::remaining),
            expected,
            "{path}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_total_and_attempt_pair_times_out_by_name() {
    let (total, attempt) =
        TimeoutLayer::total_and_attempt(ms(250), ms(100)).expect("attempt within total");
    let (probe, _handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = tower::ServiceBuilder::new()
        .layer(total)
        .layer(attempt)
        .service(probe);
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    advance(ms(100)).await;
    // The attempt's error passes through the total layer unchanged.
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "attempt");

    assert!(TimeoutLayer::total_and_attempt(ms(100), ms(250)).is_err());
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn weir_cores_tracing_observer_plugs_in() {
    let (probe, _handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::builder()
        .timeout(ms(5))
        .name("traced")
        .observer(weir_core::observer::Tracing)
        .build()
        .expect("valid")
        .layer(probe);
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    advance(ms(5)).await;
    assert_timeout(&assert_ready!(fut.poll()).unwrap_err(), "traced");
}

/// #17.2: a request type with no HTTP parts and no impl of any weir trait, a `Duration` or a
/// tuple borrowing a `&str`, goes through the default layer (`Auto`) and is only timed:
/// answered in time, or cut off with a timeout error.
#[tokio::test(start_paused = true)]
async fn a_duration_or_a_tuple_request_needs_no_impl() {
    let layer = TimeoutLayer::new(ms(100));
    let echo = layer.layer(service_fn(|d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok::<_, BoxError>(d)
    }));
    assert_eq!(echo.clone().oneshot(ms(50)).await.unwrap(), ms(50));
    let err = echo.oneshot(ms(500)).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_timeout), "{err}");

    let name = String::from("seven");
    let lookup = layer.layer(service_fn(|(id, name): (u32, &str)| {
        let answer = format!("{id}:{name}");
        async move {
            if id > 9 {
                std::future::pending::<()>().await;
            }
            Ok::<_, BoxError>(answer)
        }
    }));
    let answer = lookup.clone().oneshot((7, name.as_str())).await.unwrap();
    assert_eq!(answer, "7:seven");
    let err = lookup.oneshot((10, name.as_str())).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_timeout), "{err}");
}

/// #17.2: a request type of the user's own, with no impl of any weir trait, goes through a
/// `.plain()` layer (built either way), which times it.
#[tokio::test(start_paused = true)]
async fn a_request_type_of_your_own_is_served_in_plain_mode() {
    #[derive(Debug)]
    struct Query {
        wait: Duration,
    }

    let handler = service_fn(|q: Query| async move {
        tokio::time::sleep(q.wait).await;
        Ok::<_, BoxError>(q.wait)
    });
    let from_layer = TimeoutLayer::new(ms(100)).plain().layer(handler);
    let from_builder = TimeoutLayer::builder()
        .timeout(ms(100))
        .plain()
        .build()
        .expect("valid")
        .layer(handler);
    for svc in [from_layer, from_builder] {
        let answer = svc.clone().oneshot(Query { wait: ms(50) }).await;
        assert_eq!(answer.unwrap(), ms(50));
        let err = svc.oneshot(Query { wait: ms(500) }).await.unwrap_err();
        assert_timeout(&err, "default");
    }
}

/// #17.2: the default layer (`Auto`) stores its deadline in an `http::Request` as it always
/// did; a `.plain()` layer was told the request has no HTTP parts and touches nothing in it
/// (it still times the call).
#[tokio::test(start_paused = true)]
async fn an_http_request_gets_the_deadline_by_default_and_not_in_plain_mode() {
    let seen = service_fn(|req: Request<()>| async move {
        Ok::<_, BoxError>(Deadline::get(req.extensions()).map(Deadline::remaining))
    });
    let default = TimeoutLayer::new(ms(100)).layer(seen);
    assert_eq!(
        default.oneshot(Request::new(())).await.unwrap(),
        Some(ms(100))
    );
    let plain = TimeoutLayer::new(ms(100)).plain().layer(seen);
    assert_eq!(plain.oneshot(Request::new(())).await.unwrap(), None);
}
