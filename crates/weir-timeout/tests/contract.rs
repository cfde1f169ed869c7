//! The service contract, with weir-test probes: readiness, clones, drop, auto traits.

use std::convert::Infallible;
use std::time::Duration;

use http::Request;
use tokio_test::{assert_pending, task};
use tower::{Layer, Service, ServiceExt};
use weir_test::{
    Probe, StrictService, assert_clone, assert_send, assert_send_sync, assert_send_sync_static,
    poll_ready_now,
};
use weir_timeout::{ResponseFuture, RouteTimeouts, Timeout, TimeoutLayer};

type Strict = StrictService<fn(u32) -> Result<u32, Infallible>>;

fn double(n: u32) -> Result<u32, Infallible> {
    Ok(n * 2)
}

#[test]
fn services_layers_and_futures_are_send_sync_and_clone() {
    assert_send_sync_static::<Timeout<Strict>>();
    assert_send_sync::<Timeout<Strict, RouteTimeouts>>();
    assert_clone::<Timeout<Strict>>();
    assert_send_sync_static::<TimeoutLayer>();
    assert_send_sync_static::<TimeoutLayer<RouteTimeouts>>();
    assert_clone::<TimeoutLayer<RouteTimeouts>>();
    assert_send::<ResponseFuture<std::future::Ready<Result<u32, Infallible>>>>();
    assert_send_sync::<ResponseFuture<std::future::Ready<Result<u32, Infallible>>>>();
}

#[tokio::test(start_paused = true)]
async fn each_call_follows_its_own_poll_ready() {
    let strict: Strict = StrictService::new(double);
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(strict.clone());
    for n in 0..3 {
        let answer = svc.ready().await.expect("ready").call(n).await;
        assert_eq!(answer.expect("answered"), n * 2);
    }
    assert_eq!(strict.calls(), 3);
    assert_eq!(strict.poll_ready_calls(), 3);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "poll_ready")]
async fn a_clone_of_a_ready_service_is_not_ready() {
    let strict: Strict = StrictService::new(double);
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(strict);
    assert!(poll_ready_now(&mut svc).is_ready());
    let mut clone = svc.clone();
    // The clone was never readied: the strict inner service panics.
    let _fut = clone.call(1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_future_releases_the_inner_call() {
    let (probe, handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(probe);
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    assert_eq!(handle.in_flight(), 1);
    drop(fut);
    assert_eq!((handle.in_flight(), handle.cancelled()), (0, 1));

    // Dropping the service drops the inner one; a ready service dropped unused holds nothing.
    svc.ready().await.expect("ready");
    drop(svc);
    assert_eq!(handle.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_http_request_works_through_the_same_layer() {
    let (probe, handle) = Probe::new(|req: Request<u8>| Ok::<_, Infallible>(*req.body()));
    let mut svc = TimeoutLayer::new(Duration::from_secs(1)).layer(probe);
    svc.ready()
        .await
        .expect("ready")
        .call(Request::new(1))
        .await
        .expect("answered");
    assert_eq!(handle.completed(), 1);
}

/// The size of the response future for a `u64` request over a `Ready` inner future (16 bytes),
/// pinned so that growth is noticed (#18): a layer's future is moved and nested in every stack,
/// and its size is copied with it. Raise the bound only on purpose, with the reason.
#[test]
fn the_response_future_stays_small() {
    fn future_size<S: tower::Service<u64>>(_: &S) -> usize {
        size_of::<S::Future>()
    }
    let inner =
        tower::service_fn(|n: u64| std::future::ready(Ok::<u64, std::convert::Infallible>(n)));
    let svc = tower::Layer::layer(
        &weir_timeout::TimeoutLayer::new(std::time::Duration::from_secs(1)),
        inner,
    );
    let size = future_size(&svc);
    eprintln!("weir-timeout ResponseFuture for u64 over Ready: {size} bytes");
    assert!(size <= 160, "{size} bytes");
}
