//! The load shedder's behaviour: refusal at the limit, priorities, outcomes, the load level.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::time::Sleep;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::{BoxError, Error};
use weir_load_shed::{
    Aimd, Event, Limit, LoadLevel, LoadLevelLayer, LoadShedLayer, LoadShedStats, Priority, Sample,
};
use weir_test::{Probe, poll_ready_now};

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

fn stats(limit: usize, in_flight: usize, shed: u64) -> LoadShedStats {
    let mut s = LoadShedLayer::new(1).handle().stats();
    s.limit = limit;
    s.in_flight = in_flight;
    s.shed = shed;
    s
}

#[tokio::test(start_paused = true)]
async fn sheds_at_once_at_the_limit_with_retry_after() {
    let (layer, handle) = LoadShedLayer::builder()
        .name("edge")
        .max_in_flight(2)
        .share(Priority::Normal, 1.0)
        .retry_after(Duration::from_secs(2))
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = layer.layer(probe);

    let mut a = task::spawn(svc.ready().await.unwrap().call(1));
    let mut b = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    let weir = weir_error(&err);
    assert!(weir.is_overloaded());
    assert_eq!(weir.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(weir.layer(), Some("edge"));
    assert_eq!(gate.calls(), 2);
    assert_eq!(handle.stats().shed, 1);
    assert_eq!(handle.stats().in_flight, 2);

    gate.release(1);
    assert_eq!(assert_ready!(a.poll()).unwrap(), 1);
    let mut c = task::spawn(svc.ready().await.unwrap().call(4));
    assert_pending!(c.poll());
    gate.open_gate();
    assert_eq!(assert_ready!(b.poll()).unwrap(), 2);
    assert_eq!(assert_ready!(c.poll()).unwrap(), 4);
    let s = handle.stats();
    assert_eq!((s.in_flight, s.succeeded, s.shed), (0, 3, 1));
}

#[tokio::test(start_paused = true)]
async fn critical_requests_are_shed_last() {
    let shed = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&shed);
    // Requests are (priority, id); limit 10: sheddable gets 5, normal 8 (room kept for
    // critical requests), critical 10.
    let (layer, handle) = LoadShedLayer::builder()
        .max_in_flight(10)
        .share(Priority::Normal, 0.8)
        .priority(|req: &(Priority, u32)| req.0)
        .observer(move |event: &Event<'_>| {
            if let Event::Shed { priority, .. } = event {
                seen.lock().unwrap().push(*priority);
            }
        })
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(|req: (Priority, u32)| Ok::<_, Infallible>(req.1));
    let mut svc = layer.layer(probe);
    let mut running = Vec::new();
    let mut admitted = |priority: Priority, n: usize| {
        let mut count = 0;
        for i in 0..n {
            assert!(poll_ready_now(&mut svc).is_ready());
            let mut f = task::spawn(svc.call((priority, u32::try_from(i).unwrap())));
            if f.poll().is_pending() {
                count += 1;
                running.push(f);
            }
        }
        count
    };
    assert_eq!(admitted(Priority::Sheddable, 7), 5);
    assert_eq!(admitted(Priority::Normal, 7), 3, "normal fills up to 8");
    assert_eq!(
        admitted(Priority::Critical, 7),
        2,
        "critical fills up to 10"
    );
    assert_eq!(handle.stats(), {
        let mut s = stats(10, 10, 11);
        s.succeeded = 0;
        s
    });
    assert_eq!(
        *shed.lock().unwrap(),
        [
            [Priority::Sheddable; 2].as_slice(),
            [Priority::Normal; 4].as_slice(),
            [Priority::Critical; 5].as_slice()
        ]
        .concat()
    );
    gate.open_gate();
    drop(running);
    assert_eq!(handle.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn every_call_ends_in_exactly_one_outcome() {
    let (layer, handle) = LoadShedLayer::builder()
        .max_in_flight(10)
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(service_fn(|n: u32| async move {
        match n {
            0 => Ok(0),
            1 => Err(BoxError::from(Error::timeout())),
            2 => Err(BoxError::from(std::io::Error::other("bug"))),
            _ => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(n)
            }
        }
    }));
    assert!(svc.clone().oneshot(0).await.is_ok());
    assert!(svc.clone().oneshot(1).await.is_err());
    assert!(svc.clone().oneshot(2).await.is_err());
    let mut cancelled = task::spawn(svc.clone().oneshot(3));
    assert_pending!(cancelled.poll());
    assert_eq!(handle.stats().in_flight, 1);
    drop(cancelled);
    let s = handle.stats();
    assert_eq!(
        (s.succeeded, s.dropped, s.ignored, s.in_flight),
        (1, 1, 2, 0),
        "success, drop (timeout), ignored (other error, cancellation)"
    );
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_limit_shrinks_on_drops_and_reports_it() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&changes);
    let (layer, handle) = LoadShedLayer::adaptive(Aimd::new().bounds(2, 50).initial(10))
        .observer(move |event: &Event<'_>| {
            if let Event::LimitChanged { from, to, .. } = event {
                seen.lock().unwrap().push((*from, *to));
            }
        })
        .build_with_handle()
        .unwrap();
    assert_eq!(handle.limit(), 10);
    let svc = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>(Error::timeout().into())
    }));
    for _ in 0..3 {
        assert!(svc.clone().oneshot(()).await.is_err());
    }
    // 10 * 0.9 = 9, 9 * 0.9 = 8.1, 8.1 * 0.9 = 7.29
    assert_eq!(handle.limit(), 7);
    assert_eq!(*changes.lock().unwrap(), [(10, 9), (9, 8), (8, 7)]);
    assert_eq!(handle.stats().dropped, 3);
}

#[tokio::test(start_paused = true)]
async fn the_load_level_reaches_the_handler() {
    let (shed, handle) = LoadShedLayer::builder()
        .max_in_flight(10)
        .share(Priority::Normal, 1.0)
        .build_with_handle()
        .unwrap();
    let levels = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&levels);
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let svc = ServiceBuilder::new()
        .layer(shed)
        .layer(LoadLevelLayer::new(handle.clone()))
        .service(service_fn(move |req: Request<()>| {
            seen.lock()
                .unwrap()
                .push(*req.extensions().get::<LoadLevel>().unwrap());
            let mut gate = gate_rx.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok::<_, Infallible>(())
            }
        }));
    let mut running = Vec::new();
    for _ in 0..10 {
        let mut f = task::spawn(svc.clone().oneshot(Request::new(())));
        assert_pending!(f.poll());
        running.push(f);
    }
    // In flight counts the request itself: 1..=6 normal, 7..=8 elevated, 9..=10 critical.
    assert_eq!(
        *levels.lock().unwrap(),
        [
            [LoadLevel::Normal; 6].as_slice(),
            [LoadLevel::Elevated; 2].as_slice(),
            [LoadLevel::Critical; 2].as_slice()
        ]
        .concat()
    );
    assert_eq!(handle.load_level(), LoadLevel::Critical);
    gate_tx.send(true).unwrap();
    for f in running {
        f.await.unwrap();
    }
    assert_eq!(handle.load_level(), LoadLevel::Normal);
}

#[tokio::test(start_paused = true)]
async fn sheds_by_queue_time_when_the_inner_service_stays_unready() {
    let (layer, handle) = LoadShedLayer::builder()
        .max_ready_wait(Duration::from_millis(50))
        .build_with_handle()
        .unwrap();
    let (probe, control) = Probe::new(|n: u32| Ok::<_, Infallible>(n));
    control.set_ready(false);
    let mut svc = layer.layer(probe);

    let mut ready = task::spawn(async {
        svc.ready().await.unwrap();
    });
    assert_pending!(ready.poll());
    tokio::time::advance(Duration::from_millis(49)).await;
    assert_pending!(ready.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(ready.is_woken());
    assert_ready!(ready.poll());
    drop(ready);
    let err = svc.call(1).await.unwrap_err();
    assert!(weir_error(&err).is_overloaded());
    assert_eq!(control.calls(), 0, "the unready service was never called");
    assert_eq!(handle.stats().shed, 1);

    // Each wait is timed afresh; a service that becomes ready is called as usual.
    let mut ready = task::spawn(async {
        svc.ready().await.unwrap();
    });
    tokio::time::advance(Duration::from_millis(30)).await;
    assert_pending!(ready.poll());
    control.set_ready(true);
    assert!(ready.is_woken());
    assert_ready!(ready.poll());
    drop(ready);
    assert_eq!(svc.call(2).await.unwrap(), 2);
    assert_eq!(handle.stats().shed, 1);
}

/// A limit that keeps every sample it is fed, and never moves.
struct Recording(Arc<Mutex<Vec<Sample>>>);

impl Limit for Recording {
    fn limit(&self) -> usize {
        10
    }

    fn update(&mut self, sample: Sample) -> usize {
        self.0.lock().unwrap().push(sample);
        10
    }
}

/// A body that sends one chunk once its timer has run.
struct SlowBody {
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl SlowBody {
    fn after(delay: Duration) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(delay)),
            done: false,
        }
    }
}

impl http_body::Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.done = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from("report")))))
    }
}

/// The head after 10 ms, the body's end 40 ms later.
async fn slow_report(_req: Request<()>) -> Result<Response<SlowBody>, BoxError> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(Response::new(SlowBody::after(Duration::from_millis(40))))
}

#[tokio::test(start_paused = true)]
async fn in_http_mode_the_call_ends_and_is_measured_at_the_end_of_the_body() {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (layer, handle) = LoadShedLayer::http(10)
        .limit(Recording(Arc::clone(&samples)))
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(service_fn(slow_report));

    let response = svc.clone().oneshot(Request::new(())).await.unwrap();
    let s = handle.stats();
    assert_eq!(
        (s.in_flight, s.succeeded),
        (1, 0),
        "the body holds the slot"
    );
    assert!(samples.lock().unwrap().is_empty(), "no sample at the head");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "report");
    let s = handle.stats();
    assert_eq!((s.in_flight, s.succeeded), (0, 1));
    assert_eq!(
        *samples.lock().unwrap(),
        [Sample::success(Duration::from_millis(50), 1)],
        "round trip to the end of the body"
    );

    // A body dropped unread ends the call then, as the success its head was.
    let response = svc.clone().oneshot(Request::new(())).await.unwrap();
    tokio::time::advance(Duration::from_millis(5)).await;
    assert_eq!(handle.stats().in_flight, 1);
    drop(response);
    let s = handle.stats();
    assert_eq!((s.in_flight, s.succeeded, s.ignored), (0, 2, 0));
    assert_eq!(
        samples.lock().unwrap()[1],
        Sample::success(Duration::from_millis(15), 1)
    );

    // An error ends the call at once: nothing to hold.
    let failing = layer.layer(service_fn(|_req: Request<()>| async {
        Err::<Response<SlowBody>, BoxError>(Error::timeout().into())
    }));
    assert!(failing.oneshot(Request::new(())).await.is_err());
    let s = handle.stats();
    assert_eq!((s.in_flight, s.dropped), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn in_plain_mode_the_call_ends_at_the_response_head() {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (layer, handle) = LoadShedLayer::adaptive(Recording(Arc::clone(&samples)))
        .build_with_handle()
        .unwrap();
    let response = layer
        .layer(service_fn(slow_report))
        .oneshot(Request::new(()))
        .await
        .unwrap();
    let s = handle.stats();
    assert_eq!((s.in_flight, s.succeeded), (0, 1), "released with the head");
    assert_eq!(
        *samples.lock().unwrap(),
        [Sample::success(Duration::from_millis(10), 1)]
    );
    drop(response);
}
