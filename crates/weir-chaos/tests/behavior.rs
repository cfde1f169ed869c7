//! Behaviour in plain mode, in paused time: each fault, the switch, the seed, the handle, the
//! window, the client keys and the configuration rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_chaos::{ChaosLayer, ChaosSettings, Event, Fault, Latency};
use weir_core::BoxError;

/// A service that counts its calls and echoes its request.
fn counting() -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |n: u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, BoxError>(n) }
    });
    (svc, calls)
}

#[tokio::test(start_paused = true)]
async fn an_error_fault_answers_a_weir_error_without_calling_the_inner_service() {
    let (inner, calls) = counting();
    let (layer, handle) = ChaosLayer::builder()
        .error(1.0, weir_core::Error::overloaded)
        .name("chaos")
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(weir_core::Error::find(&*err).unwrap().is_overloaded());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(handle.injected(Fault::Error), 1);
}

#[derive(Debug, PartialEq)]
enum MyError {
    Reset,
}

#[tokio::test(start_paused = true)]
async fn an_error_fault_speaks_the_inner_services_own_error_type() {
    let inner = service_fn(|n: u32| async move { Ok::<u32, MyError>(n) });
    let layer = ChaosLayer::builder()
        .error(1.0, || MyError::Reset)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    assert_eq!(
        svc.ready().await.unwrap().call(1).await,
        Err(MyError::Reset)
    );
}

#[tokio::test(start_paused = true)]
async fn disabled_passes_everything_through_and_the_handle_switches_it() {
    let (inner, calls) = counting();
    let (layer, handle) = ChaosLayer::builder()
        .error(1.0, weir_core::Error::overloaded)
        .disabled()
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(inner);
    for n in 0..10 {
        assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n);
    }
    assert_eq!(
        (calls.load(Ordering::SeqCst), handle.injected_total()),
        (10, 0)
    );
    handle.enable();
    assert!(svc.ready().await.unwrap().call(1).await.is_err());
    handle.set_probability(Fault::Error, 0.0);
    assert_eq!(handle.probability(Fault::Error), 0.0);
    assert!(svc.ready().await.unwrap().call(1).await.is_ok());
    handle.set_probability(Fault::Error, 1.0);
    handle.disable();
    assert!(svc.ready().await.unwrap().call(1).await.is_ok());
    assert!(!handle.is_enabled());
}

#[tokio::test(start_paused = true)]
async fn added_latency_holds_the_answer_for_exactly_its_time() {
    let (inner, _) = counting();
    let mut svc = ChaosLayer::new(Duration::from_millis(100)).layer(inner);
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(7));
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(assert_ready!(call.poll()).unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_plain_stall_never_answers_and_never_calls_the_inner_service() {
    let (inner, calls) = counting();
    let layer = ChaosLayer::builder().stall(1.0).build().unwrap();
    let mut svc = layer.layer(inner);
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(7));
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_pending!(call.poll());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    drop(call);
    // The layer outside gives up; here a weir timeout.
    let mut svc = weir_timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(
        ChaosLayer::builder()
            .stall(1.0)
            .build()
            .unwrap()
            .layer(counting().0),
    );
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(weir_core::Error::find(&*err).unwrap().is_timeout());
}

/// The outcome of each of `n` requests through a seeded layer: `None` for an error, else the
/// added latency.
async fn outcomes(seed: u64, n: u32) -> Vec<Option<Duration>> {
    let inner = service_fn(|_: u32| async move { Ok::<_, BoxError>(tokio::time::Instant::now()) });
    let layer = ChaosLayer::builder()
        .seed(seed)
        .error(0.3, weir_core::Error::overloaded)
        .latency(0.5, Latency::exponential(Duration::from_millis(20)))
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    let mut out = Vec::new();
    for n in 0..n {
        let start = tokio::time::Instant::now();
        let result = svc.ready().await.unwrap().call(n).await;
        out.push(result.ok().map(|_| start.elapsed()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_seed_gives_the_same_faults_every_run_at_the_configured_rates() {
    let a = outcomes(42, 2000).await;
    assert_eq!(a, outcomes(42, 2000).await, "same seed, same faults");
    assert_ne!(a, outcomes(43, 2000).await, "another seed, other faults");
    let errors = a.iter().filter(|o| o.is_none()).count();
    assert!(
        (500..700).contains(&errors),
        "{errors} errors of 2000 at 0.3"
    );
    let delayed = a.iter().flatten().filter(|d| !d.is_zero()).count();
    let ok = a.iter().flatten().count();
    assert!(
        (ok * 4 / 10..ok * 6 / 10).contains(&delayed),
        "{delayed} of {ok} delayed at 0.5"
    );
}

#[tokio::test(start_paused = true)]
async fn the_window_bounds_faults_in_time() {
    let (inner, _) = counting();
    let layer = ChaosLayer::builder()
        .error(1.0, weir_core::Error::overloaded)
        .window(Duration::from_secs(60), Duration::from_secs(120))
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    assert!(svc.ready().await.unwrap().call(1).await.is_ok(), "before");
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(svc.ready().await.unwrap().call(1).await.is_err(), "within");
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(svc.ready().await.unwrap().call(1).await.is_ok(), "after");
}

#[tokio::test(start_paused = true)]
async fn only_the_chosen_client_keys_get_faults() {
    let (inner, _) = counting();
    let even = |n: &u32| Some(n.is_multiple_of(2));
    let layer = ChaosLayer::builder()
        .error(1.0, weir_core::Error::overloaded)
        .only_keys(even, [true])
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    assert!(svc.ready().await.unwrap().call(2).await.is_err());
    assert!(svc.ready().await.unwrap().call(3).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_behaviour_runs_on_the_request_before_the_inner_service() {
    let (inner, calls) = counting();
    let layer = ChaosLayer::builder()
        .behaviour(1.0, |n: &mut u32| *n += 100)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 101);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_observer_hears_each_fault_injected() {
    let heard = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&heard);
    let layer = ChaosLayer::builder()
        .latency(1.0, Latency::fixed(Duration::from_millis(1)))
        .error(1.0, weir_core::Error::overloaded)
        .observer(move |event: &Event<'_>| {
            assert!(matches!(event.fault(), Fault::Latency | Fault::Error));
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut svc = layer.layer(counting().0);
    let _ = svc.ready().await.unwrap().call(1).await;
    assert_eq!(heard.load(Ordering::SeqCst), 2, "latency and error");
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_one_switch() {
    let (layer, handle) = ChaosLayer::builder()
        .error(1.0, weir_core::Error::overloaded)
        .build_with_handle()
        .unwrap();
    let mut a = layer.layer(counting().0);
    let mut b = layer.clone().layer(counting().0).clone();
    handle.disable();
    assert!(a.ready().await.unwrap().call(1).await.is_ok());
    assert!(b.ready().await.unwrap().call(1).await.is_ok());
}

#[test]
fn configuration_errors_name_the_field() {
    let mut settings = ChaosSettings::default();
    settings.error = 0.5;
    let err = ChaosLayer::builder()
        .settings(settings)
        .build()
        .unwrap_err();
    assert!(err.is_missing() && err.field() == "error", "{err}");

    let mut settings = ChaosSettings::default();
    settings.status = 0.5;
    let err = ChaosLayer::builder()
        .settings(settings)
        .build()
        .unwrap_err();
    assert!(err.is_conflict() && err.field() == "status", "{err}");

    let err = ChaosLayer::builder()
        .error(0.7, weir_core::Error::overloaded)
        .stall(0.7)
        .build()
        .unwrap_err();
    assert!(err.is_out_of_range(), "{err}");
}

/// #24: the handle takes new settings (a configuration reload): the switch and the
/// probabilities at once, by the builder's rules, and refuses what a running layer cannot
/// change, changing nothing then.
#[tokio::test(start_paused = true)]
async fn the_handle_applies_new_settings_by_the_builders_rules() {
    use weir_core::reconfigure::Reconfigure;

    let (layer, handle) = ChaosLayer::builder()
        .error(0.0, weir_core::Error::overloaded)
        .seed(3)
        .disabled()
        .build_with_handle()
        .unwrap();
    let (inner, calls) = counting();
    let mut svc = layer.layer(inner);
    assert!(svc.ready().await.unwrap().call(1).await.is_ok());

    let mut on = handle.settings();
    assert!(!on.enabled);
    on.enabled = true;
    on.error = 1.0;
    handle.apply(on.clone()).unwrap();
    assert!(handle.is_enabled());
    assert_eq!(handle.settings(), on);
    assert!(svc.ready().await.unwrap().call(2).await.is_err());
    assert_eq!(
        (calls.load(Ordering::SeqCst), handle.injected(Fault::Error)),
        (1, 1)
    );

    // A broken rule, a part the layer was not built with, a fixed field: refused, nothing
    // changed.
    let refused = |f: fn(&mut ChaosSettings)| {
        let mut new = handle.settings();
        new.enabled = false;
        new.error = 0.0;
        f(&mut new);
        let err = handle.apply(new).unwrap_err();
        assert_eq!(handle.settings(), on, "{err}");
        err
    };
    assert!(refused(|s| s.latency = 2.0).is_out_of_range());
    let err = refused(|s| s.behaviour = 0.5);
    assert!(err.is_missing() && err.field() == "behaviour", "{err}");
    let err = refused(|s| s.status = 0.5);
    assert!(err.is_conflict() && err.field() == "status", "{err}");
    let err = refused(|s| s.seed = Some(4));
    assert!(err.is_conflict() && err.field() == "seed", "{err}");
    assert!(err.to_string().contains("restart"), "{err}");

    on.enabled = false;
    handle.apply(on).unwrap();
    assert!(svc.ready().await.unwrap().call(3).await.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
