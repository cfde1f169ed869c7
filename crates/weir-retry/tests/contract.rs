//! The `tower::Service` contract, checked with weir-test's probes: only readied instances are
//! called (retries included), clones share state but not readiness, dropping a future releases
//! the attempt in flight, and the types are `Send + Sync`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt};
use weir_core::{BoxError, backoff::Backoff, classify::GrpcStatus, classify::HttpStatus};
use weir_retry::{
    CloneRequest, HttpReplay, ReplayBody, ResponseFuture, Retry, RetryHandle, RetryLayer,
};
use weir_test::{
    Probe, StrictService, assert_clone, assert_send, assert_send_sync, poll_ready_now,
};

#[derive(Debug)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

impl std::error::Error for Boom {}

#[tokio::test(start_paused = true)]
async fn retries_call_only_readied_instances() {
    // StrictService panics if called without a successful poll_ready on that instance.
    let failures = Arc::new(AtomicU32::new(3));
    let strict = StrictService::new(move |n: u32| {
        if failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| f.checked_sub(1))
            .is_ok()
        {
            Err::<u32, BoxError>(Boom.into())
        } else {
            Ok(n)
        }
    });
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .build()
        .unwrap();
    let mut svc = layer.layer(strict);
    let out = svc.ready().await.unwrap().call(7).await.unwrap();
    assert_eq!(out, 7);
    // Four calls (the counters are shared by clones), each on an instance readied first, or
    // StrictService would have panicked.
    assert_eq!(svc.get_ref().calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_budget_not_readiness() {
    let (probe, handle) = Probe::new(|_: u32| Err::<u32, BoxError>(Boom.into()));
    let (layer, retry) = RetryLayer::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(Duration::ZERO))
        .build_with_handle()
        .unwrap();
    let mut a = layer.layer(probe);
    let mut b = a.clone();
    assert!(poll_ready_now(&mut a).is_ready());
    // b is a clone: not ready until polled itself.
    let mut b_ready = task::spawn(b.ready());
    assert_ready_ok!(b_ready.poll());
    drop(b_ready);
    let _ = a.call(1).await;
    let _ = b.ready().await.unwrap().call(2).await;
    // One retry each, counted in the one shared state.
    assert_eq!(retry.retries(), 2);
    assert_eq!(handle.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_releases_the_attempt() {
    let (probe, handle) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = RetryLayer::new(3).layer(probe);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    assert_eq!(handle.in_flight(), 1);
    drop(fut);
    assert_eq!((handle.in_flight(), handle.cancelled()), (0, 1));
    // The service itself holds nothing: the next call works.
    handle.open_gate();
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_during_the_backoff_cancels_the_retry() {
    let (probe, handle) = Probe::new(|_: u32| Err::<u32, BoxError>(Boom.into()));
    let layer = RetryLayer::builder()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll()); // failed once, now sleeping
    assert_eq!(handle.calls(), 1);
    drop(fut);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(handle.calls(), 1);
    assert_eq!(handle.in_flight(), 0);
}

/// A service that counts its clones (every clone shares the count).
#[derive(Debug)]
struct Clones {
    count: Arc<AtomicU32>,
    fail_first: Arc<AtomicU32>,
}

impl Clone for Clones {
    fn clone(&self) -> Self {
        self.count.fetch_add(1, Ordering::Relaxed);
        Self {
            count: Arc::clone(&self.count),
            fail_first: Arc::clone(&self.fail_first),
        }
    }
}

impl Service<u32> for Clones {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u32) -> Self::Future {
        let failing = self
            .fail_first
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| f.checked_sub(1))
            .is_ok();
        std::future::ready(if failing { Err(Boom.into()) } else { Ok(n) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_does_not_clone_the_inner_service_only_a_retry_does() {
    // #18: cloning the stack below on every call wrote a reference count per `Arc` in it, counts
    // every thread shares. The layer keeps one clone; a retry clones from it.
    let count = Arc::new(AtomicU32::new(0));
    let inner = Clones {
        count: Arc::clone(&count),
        fail_first: Arc::new(AtomicU32::new(0)),
    };
    let fail_first = Arc::clone(&inner.fail_first);
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::ZERO))
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    let made = count.load(Ordering::Relaxed);
    for n in 0..100 {
        assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n);
    }
    assert_eq!(count.load(Ordering::Relaxed), made, "no clone per call");
    // Two failures then a success: one clone for each retry.
    fail_first.store(2, Ordering::Relaxed);
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    assert_eq!(count.load(Ordering::Relaxed), made + 2);
}

#[test]
fn a_send_service_that_is_not_sync_keeps_the_future_send() {
    // The clone kept for retries is shared by the futures; a `BoxCloneService` (`Send`, not
    // `Sync`) must still give `Send` futures, as axum and tokio::spawn need.
    type Boxed = tower::util::BoxCloneService<u32, u32, BoxError>;
    assert_send::<ResponseFuture<Boxed, u32, CloneRequest, weir_core::classify::AnyError, ()>>();
    assert_send::<Retry<Boxed, CloneRequest>>();
}

type ProbeFn = fn(u32) -> Result<u32, Infallible>;
type HttpFn =
    fn(Request<ReplayBody<Full<Bytes>>>) -> Result<http::Response<Full<Bytes>>, Infallible>;

#[test]
fn types_are_send_sync_and_clone() {
    assert_send_sync::<RetryLayer>();
    assert_send_sync::<RetryLayer<HttpReplay, HttpStatus>>();
    assert_send_sync::<RetryLayer<HttpReplay, GrpcStatus>>();
    assert_send_sync::<RetryHandle>();
    assert_send_sync::<Retry<Probe<ProbeFn>>>();
    assert_clone::<Retry<Probe<ProbeFn>>>();
    assert_send_sync::<Retry<Probe<HttpFn>, HttpReplay, HttpStatus>>();
    assert_send::<
        ResponseFuture<Probe<ProbeFn>, u32, CloneRequest, weir_core::classify::AnyError, ()>,
    >();
    assert_send::<ResponseFuture<Probe<HttpFn>, Request<Full<Bytes>>, HttpReplay, HttpStatus, ()>>(
    );
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn weir_cores_tracing_observer_takes_retry_events() {
    let (probe, handle) = Probe::new(|_: u32| Err::<u32, BoxError>(Boom.into()));
    let (layer, retry) = RetryLayer::builder()
        .observer(weir_core::observer::Tracing)
        .backoff(Backoff::constant(Duration::ZERO))
        .build_with_handle()
        .unwrap();
    let _ = layer.layer(probe).oneshot(1).await;
    assert_eq!(
        (handle.calls(), retry.retries(), retry.gave_up()),
        (3, 2, 1)
    );
}

#[cfg(feature = "metrics")]
#[test]
fn weir_cores_metrics_observer_takes_retry_events() {
    // Compile-time checks: `Metrics` observes every retry event, and the layer stays Send + Sync.
    fn observes<O: for<'a> weir_core::Observer<weir_retry::Event<'a>>>(_: &O) {}
    observes(&weir_core::observer::Metrics::default());
    assert_send_sync::<
        RetryLayer<CloneRequest, weir_core::classify::AnyError, weir_core::observer::Metrics>,
    >();
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
    let svc = tower::Layer::layer(&weir_retry::RetryLayer::new(3), inner);
    let size = future_size(&svc);
    eprintln!("weir-retry ResponseFuture for u64 over Ready: {size} bytes");
    // 136 since #19: the attempt's send time (`Option<Instant>`, 16 bytes), set only when the
    // observer wants latencies, for `weir_attempt_duration_seconds`.
    assert!(size <= 136, "{size} bytes");
}
