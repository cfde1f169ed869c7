//! The tower contract, checked with weir-test probes.

use std::convert::Infallible;

use http::{Request, Response};
use tokio_test::{assert_pending, task};
use tower::{Layer, Service, ServiceExt};
use weir_bulkhead::{Bulkhead, BulkheadLayer, ResponseFuture};
use weir_core::protocol::{Http, Plain};
use weir_test::{
    Probe, StrictService, assert_clone, assert_send, assert_send_sync, assert_send_sync_static,
    poll_ready_now,
};

type Strict = StrictService<fn(u32) -> Result<u32, Infallible>>;

#[test]
fn services_layers_and_futures_are_send_sync_clone() {
    assert_send_sync_static::<BulkheadLayer>();
    assert_send_sync_static::<BulkheadLayer<(), Http>>();
    assert_clone::<BulkheadLayer>();
    assert_send_sync::<Bulkhead<Strict>>();
    assert_clone::<Bulkhead<Strict>>();
    assert_send::<ResponseFuture<Strict, u32, (), Plain>>();
    type HttpStrict = StrictService<fn(Request<()>) -> Result<Response<String>, Infallible>>;
    assert_send_sync::<Bulkhead<HttpStrict, (), Http>>();
    assert_send::<ResponseFuture<HttpStrict, Request<()>, (), Http>>();
}

#[tokio::test]
async fn calls_only_a_readied_inner_even_after_queueing() {
    // StrictService panics on a call without a successful poll_ready.
    let layer = BulkheadLayer::queueing(1, 4, std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let mut svc = layer.layer(StrictService::new(|n: u32| Ok::<_, Infallible>(n)));
    let mut futures = Vec::new();
    for n in 0..5 {
        futures.push(task::spawn(svc.ready().await.unwrap().call(n)));
    }
    for (n, f) in futures.into_iter().enumerate() {
        assert_eq!(f.await.unwrap(), n as u32);
    }
}

#[tokio::test]
async fn clones_share_permits_not_readiness() {
    let (layer, handle) = BulkheadLayer::builder()
        .max_concurrent(1)
        .backpressure()
        .build_with_handle()
        .unwrap();
    let (probe, gate) = Probe::gated(|n: u32| Ok::<_, Infallible>(n));
    let mut a = layer.layer(probe.clone());
    let mut b = a.clone();
    // Two services from two `layer()` calls share the bulkhead too (axum calls it per route).
    let mut c = layer.layer(probe);

    assert!(poll_ready_now(&mut a).is_ready());
    assert_eq!(handle.stats().in_flight, 1);
    assert!(
        poll_ready_now(&mut b).is_pending(),
        "the clone was not readied"
    );
    assert!(
        poll_ready_now(&mut c).is_pending(),
        "one bulkhead per layer"
    );
    let mut fut = task::spawn(a.call(7));
    assert_pending!(fut.poll());
    gate.open_gate();
    assert_eq!(fut.await.unwrap(), 7);
    drop((b, c));
    assert_eq!(handle.stats().in_flight, 0);
    assert_eq!(handle.stats().queued, 0);
}

#[tokio::test]
#[should_panic(expected = "poll_ready must be called first")]
async fn backpressure_call_without_poll_ready_panics() {
    let layer = BulkheadLayer::builder().backpressure().build().unwrap();
    let mut svc = layer.layer(StrictService::new(|n: u32| Ok::<_, Infallible>(n)));
    drop(svc.call(1));
}

#[tokio::test]
async fn accessors_reach_the_inner_service() {
    let (probe, handle) = Probe::new(|n: u32| Ok::<_, Infallible>(n));
    let mut svc = BulkheadLayer::new(3).layer(probe);
    assert!(!svc.get_ref().is_ready(), "the layer never readied it");
    let _ = svc.get_mut();
    let inner = svc.into_inner();
    assert_eq!(handle.live(), 1);
    drop(inner);
    assert_eq!(handle.live(), 0);
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
    let svc = tower::Layer::layer(&weir_bulkhead::BulkheadLayer::new(8), inner);
    let size = future_size(&svc);
    eprintln!("weir-bulkhead ResponseFuture for u64 over Ready: {size} bytes");
    assert!(size <= 40, "{size} bytes");
}
