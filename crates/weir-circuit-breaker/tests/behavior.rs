//! Every transition, through the `Service`, on paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Response, StatusCode};
use std::task::Poll;
use tokio::time::{advance, sleep};

use tokio_test::{assert_pending, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerLayer, Event, State};
use weir_core::{BoxError, Error, backoff::Backoff, classify::HttpStatus};
use weir_test::Probe;

/// The request says what the inner service does: wait, then succeed or fail.
#[derive(Clone, Copy, Debug)]
struct Call {
    delay: Duration,
    ok: bool,
}

const OK: Call = Call {
    delay: Duration::ZERO,
    ok: true,
};
const FAIL: Call = Call {
    delay: Duration::ZERO,
    ok: false,
};

fn slow(ms: u64) -> Call {
    Call {
        delay: Duration::from_millis(ms),
        ok: true,
    }
}

fn inner() -> impl Service<Call, Response = &'static str, Error = BoxError, Future: Send> + Clone {
    service_fn(|call: Call| async move {
        sleep(call.delay).await;
        if call.ok {
            Ok("ok")
        } else {
            Err(BoxError::from("boom"))
        }
    })
}

async fn send<S>(svc: &mut S, call: Call) -> Result<&'static str, BoxError>
where
    S: Service<Call, Response = &'static str, Error = BoxError>,
{
    svc.ready().await?.call(call).await
}

/// A concrete error type: a spawned future whose inner error is a `BoxError` trips a rustc
/// limitation (rust-lang/rust#110338) with any `Into<BoxError>` bound, tower's included.
fn answer(_: u32) -> Result<&'static str, std::io::Error> {
    Ok("ok")
}

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

/// Collects the state changes an observer sees.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn observer(&self) -> impl Fn(&Event<'_>) + Clone + Send + Sync + 'static {
        let seen = self.0.clone();
        move |event: &Event<'_>| {
            let line = match event {
                Event::StateChange {
                    from, to, reason, ..
                } => format!("{from}->{to}:{}", reason.as_str()),
                Event::Rejected { state, .. } => format!("rejected:{state}"),
                Event::ThresholdExceeded { reason, .. } => format!("exceeded:{}", reason.as_str()),
                _ => "other".to_owned(),
            };
            seen.lock().unwrap().push(line);
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[tokio::test(start_paused = true)]
async fn the_count_window_slides() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .count_window(10)
        .failure_rate(50.0)
        .minimum_calls(10)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    for _ in 0..1000 {
        send(&mut svc, OK).await.unwrap();
    }
    // A window that did not slide would need 1 000 failures; this one needs half of the last 10.
    for _ in 0..4 {
        assert!(send(&mut svc, FAIL).await.is_err());
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().failures(), 4);
    assert_eq!(handle.failure_rate(), Some(40.0));
    assert!(send(&mut svc, FAIL).await.is_err());
    assert_eq!(handle.state(), State::Open);
    let err = send(&mut svc, OK).await.unwrap_err();
    let weir = weir_error(&err);
    assert!(weir.is_circuit_open());
    assert_eq!(weir.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(weir.layer(), Some("circuit_breaker"));
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_hold_the_rate_back() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .count_window(100)
        .minimum_calls(20)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    for _ in 0..19 {
        let _ = send(&mut svc, FAIL).await;
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.failure_rate(), None);
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_breaker() {
    let seen = Seen::default();
    let (layer, handle) = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(4)
        .slow_calls(Duration::from_millis(100), 50.0)
        .observer(seen.observer())
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    send(&mut svc, OK).await.unwrap();
    send(&mut svc, slow(99)).await.unwrap();
    send(&mut svc, slow(100)).await.unwrap();
    assert_eq!(handle.snapshot().slow_calls(), 1);
    assert_eq!(handle.state(), State::Closed);
    send(&mut svc, slow(250)).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(seen.take(), ["closed->open:slow_call_rate"]);
}

#[tokio::test(start_paused = true)]
async fn the_open_time_grows_with_each_opening_and_resets_on_close() {
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(1)
        .open_backoff(Backoff::exponential(Duration::from_secs(1)).max(Duration::from_secs(4)))
        .half_open_probes(1)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    for expected in [1, 2, 4, 4] {
        let _ = send(&mut svc, FAIL).await;
        let remaining = handle.snapshot().open_remaining();
        assert_eq!(remaining, Some(Duration::from_secs(expected)));
        // Still open a moment before the end.
        advance(Duration::from_secs(expected) - Duration::from_millis(1)).await;
        let err = send(&mut svc, OK).await.unwrap_err();
        assert_eq!(
            weir_error(&err).retry_after(),
            Some(Duration::from_millis(1))
        );
        advance(Duration::from_millis(1)).await;
        // The next call is the probe; it fails and re-opens for longer.
    }
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(
        handle.snapshot().open_remaining(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(handle.snapshot().opened(), 5);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_k_probes_under_concurrent_callers() {
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(1)
        .half_open_probes(3)
        .build_with_handle()
        .unwrap();
    handle.open();
    advance(Duration::from_secs(5)).await;
    let (probe, probes) = Probe::gated(answer as fn(u32) -> Result<&'static str, std::io::Error>);
    let svc = layer.layer(probe);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move { svc.oneshot(i).await }));
    }
    tokio::task::yield_now().await;
    // Let every task reach the breaker before any probe completes.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(probes.calls(), 3);
    assert_eq!(handle.state(), State::HalfOpen);
    probes.open_gate();
    let mut admitted = 0;
    let mut rejected = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(err) => {
                assert!(weir_error(&err).is_circuit_open());
                rejected += 1;
            }
        }
    }
    assert_eq!((admitted, rejected), (3, 47));
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_future_frees_its_slot() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .half_open_probes(1)
        .build_with_handle()
        .unwrap();
    handle.open();
    advance(Duration::from_secs(5)).await;
    let (probe, probes) = Probe::gated(|_: u32| Ok::<_, BoxError>("ok"));
    let mut svc = layer.layer(probe);

    let first = svc.ready().await.unwrap().call(1);
    assert_eq!(handle.state(), State::HalfOpen);
    // The only slot is taken.
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(weir_error(&err).is_circuit_open());
    drop(first);
    assert_eq!(probes.cancelled(), 1);
    // A readied service holds a slot too; dropping it gives it back.
    let mut clone = svc.clone();
    clone.ready().await.unwrap();
    drop(clone);
    probes.open_gate();
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), "ok");
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn hung_probes_reopen_after_the_maximum_wait() {
    let seen = Seen::default();
    let (layer, handle) = CircuitBreakerLayer::builder()
        .half_open_probes(2)
        .max_half_open_wait(Duration::from_secs(10))
        .observer(seen.observer())
        .build_with_handle()
        .unwrap();
    handle.open();
    advance(Duration::from_secs(5)).await;
    let (probe, _probes) = Probe::gated(|_: u32| Ok::<_, BoxError>("ok"));
    let mut svc = layer.layer(probe);
    let mut hung = Vec::new();
    for i in 0..2 {
        hung.push(task::spawn(svc.ready().await.unwrap().call(i)));
        assert_pending!(hung[i as usize].poll());
    }
    advance(Duration::from_millis(9_999)).await;
    assert!(svc.ready().await.unwrap().call(9).await.is_err());
    assert_eq!(handle.state(), State::HalfOpen);
    advance(Duration::from_millis(1)).await;
    let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
    assert_eq!(weir_error(&err).retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        seen.take(),
        [
            "closed->open:manual",
            "open->half_open:open_time_elapsed",
            "rejected:half_open",
            "half_open->open:half_open_timeout",
            "rejected:open",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn forced_states() {
    let seen = Seen::default();
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(1)
        .observer(seen.observer())
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());

    handle.force_open();
    advance(Duration::from_secs(3600)).await;
    let err = send(&mut svc, OK).await.unwrap_err();
    assert!(weir_error(&err).is_circuit_open());
    assert_eq!(weir_error(&err).retry_after(), None);

    handle.force_closed();
    for _ in 0..3 {
        let _ = send(&mut svc, FAIL).await;
    }
    assert_eq!(handle.state(), State::ForcedClosed);
    assert_eq!(handle.snapshot().failures(), 3);

    handle.metrics_only();
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::MetricsOnly);

    handle.disable();
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.snapshot().failures(), 4);

    handle.reset();
    assert_eq!(handle.snapshot().calls(), 0);
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        seen.take(),
        [
            "closed->forced_open:manual",
            "rejected:forced_open",
            "forced_open->forced_closed:manual",
            "forced_closed->metrics_only:manual",
            "exceeded:consecutive_failures",
            "metrics_only->disabled:manual",
            "disabled->closed:manual",
            "closed->open:consecutive_failures",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_the_breaker() {
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .build_with_handle()
        .unwrap();
    let mut a = layer.layer(inner());
    let mut b = layer.layer(inner()).clone();
    let _ = send(&mut a, FAIL).await;
    let _ = send(&mut b, FAIL).await;
    assert_eq!(handle.state(), State::Open);
    assert!(send(&mut a, OK).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_for_the_open_time_to_end() {
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(1)
        .backpressure()
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::Open);
    let mut ready = task::spawn(svc.ready());
    assert!(ready.poll().is_pending());
    advance(Duration::from_millis(4_999)).await;
    assert!(!ready.is_woken());
    assert!(ready.poll().is_pending());
    advance(Duration::from_millis(1)).await;
    assert!(ready.is_woken());
    let Poll::Ready(Ok(svc)) = ready.poll() else {
        panic!("ready once the open time is over");
    };
    assert_eq!(svc.call(OK).await.unwrap(), "ok");
    assert_eq!(handle.state(), State::HalfOpen);
    // Waiting is not a rejection.
    assert_eq!(handle.snapshot().rejected(), 0);
}

fn http_inner(
    status: StatusCode,
    retry_after: Option<&'static str>,
) -> impl Service<(), Response = Response<()>, Error = BoxError> + Clone {
    service_fn(move |()| async move {
        let mut response = Response::builder().status(status);
        if let Some(after) = retry_after {
            response = response.header("retry-after", after);
        }
        Ok::<_, BoxError>(response.body(()).unwrap())
    })
}

/// #27.2: a server's `Retry-After` answers one caller's request: it never sets the open time of
/// the breaker every caller shares.
#[tokio::test(start_paused = true)]
async fn http_classification_and_the_servers_retry_after() {
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .classifier(HttpStatus::new())
        .build_with_handle()
        .unwrap();
    // 4xx is not a failure of the server.
    let mut not_found = layer.layer(http_inner(StatusCode::NOT_FOUND, None));
    for _ in 0..5 {
        not_found.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    let mut unavailable = layer.layer(http_inner(StatusCode::SERVICE_UNAVAILABLE, Some("42")));
    for _ in 0..2 {
        let response = unavailable.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(handle.state(), State::Open);
    // The server asked one caller for 42 s: the open time is still the breaker's own (5 s).
    assert_eq!(
        handle.snapshot().open_remaining(),
        Some(Duration::from_secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_count_neither_way() {
    // weir's own rejections (here a rate limit from inside) are ignored by the classifier.
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(1)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>(Error::rate_limited(Duration::from_secs(1)).into())
    }));
    for _ in 0..10 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert!(weir_error(&err).is_rate_limited());
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_time_window_forgets_old_calls() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .time_window(Duration::from_secs(10), 10)
        .minimum_calls(4)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner());
    for _ in 0..3 {
        let _ = send(&mut svc, FAIL).await;
    }
    advance(Duration::from_secs(10)).await;
    // The three failures are out of the window: one more is 1 of 4, not 4 of 4.
    for _ in 0..3 {
        send(&mut svc, OK).await.unwrap();
    }
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.snapshot().calls(), 4);
    assert_eq!(handle.failure_rate(), Some(25.0));
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_are_independent_and_evict_only_when_closed() {
    let by_host = |req: &http::Request<()>| req.uri().authority().cloned();
    let (layer, handle) = CircuitBreakerLayer::consecutive_failures(1)
        .keyed(by_host)
        .idle_timeout(Duration::from_secs(60))
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(service_fn(|req: http::Request<()>| async move {
        if req.uri().host() == Some("down.example") {
            Err::<(), BoxError>("down".into())
        } else {
            Ok(())
        }
    }));
    let req = |host: &str| {
        http::Request::builder()
            .uri(format!("http://{host}/"))
            .body(())
            .unwrap()
    };
    assert!(
        svc.ready()
            .await
            .unwrap()
            .call(req("down.example"))
            .await
            .is_err()
    );
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(req("down.example"))
        .await
        .unwrap_err();
    assert!(weir_error(&err).is_circuit_open());
    svc.ready()
        .await
        .unwrap()
        .call(req("up.example"))
        .await
        .unwrap();
    assert_eq!(handle.len(), 2);
    assert_eq!(
        handle.snapshot_of("down.example").map(|s| s.state()),
        Some(State::Open)
    );
    assert_eq!(
        handle.snapshot_of("up.example").map(|s| s.state()),
        Some(State::Closed)
    );
    // Idle for longer than the timeout: the closed breaker goes, the open one stays.
    advance(Duration::from_secs(120)).await;
    assert_eq!(handle.evict_idle(), 1);
    assert_eq!(handle.len(), 1);
    assert_eq!(handle.snapshot_of("up.example"), None);
    assert!(handle.snapshot_of("down.example").is_some());
    handle.reset_all();
    assert_eq!(
        handle.snapshot_of("down.example").map(|s| s.state()),
        Some(State::Closed)
    );
}
