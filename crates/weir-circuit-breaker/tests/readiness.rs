//! #16.8: `layer.handle()`, and a service readied while the circuit was closed (or half-open)
//! that is called after the circuit opened never reaches the upstream: `call` checks the circuit
//! again.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::Error;

fn counting(
    hits: &Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = Infallible> + Clone + use<> {
    let hits = Arc::clone(hits);
    service_fn(move |n: u32| {
        hits.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(n) }
    })
}

/// #16.8: a layer built without `build_with_handle` still gives a handle on its breaker.
#[tokio::test(start_paused = true)]
async fn a_layer_gives_a_handle_on_the_breaker_its_services_share() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .build()
        .expect("valid");
    let handle = layer.handle();
    let mut svc = layer.layer(counting(&hits));
    assert_eq!(
        svc.ready().await.expect("ready").call(1).await.ok(),
        Some(1)
    );
    assert_eq!(handle.snapshot().calls(), 1);
    layer.handle().force_open();
    assert_eq!(handle.state(), State::ForcedOpen);
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(2)
        .await
        .expect_err("open");
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// #16.8: readied while closed, called after the circuit opened: refused, the upstream is not
/// called.
#[tokio::test(start_paused = true)]
async fn readied_while_closed_called_after_it_opened_never_reaches_the_upstream() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let mut svc = layer.layer(counting(&hits));
    svc.ready().await.expect("ready while closed");
    // Another caller's failures (here, the operator) open the circuit in between.
    handle.open();
    let err = svc.call(7).await.expect_err("the circuit is open now");
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the upstream was not called"
    );

    // Closed again in between: the call goes through, and is counted.
    let mut svc = layer.layer(counting(&hits));
    handle.reset();
    svc.ready().await.expect("ready");
    handle.force_closed();
    assert_eq!(svc.call(8).await.ok(), Some(8));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// #16.8: a half-open probe slot taken in `poll_ready` is not used after the circuit re-opened:
/// the call is refused and the upstream is not called.
#[tokio::test(start_paused = true)]
async fn a_probe_readied_before_the_circuit_reopened_is_refused() {
    let hits = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(2)
        .build()
        .expect("valid");
    let handle = layer.handle();
    handle.open();
    tokio::time::advance(Duration::from_secs(2)).await;
    let mut svc = layer.layer(counting(&hits));
    svc.ready().await.expect("a probe slot");
    assert_eq!(handle.state(), State::HalfOpen);
    handle.open();
    let err = svc.call(1).await.expect_err("re-opened");
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
