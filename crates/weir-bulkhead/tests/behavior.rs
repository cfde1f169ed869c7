//! The bulkhead's behaviour, on paused time: rejection, FIFO queueing, maximum wait, deadline,
//! Retry-After, release on completion, drop and cancellation, backpressure.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_bulkhead::{BulkheadLayer, BulkheadStats, Event, RejectReason};
use weir_core::{BoxError, Deadline, Error};
use weir_test::{Probe, ProbeHandle, poll_ready_now};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A gated probe recording the order in which requests reach it.
fn recording_probe() -> (
    Probe<impl Fn(u32) -> Result<u32, Infallible>>,
    ProbeHandle,
    Arc<Mutex<Vec<u32>>>,
) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&order);
    let (probe, handle) = Probe::gated(move |n: u32| {
        seen.lock().unwrap().push(n);
        Ok::<_, Infallible>(n)
    });
    (probe, handle, order)
}

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

fn stats(in_flight: usize, queued: usize, rejected: u64, max: usize) -> BulkheadStats {
    let mut s = BulkheadLayer::new(max).handle().stats();
    s.in_flight = in_flight;
    s.available = max - in_flight;
    s.queued = queued;
    s.rejected = rejected;
    s
}

#[tokio::test(start_paused = true)]
async fn refuses_at_once_when_every_permit_is_taken() {
    let (layer, handle) = BulkheadLayer::builder()
        .name("db")
        .max_concurrent(2)
        .retry_after(Duration::from_secs(3))
        .build_with_handle()
        .unwrap();
    let (probe, gate, _) = recording_probe();
    let mut svc = layer.layer(probe);

    let mut a = task::spawn(svc.ready().await.unwrap().call(1));
    let mut b = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    assert_eq!(handle.stats(), stats(2, 0, 0, 2));

    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    let weir = weir_error(&err);
    assert!(weir.is_bulkhead_full());
    assert_eq!(weir.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(weir.layer(), Some("db"));
    assert_eq!(
        gate.calls(),
        2,
        "the refused request never reached the service"
    );
    assert_eq!(handle.stats(), stats(2, 0, 1, 2));

    gate.release(1);
    assert_eq!(assert_ready!(a.poll()).unwrap(), 1);
    assert_eq!(handle.stats().in_flight, 1);
    let mut c = task::spawn(svc.ready().await.unwrap().call(4));
    assert_pending!(c.poll());
    gate.open_gate();
    assert_eq!(assert_ready!(b.poll()).unwrap(), 2);
    assert_eq!(assert_ready!(c.poll()).unwrap(), 4);
    assert_eq!(handle.stats(), stats(0, 0, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn queued_requests_are_served_in_arrival_order() {
    let (layer, handle) = BulkheadLayer::queueing(1, 3, Duration::from_secs(10))
        .build_with_handle()
        .unwrap();
    let (probe, gate, order) = recording_probe();
    let mut svc = layer.layer(probe);

    let mut futures: Vec<_> = Vec::new();
    for n in 1..=4 {
        let mut f = task::spawn(svc.ready().await.unwrap().call(n));
        assert_pending!(f.poll());
        futures.push(f);
    }
    assert_eq!(handle.stats(), stats(1, 3, 0, 1));
    // A fifth finds the queue full.
    let err = svc.ready().await.unwrap().call(5).await.unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());

    for done in 0..4 {
        gate.release(1);
        assert_eq!(
            assert_ready!(futures[done].poll()).unwrap(),
            done as u32 + 1
        );
        if let Some(next) = futures.get_mut(done + 1) {
            assert!(next.is_woken(), "the next in line is woken");
            assert_pending!(next.poll());
        }
    }
    assert_eq!(*order.lock().unwrap(), [1, 2, 3, 4]);
    assert_eq!(handle.stats(), stats(0, 0, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_gives_up_after_max_wait() {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&reasons);
    let (layer, handle) = BulkheadLayer::queueing(1, 4, ms(100))
        .retry_after(ms(250))
        .observer(move |event: &Event<'_>| {
            let Event::Rejected { reason, .. } = event else {
                return;
            };
            seen.lock().unwrap().push(*reason);
        })
        .build_with_handle()
        .unwrap();
    let (probe, gate, order) = recording_probe();
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(running.poll());
    let mut queued = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(queued.poll());

    tokio::time::advance(ms(99)).await;
    assert_pending!(queued.poll());
    assert_eq!(handle.stats().queued, 1);
    tokio::time::advance(ms(1)).await;
    assert!(queued.is_woken());
    let err = assert_ready!(queued.poll()).unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());
    assert_eq!(weir_error(&err).retry_after(), Some(ms(250)));
    assert_eq!(*reasons.lock().unwrap(), [RejectReason::MaxWait]);
    assert_eq!(handle.stats(), stats(1, 0, 1, 1));

    // The timed-out waiter took nothing: the next release goes to a new request.
    gate.open_gate();
    assert!(assert_ready!(running.poll()).is_ok());
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 3);
    assert_eq!(*order.lock().unwrap(), [1, 3]);
    assert_eq!(handle.stats(), stats(0, 0, 1, 1));
}

fn http_probe() -> (
    Probe<impl Fn(Request<()>) -> Result<Response<String>, Infallible>>,
    ProbeHandle,
) {
    Probe::gated(|_req: Request<()>| Ok::<_, Infallible>(Response::new("body".to_owned())))
}

fn request_with_deadline(after: Duration) -> Request<()> {
    let mut req = Request::new(());
    Deadline::after(after).set_earliest(req.extensions_mut());
    req
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_wait_in_http_mode() {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&reasons);
    let (layer, handle) = BulkheadLayer::http(1)
        .max_queue(4)
        .max_wait(ms(500))
        .observer(move |event: &Event<'_>| {
            if let Event::Rejected { reason, .. } = event {
                seen.lock().unwrap().push(*reason);
            }
        })
        .build_with_handle()
        .unwrap();
    let (probe, _gate) = http_probe();
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(Request::new(())));
    assert_pending!(running.poll());

    // A deadline 30 ms away ends the wait at 30 ms, not at max_wait.
    let mut queued = task::spawn(
        svc.ready()
            .await
            .unwrap()
            .call(request_with_deadline(ms(30))),
    );
    assert_pending!(queued.poll());
    tokio::time::advance(ms(29)).await;
    assert_pending!(queued.poll());
    tokio::time::advance(ms(1)).await;
    assert!(weir_error(&assert_ready!(queued.poll()).unwrap_err()).is_bulkhead_full());

    // An expired deadline is refused at once, without joining the queue.
    let expired = request_with_deadline(ms(0));
    let err = svc.ready().await.unwrap().call(expired).await.unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());
    assert_eq!(
        *reasons.lock().unwrap(),
        [RejectReason::Deadline, RejectReason::Deadline]
    );
    assert_eq!(handle.stats(), stats(1, 0, 2, 1));
}

#[tokio::test(start_paused = true)]
async fn http_mode_holds_the_permit_until_the_body_ends() {
    let (layer, handle) = BulkheadLayer::http(1).build_with_handle().unwrap();
    let (probe, gate) = http_probe();
    gate.open_gate();
    let mut svc = layer.layer(probe);

    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(handle.stats().in_flight, 1, "the body holds the permit");
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());

    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "body");
    assert_eq!(
        handle.stats().in_flight,
        0,
        "released at the end of the body"
    );

    // Dropping an unread body releases too.
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(handle.stats().in_flight, 1);
    drop(response);
    assert_eq!(handle.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn release_at_head_frees_the_permit_with_the_response() {
    let (layer, handle) = BulkheadLayer::http(1)
        .release_at_head()
        .build_with_handle()
        .unwrap();
    let (probe, gate) = http_probe();
    gate.open_gate();
    let mut svc = layer.layer(probe);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(handle.stats().in_flight, 0, "released with the head");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "body");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_future_releases_its_permit_or_its_place() {
    let (layer, handle) = BulkheadLayer::queueing(1, 2, Duration::from_secs(1))
        .build_with_handle()
        .unwrap();
    let (probe, gate, order) = recording_probe();
    let mut svc = layer.layer(probe);

    let mut running = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(running.poll());
    let mut cancelled = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(cancelled.poll());
    let mut last = task::spawn(svc.ready().await.unwrap().call(3));
    assert_pending!(last.poll());
    assert_eq!(handle.stats(), stats(1, 2, 0, 1));

    drop(cancelled);
    assert_eq!(handle.stats(), stats(1, 1, 0, 1));
    drop(running);
    assert_eq!(gate.cancelled(), 1);
    assert!(last.is_woken());
    gate.open_gate();
    assert_eq!(assert_ready!(last.poll()).unwrap(), 3);
    assert_eq!(
        *order.lock().unwrap(),
        [1, 3],
        "the cancelled request never ran"
    );
    assert_eq!(handle.stats(), stats(0, 0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_passes_through_and_releases() {
    let (layer, handle) = BulkheadLayer::builder()
        .max_concurrent(1)
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|_: u8| async {
        Err::<u8, _>(std::io::Error::other("boom"))
    }));
    let err = svc.oneshot(0).await.unwrap_err();
    assert!(err.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(handle.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_in_poll_ready_in_order() {
    let (layer, handle) = BulkheadLayer::builder()
        .max_concurrent(1)
        .backpressure()
        .build_with_handle()
        .unwrap();
    let (probe, gate, order) = recording_probe();
    let svc = layer.layer(probe);
    let (mut a, mut b, mut c) = (svc.clone(), svc.clone(), svc);

    assert!(poll_ready_now(&mut a).is_ready());
    let mut first = task::spawn(a.call(1));
    assert_pending!(first.poll());

    let mut b_ready = task::spawn(async move {
        b.ready().await.unwrap();
        b
    });
    assert_pending!(b_ready.poll());
    let mut c_ready = task::spawn(async move {
        c.ready().await.unwrap();
        c
    });
    assert_pending!(c_ready.poll());
    assert_eq!(handle.stats(), stats(1, 2, 0, 1));

    gate.open_gate();
    assert_eq!(assert_ready!(first.poll()).unwrap(), 1);
    assert!(b_ready.is_woken());
    assert!(!c_ready.is_woken());
    let mut b = assert_ready!(b_ready.poll());
    assert_pending!(c_ready.poll());
    assert_eq!(b.call(2).await.unwrap(), 2);
    let mut c = assert_ready!(c_ready.poll());
    assert_eq!(c.call(3).await.unwrap(), 3);
    assert_eq!(*order.lock().unwrap(), [1, 2, 3]);
    assert_eq!(handle.stats(), stats(0, 0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_readied_backpressure_service_dropped_unused_releases_its_permit() {
    let (layer, handle) = BulkheadLayer::builder()
        .max_concurrent(1)
        .backpressure()
        .build_with_handle()
        .unwrap();
    let (probe, _gate, _) = recording_probe();
    let mut svc = layer.layer(probe);
    assert!(poll_ready_now(&mut svc).is_ready());
    assert_eq!(handle.stats().in_flight, 1);
    drop(svc);
    assert_eq!(handle.stats().in_flight, 0);
}
