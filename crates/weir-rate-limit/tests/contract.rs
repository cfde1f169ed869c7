//! The Tower contract, checked with weir-test probes.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};
use weir_core::{BoxError, key::PeerIp};
use weir_rate_limit::{Quota, RateLimit, RateLimitLayer, ResponseFuture};
use weir_test::{Probe, assert_clone, assert_send, assert_send_sync_static, poll_ready_now};

fn probe() -> (
    Probe<impl Fn(u32) -> Result<u32, Infallible> + Send + Sync + 'static>,
    weir_test::ProbeHandle,
) {
    Probe::new(|n: u32| Ok::<_, Infallible>(n))
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let (probe, handle) = probe();
    let mut svc = RateLimitLayer::per_second(1)
        .build()
        .expect("valid")
        .layer(probe);
    handle.set_ready(false);
    assert!(poll_ready_now(&mut svc).is_pending());
    handle.set_ready(true);
    assert!(poll_ready_now(&mut svc).is_ready());
    assert_eq!(svc.call(1).await.expect("admitted"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_never_reaches_the_inner_service() {
    let (probe, handle) = probe();
    let mut svc = RateLimitLayer::per_second(1)
        .build()
        .expect("valid")
        .layer(probe);
    assert!(svc.ready().await.expect("ready").call(1).await.is_ok());
    assert!(svc.ready().await.expect("ready").call(2).await.is_err());
    assert_eq!(handle.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_share_state_not_readiness() {
    let (probe, handle) = probe();
    let mut a = RateLimitLayer::per_second(2)
        .build()
        .expect("valid")
        .layer(probe);
    assert!(poll_ready_now(&mut a).is_ready());
    // The clone's probe starts not ready: calling it without `poll_ready` would panic.
    let mut b = a.clone();
    assert!(!b.get_ref().is_ready());
    assert!(b.ready().await.expect("ready").call(1).await.is_ok());
    assert!(a.call(2).await.is_ok());
    assert!(
        b.ready().await.expect("ready").call(3).await.is_err(),
        "shared quota"
    );
    assert_eq!(handle.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn waiting_moves_the_readied_instance_and_dropping_releases_the_turn() {
    let (probe, handle) = probe();
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(1))
        .wait(Duration::from_secs(5))
        .build()
        .expect("valid");
    let mut svc = layer.layer(probe);
    assert!(svc.ready().await.expect("ready").call(1).await.is_ok());
    let mut waiting = task::spawn(svc.ready().await.expect("ready").call(2));
    assert_pending!(waiting.poll());
    // The instance left behind is a fresh clone that must be readied again.
    assert!(!svc.get_ref().is_ready());
    drop(waiting);
    assert_eq!(handle.calls(), 1);
    // The dropped waiter's turn is free: the next request waits one interval, not two.
    let mut next = task::spawn(svc.ready().await.expect("ready").call(3));
    assert_pending!(next.poll());
    advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(next.poll()).expect("admitted"), 3);
    assert_eq!(handle.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_in_flight_cancels_the_inner_future() {
    let (probe, handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = RateLimitLayer::per_second(5)
        .build()
        .expect("valid")
        .layer(probe);
    let mut fut = task::spawn(svc.ready().await.expect("ready").call(1));
    assert_pending!(fut.poll());
    assert_eq!(handle.in_flight(), 1);
    drop(fut);
    assert_eq!((handle.in_flight(), handle.cancelled()), (0, 1));
    drop(svc);
    assert_eq!(handle.live(), 0, "no instance kept alive");
}

#[test]
fn services_and_futures_have_the_auto_traits() {
    type Svc = RateLimit<tower::util::BoxCloneSyncService<u32, u32, Infallible>>;
    assert_send_sync_static::<Svc>();
    assert_clone::<Svc>();
    assert_send_sync_static::<RateLimitLayer>();
    type Fut = ResponseFuture<
        std::future::Ready<Result<u32, BoxError>>,
        tower::util::BoxCloneSyncService<u32, u32, BoxError>,
        u32,
        std::future::Ready<Result<weir_rate_limit::Decision, BoxError>>,
        weir_rate_limit::AnyProtocol,
        (),
    >;
    assert_send::<Fut>();
    // A keyed HTTP layer is `Send + Sync` too (axum needs it).
    let layer = RateLimitLayer::per_second(1)
        .key(PeerIp::new())
        .http()
        .build()
        .expect("valid");
    fn check<T: Send + Sync + 'static + Clone>(_: &T) {}
    check(&layer);
}

#[test]
fn the_response_future_stays_small() {
    type Fut = ResponseFuture<
        std::future::Ready<Result<u64, Infallible>>,
        tower::util::ServiceFn<fn(u64) -> std::future::Ready<Result<u64, Infallible>>>,
        u64,
        std::future::Ready<Result<weir_rate_limit::Decision, BoxError>>,
        weir_rate_limit::AnyProtocol,
        (),
    >;
    let size = size_of::<Fut>();
    eprintln!("ResponseFuture: {size} bytes");
    assert!(size <= 160, "{size} bytes");
    // An HTTP limiter writing `RateLimit` fields keeps their state inline (#15: no allocation
    // per admitted request): its future is the inner future, the state and a few words.
    type HttpFut = ResponseFuture<
        std::future::Ready<Result<http::Response<String>, Infallible>>,
        tower::util::BoxCloneSyncService<http::Request<String>, http::Response<String>, BoxError>,
        http::Request<String>,
        std::future::Ready<Result<weir_rate_limit::Decision, BoxError>>,
        weir_rate_limit::Http,
        weir_core::wire::RateLimitInfo,
    >;
    let inner = size_of::<std::future::Ready<Result<http::Response<String>, Infallible>>>();
    let state = size_of::<weir_core::wire::RateLimitInfo>();
    let size = size_of::<HttpFut>();
    eprintln!("ResponseFuture with Http: {size} bytes (inner {inner}, the fields' state {state})");
    assert!(size <= inner + state + 32, "{size} bytes");
}
