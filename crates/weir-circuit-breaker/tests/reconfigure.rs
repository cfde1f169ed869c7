//! New settings through the handle while calls run (#25): every later window judged by the new
//! settings, a refused setting changing nothing, calls in flight, and a multi-thread run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};
use weir_core::BoxError;
use weir_core::reconfigure::Reconfigure;

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

/// A breaker over the last 10 calls, judged from 10 calls, open for 1 s, with a handle.
fn breaker(rate: f64) -> (CircuitBreakerLayer, CircuitBreakerHandle) {
    CircuitBreakerLayer::builder()
        .count_window(10)
        .minimum_calls(10)
        .failure_rate(rate)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(1)
        .build_with_handle()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_lowered_failure_rate_opens_at_the_new_rate_in_every_later_window() {
    let (layer, handle) = breaker(50.0);
    let mut svc = layer.layer(inner());
    // 20 % failures: under 50 %, the circuit stays closed for a long run.
    for _ in 0..10 {
        for call in [FAIL, OK, OK, OK, OK, FAIL, OK, OK, OK, OK] {
            let _ = send(&mut svc, call).await;
        }
    }
    assert_eq!(handle.state(), State::Closed);

    handle.apply(handle.settings().failure_rate(20.0)).unwrap();
    // The window carried over holds 20 % failures: the next failure judges it at the new rate.
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::Open, "{:?}", handle.snapshot());

    // Every later window: closed again, the same 20 % traffic opens it each time.
    for round in 0..5 {
        advance(Duration::from_secs(1)).await;
        send(&mut svc, OK).await.unwrap(); // the probe closes it
        assert_eq!(handle.state(), State::Closed, "round {round}");
        for call in [OK, OK, OK, OK, OK, OK, OK, OK, FAIL, FAIL] {
            let _ = send(&mut svc, call).await;
        }
        assert_eq!(handle.state(), State::Open, "round {round}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_longer_open_time_holds_longer_from_the_next_opening() {
    let (layer, handle) = breaker(50.0);
    let mut svc = layer.layer(inner());
    handle.open();
    // The period running keeps its end: 1 s.
    handle
        .apply(handle.settings().open_duration(Duration::from_secs(10)))
        .unwrap();
    advance(Duration::from_secs(1)).await;
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.state(), State::Closed);

    handle.open();
    advance(Duration::from_secs(9)).await;
    let err = send(&mut svc, OK).await.unwrap_err();
    assert!(weir_core::Error::find(&*err).is_some(), "{err}");
    assert_eq!(handle.state(), State::Open, "held by the new open time");
    advance(Duration::from_secs(1)).await;
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_refused_setting_changes_nothing_and_names_the_field() {
    let (_layer, handle) = breaker(50.0);
    let before = format!("{:?}", handle.settings());
    for (settings, field) in [
        (handle.settings().failure_rate(0.0), "failure_rate"),
        (handle.settings().half_open_probes(0), "half_open_probes"),
        (handle.settings().count_window(0), "count_window"),
        (handle.settings().minimum_calls(0), "minimum_calls"),
        (
            handle.settings().open_duration(Duration::ZERO),
            "open_duration",
        ),
        (
            handle.settings().slow_calls(Duration::ZERO, 50.0),
            "slow_calls",
        ),
    ] {
        let err = handle.apply(settings).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(format!("{:?}", handle.settings()), before);
    }
}

#[tokio::test(start_paused = true)]
async fn a_shrunk_count_window_keeps_the_newest_outcomes() {
    let (layer, handle) = breaker(50.0);
    let mut svc = layer.layer(inner());
    // Oldest first: 5 failures, then 5 successes.
    for call in [FAIL, FAIL, FAIL, FAIL, OK, OK, OK, OK, OK, OK] {
        let _ = send(&mut svc, call).await;
    }
    assert_eq!(handle.snapshot().failures(), 4);
    handle
        .apply(handle.settings().count_window(5).minimum_calls(5))
        .unwrap();
    let snapshot = handle.snapshot();
    assert_eq!(
        (snapshot.calls(), snapshot.failures()),
        (5, 0),
        "the newest five"
    );
    // A changed kind starts empty.
    handle
        .apply(
            handle
                .settings()
                .time_window(Duration::from_secs(10), 10)
                .minimum_calls(5),
        )
        .unwrap();
    assert_eq!(handle.snapshot().calls(), 0);
    // Back to a shape held before: its slot, emptied and filled with nothing newer.
    handle.apply(handle.settings().count_window(10)).unwrap();
    assert_eq!(handle.snapshot().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_holds_at_most_eight_window_shapes() {
    let (_layer, handle) = breaker(50.0);
    for n in 11..18 {
        handle.apply(handle.settings().count_window(n)).unwrap();
    }
    let before = format!("{:?}", handle.settings());
    let err = handle
        .apply(handle.settings().count_window(99))
        .unwrap_err();
    assert_eq!(err.field(), "count_window", "{err}");
    assert_eq!(format!("{:?}", handle.settings()), before);
    // A shape it holds is still taken.
    handle.apply(handle.settings().count_window(10)).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_is_recorded_into_the_window_in_force() {
    let (layer, handle) = breaker(50.0);
    let mut svc = layer.layer(inner());
    let slow_fail = Call {
        delay: Duration::from_secs(1),
        ok: false,
    };
    let in_flight = tokio::spawn({
        let mut svc = svc.clone();
        async move { send(&mut svc, slow_fail).await }
    });
    tokio::task::yield_now().await;
    handle
        .apply(handle.settings().count_window(3).minimum_calls(1))
        .unwrap();
    advance(Duration::from_secs(1)).await;
    assert!(in_flight.await.unwrap().is_err());
    // Admitted under the old window, counted in the new one, judged by the new settings.
    assert_eq!(handle.state(), State::Open, "{:?}", handle.snapshot());
    let _ = send(&mut svc, OK).await;
}

/// Calls admitted after a change of window shape go to the new window (a slot other than the
/// breaker's first): successes and failures are counted there, and it opens the circuit. Then
/// back to the first shape, whose window takes the calls again.
#[tokio::test(start_paused = true)]
async fn calls_admitted_after_a_change_of_window_shape_are_counted_in_the_new_window() {
    let (layer, handle) = breaker(50.0);
    let mut svc = layer.layer(inner());
    handle
        .apply(handle.settings().count_window(4).minimum_calls(4))
        .unwrap();
    for _ in 0..4 {
        send(&mut svc, OK).await.unwrap();
    }
    let snapshot = handle.snapshot();
    assert_eq!((snapshot.calls(), snapshot.failures()), (4, 0));
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(handle.state(), State::Closed, "1 of 4 failed");
    let _ = send(&mut svc, FAIL).await;
    assert_eq!(
        handle.state(),
        State::Open,
        "2 of 4 failed: {:?}",
        handle.snapshot()
    );
    // The first shape again (emptied): its window counts the calls admitted from now on.
    advance(Duration::from_secs(1)).await;
    send(&mut svc, OK).await.unwrap();
    assert_eq!(handle.state(), State::Closed, "the probe closed it");
    handle
        .apply(handle.settings().count_window(10).minimum_calls(10))
        .unwrap();
    for _ in 0..3 {
        send(&mut svc, OK).await.unwrap();
    }
    let _ = send(&mut svc, FAIL).await;
    let snapshot = handle.snapshot();
    assert_eq!((snapshot.calls(), snapshot.failures()), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn a_half_open_period_keeps_its_probe_count() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .open_duration(Duration::from_secs(1))
        .half_open_probes(3)
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(inner());
    handle.open();
    advance(Duration::from_secs(1)).await;
    let slow_ok = Call {
        delay: Duration::from_secs(1),
        ok: true,
    };
    // Three probes admitted in this period.
    let mut probes = Vec::new();
    for _ in 0..3 {
        let mut svc = svc.clone();
        probes.push(tokio::spawn(async move { send(&mut svc, slow_ok).await }));
        tokio::task::yield_now().await;
    }
    assert_eq!(handle.state(), State::HalfOpen);
    handle.apply(handle.settings().half_open_probes(1)).unwrap();
    // No fourth probe, and one success does not close a period of three.
    let mut extra = svc.clone();
    assert!(send(&mut extra, OK).await.is_err());
    advance(Duration::from_secs(1)).await;
    for probe in probes {
        probe.await.unwrap().unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    // The next period has one probe.
    handle.open();
    advance(Duration::from_secs(1)).await;
    let mut one = svc.clone();
    let first = tokio::spawn(async move { send(&mut one, slow_ok).await });
    tokio::task::yield_now().await;
    assert!(send(&mut extra, OK).await.is_err(), "one probe only");
    advance(Duration::from_secs(1)).await;
    first.await.unwrap().unwrap();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_keyed_handle_applies_to_every_key_and_to_keys_seen_later() {
    let (layer, handle) = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate(100.0)
        .keyed(|call: &(u8, Call)| Some(call.0))
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(service_fn(|(_, call): (u8, Call)| async move {
        if call.ok {
            Ok::<_, BoxError>("ok")
        } else {
            Err(BoxError::from("boom"))
        }
    }));
    let fail_twice = async |svc: &mut _, key: u8| {
        for call in [OK, OK, FAIL, FAIL] {
            let svc: &mut weir_circuit_breaker::KeyedCircuitBreaker<_, _> = svc;
            let _ = svc.ready().await.unwrap().call((key, call)).await;
        }
    };
    fail_twice(&mut svc, 1).await;
    assert_eq!(handle.snapshot_of("1").unwrap().state(), State::Closed);
    handle.apply(handle.settings().failure_rate(50.0)).unwrap();
    // Key 1's window (two failures in four) is judged by the new rate at its next failure.
    let _ = svc.ready().await.unwrap().call((1, FAIL)).await;
    assert_eq!(handle.snapshot_of("1").unwrap().state(), State::Open);
    // A key seen after starts with the new settings.
    fail_twice(&mut svc, 2).await;
    assert_eq!(handle.snapshot_of("2").unwrap().state(), State::Open);
    let err = handle
        .apply(handle.settings().half_open_probes(0))
        .unwrap_err();
    assert_eq!(err.field(), "half_open_probes");
}

/// Probe counts of 1 and 3 applied again and again while eight tasks on four threads call a
/// breaker that is open or half-open: every admitted call is a probe, held in the inner service
/// until the round ends, then failed (which opens the circuit again). Each round lets the tasks
/// in, then parks them (each is parked or holds a probe) and counts the probes held: a
/// half-open period never admits more than either setting allows, whichever was applied while
/// it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_applied_while_calls_run_never_admit_more_probes_than_allowed() {
    const TASKS: usize = 8;
    let (layer, handle) = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_millis(1))
        .half_open_probes(3)
        .build_with_handle()
        .unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(service_fn({
        let (inside, released) = (inside.clone(), released.clone());
        move |round: usize| {
            let (inside, released) = (inside.clone(), released.clone());
            async move {
                inside.fetch_add(1, Ordering::SeqCst);
                while released.load(Ordering::SeqCst) == round {
                    tokio::task::yield_now().await;
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                Err::<(), _>(BoxError::from("probe fails"))
            }
        }
    }));
    handle.open();
    let stop = Arc::new(AtomicBool::new(false));
    let admit = Arc::new(AtomicBool::new(false));
    let parked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let mut svc = svc.clone();
        let (stop, admit, parked, released) = (
            stop.clone(),
            admit.clone(),
            parked.clone(),
            released.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if !admit.load(Ordering::SeqCst) {
                    parked.fetch_add(1, Ordering::SeqCst);
                    while !admit.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                        tokio::task::yield_now().await;
                    }
                    parked.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let round = released.load(Ordering::SeqCst);
                if let Ok(ready) = svc.ready().await {
                    let _ = ready.call(round).await;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let applier = tokio::spawn({
        let (handle, stop) = (handle.clone(), stop.clone());
        async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                handle
                    .apply(handle.settings().half_open_probes(if n.is_multiple_of(2) {
                        1
                    } else {
                        3
                    }))
                    .unwrap();
                tokio::task::yield_now().await;
            }
            n
        }
    });
    let settle = async |done: &dyn Fn() -> bool| {
        while !done() {
            tokio::task::yield_now().await;
        }
    };
    let mut held = Vec::new();
    for _ in 0..30 {
        admit.store(true, Ordering::SeqCst);
        settle(&|| inside.load(Ordering::SeqCst) > 0).await;
        // Give the other tasks time to be admitted too, if the breaker let them.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        admit.store(false, Ordering::SeqCst);
        // Every task parked or holding a probe: none is between its admission and its call.
        settle(&|| parked.load(Ordering::SeqCst) + inside.load(Ordering::SeqCst) == TASKS).await;
        held.push(inside.load(Ordering::SeqCst));
        released.fetch_add(1, Ordering::SeqCst);
        settle(&|| inside.load(Ordering::SeqCst) == 0).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        applier.await.unwrap() > 1,
        "settings were applied during the run"
    );
    assert!(
        held.iter().all(|n| (1..=3).contains(n)),
        "probes held: {held:?}"
    );
}
