//! The probes themselves: strictness, counters, readiness and the gate.

use std::convert::Infallible;

use tokio_test::{assert_pending, assert_ready, assert_ready_eq, task};
use tower::{Service, ServiceExt};
use weir_test::{
    Probe, ProbeFuture, ProbeHandle, StrictService, assert_clone, assert_send, assert_send_sync,
    assert_send_sync_static, poll_ready_now,
};

type Echo = fn(u32) -> Result<u32, Infallible>;

fn echo(n: u32) -> Result<u32, Infallible> {
    Ok(n)
}

fn probe() -> (Probe<Echo>, ProbeHandle) {
    Probe::new(echo as Echo)
}

fn gated() -> (Probe<Echo>, ProbeHandle) {
    Probe::gated(echo as Echo)
}

/// Readies `svc` (it must be ready at once) and calls it.
fn ready_call<S: Service<u32>>(svc: &mut S, req: u32) -> S::Future
where
    S::Error: std::fmt::Debug,
{
    assert!(poll_ready_now(svc).is_ready(), "service not ready");
    svc.call(req)
}

#[test]
fn auto_traits() {
    assert_send_sync_static::<StrictService<Echo>>();
    assert_send_sync_static::<Probe<Echo>>();
    assert_send_sync::<ProbeHandle>();
    assert_send::<ProbeFuture<u32, Infallible>>();
    assert_clone::<StrictService<Echo>>();
    assert_clone::<Probe<Echo>>();
    assert_clone::<ProbeHandle>();
}

#[test]
#[should_panic(expected = "StrictService::call called without a successful poll_ready")]
fn strict_panics_when_called_unready() {
    let mut svc = StrictService::new(echo);
    drop(svc.call(1));
}

#[test]
#[should_panic(expected = "StrictService::call called without a successful poll_ready")]
fn strict_readiness_is_consumed_by_call() {
    let mut svc = StrictService::new(echo);
    drop(ready_call(&mut svc, 1));
    drop(svc.call(2));
}

#[test]
fn strict_answers_when_readied() {
    let mut svc = StrictService::new(|n: u32| if n == 0 { Err("zero") } else { Ok(n * 10) });
    let mut ok = task::spawn(ready_call(&mut svc, 4));
    assert_ready_eq!(ok.poll(), Ok(40));
    let mut err = task::spawn(ready_call(&mut svc, 0));
    assert_ready_eq!(err.poll(), Err("zero"));
    assert_eq!((svc.calls(), svc.poll_ready_calls()), (2, 2));
    assert!(!svc.is_ready());
}

#[test]
fn strict_clone_is_not_ready_and_shares_counters() {
    let mut svc = StrictService::new(echo);
    assert!(poll_ready_now(&mut svc).is_ready());
    let clone = svc.clone();
    assert!(svc.is_ready());
    assert!(!clone.is_ready());
    drop(svc.call(1));
    assert_eq!(
        (clone.calls(), clone.clones(), clone.poll_ready_calls()),
        (1, 1, 1)
    );
}

#[test]
#[should_panic(expected = "StrictService::call called without a successful poll_ready")]
fn strict_clone_of_a_ready_service_panics_when_called() {
    let mut svc = StrictService::new(echo);
    assert!(poll_ready_now(&mut svc).is_ready());
    let mut clone = svc.clone();
    drop(clone.call(1));
}

#[test]
#[should_panic(expected = "Probe::call called without a successful poll_ready")]
fn probe_panics_when_called_unready() {
    let (mut svc, _handle) = probe();
    drop(svc.call(1));
}

#[test]
#[should_panic(expected = "Probe::call called without a successful poll_ready")]
fn probe_clone_of_a_ready_probe_panics_when_called() {
    let (mut svc, _handle) = probe();
    assert!(poll_ready_now(&mut svc).is_ready());
    let mut clone = svc.clone();
    drop(clone.call(1));
}

#[test]
fn probe_counts_exactly() {
    let (mut svc, handle) = probe();
    let mut clone = svc.clone();
    let _second = clone.clone();
    assert_eq!((handle.clones(), handle.live()), (2, 3));

    let mut first = task::spawn(ready_call(&mut svc, 7));
    assert_eq!(handle.poll_ready_calls(), 1);
    // A second poll_ready on a ready instance is counted and stays ready.
    assert!(poll_ready_now(&mut clone).is_ready());
    assert!(poll_ready_now(&mut clone).is_ready());
    let second = clone.call(8);
    assert_eq!(handle.poll_ready_calls(), 3);
    assert_eq!(
        (handle.calls(), handle.in_flight(), handle.max_in_flight()),
        (2, 2, 2)
    );

    assert_ready_eq!(first.poll(), Ok(7));
    assert_eq!((handle.completed(), handle.in_flight()), (1, 1));

    drop(second);
    assert_eq!((handle.cancelled(), handle.in_flight()), (1, 0));
    assert_eq!((handle.completed(), handle.max_in_flight()), (1, 2));

    drop(first);
    assert_eq!(
        handle.cancelled(),
        1,
        "a completed future dropped is not a cancellation"
    );
    drop(svc);
    assert_eq!(handle.live(), 2);
}

#[test]
fn dropping_a_pending_future_counts_a_cancellation() {
    let (mut svc, handle) = gated();
    let mut fut = task::spawn(ready_call(&mut svc, 1));
    assert_pending!(fut.poll());
    assert_eq!(handle.in_flight(), 1);
    drop(fut);
    assert_eq!(
        (handle.cancelled(), handle.in_flight(), handle.completed()),
        (1, 0, 0)
    );
}

#[test]
fn gate_holds_futures_until_released() {
    let (mut svc, handle) = gated();
    let mut a = task::spawn(ready_call(&mut svc, 1));
    let mut b = task::spawn(ready_call(&mut svc, 2));
    let mut c = task::spawn(ready_call(&mut svc, 3));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    assert_pending!(c.poll());
    assert_pending!(a.poll(), "still closed on a second poll");

    handle.release(2);
    assert!(a.is_woken() && b.is_woken() && c.is_woken());
    assert_ready_eq!(c.poll(), Ok(3));
    assert_ready_eq!(a.poll(), Ok(1));
    assert_pending!(b.poll(), "only two were released");
    assert_eq!((handle.completed(), handle.in_flight()), (2, 1));

    handle.open_gate();
    assert!(b.is_woken());
    assert_ready_eq!(b.poll(), Ok(2));

    handle.close_gate();
    let mut d = task::spawn(ready_call(&mut svc, 4));
    assert_pending!(d.poll(), "closed again");
    assert_eq!(handle.max_in_flight(), 3);
}

#[test]
fn unused_permits_are_kept_for_later_calls() {
    let (mut svc, handle) = gated();
    handle.release(1);
    let mut a = task::spawn(ready_call(&mut svc, 1));
    let mut b = task::spawn(ready_call(&mut svc, 2));
    assert_ready_eq!(a.poll(), Ok(1));
    assert_pending!(b.poll());
}

#[test]
fn not_ready_until_set_back() {
    let (mut svc, handle) = probe();
    handle.set_ready(false);
    {
        let mut ready = task::spawn(svc.ready());
        assert_pending!(ready.poll());
        assert_pending!(ready.poll());
        assert!(!ready.is_woken());
        handle.set_ready(true);
        assert!(ready.is_woken());
        assert_ready!(ready.poll()).expect("probe errors are infallible");
    }
    assert_eq!(handle.poll_ready_calls(), 3);
    assert!(svc.is_ready());

    // An instance that is already ready stays ready.
    handle.set_ready(false);
    assert!(poll_ready_now(&mut svc).is_ready());
    let mut fut = task::spawn(svc.call(5));
    assert_ready_eq!(fut.poll(), Ok(5));
    assert!(poll_ready_now(&mut svc).is_pending());
}

#[test]
fn probe_handle_from_the_service_sees_the_same_counters() {
    let (mut svc, handle) = probe();
    let other = svc.handle();
    drop(ready_call(&mut svc, 1));
    assert_eq!((handle.calls(), other.calls()), (1, 1));
    assert_eq!(
        other.in_flight(),
        0,
        "the unpolled future was dropped: a cancellation"
    );
    assert_eq!(other.cancelled(), 1);
}

/// On a real runtime: tasks blocked at the gate are woken and finish when released.
#[tokio::test]
async fn gate_wakes_spawned_tasks() {
    let (svc, handle) = gated();
    let mut tasks = Vec::new();
    for n in 0..3 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move { svc.oneshot(n).await }));
    }
    tokio::task::yield_now().await;
    assert_eq!((handle.calls(), handle.in_flight()), (3, 3));

    handle.release(3);
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task panicked").expect("infallible"));
    }
    answers.sort_unstable();
    assert_eq!(answers, [0, 1, 2]);
    assert_eq!((handle.completed(), handle.in_flight()), (3, 0));
}
