//! The load-level switch with the load shedder's own `LoadLevelLayer` in front.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tower::{ServiceBuilder, ServiceExt, service_fn};
use weir_core::{Outcome, classify::HttpStatus, degrade::Degraded, degrade::LoadLevel};
use weir_fallback::{Cause, FALLBACK_HEADER, FallbackLayer};
use weir_load_shed::{LoadLevelLayer, LoadShedLayer};

/// #20.2: with a load shedder's `LoadLevelLayer` outside, a request that arrives while the
/// service is critically loaded gets the cheap answer without reaching the handler, marked as
/// degraded with no failure recorded (no call was made); once the load is gone it reaches the
/// handler again.
#[tokio::test(start_paused = true)]
async fn under_critical_load_the_handler_is_not_called() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls_in = Arc::clone(&calls);
    let handler = service_fn(move |_req: http::Request<()>| {
        calls_in.fetch_add(1, SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(http::Response::new("personalised".to_owned()))
        }
    });
    let (shed, shed_handle) = LoadShedLayer::builder()
        .max_in_flight(2)
        .build_with_handle()
        .unwrap();
    let (fallback, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .value(|_: Cause<'_, http::Response<String>, Infallible>| {
            Some(http::Response::new("bestsellers".to_owned()))
        })
        .at_load(LoadLevel::Critical)
        .http()
        .build_with_handle()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(shed)
        .layer(LoadLevelLayer::new(shed_handle))
        .layer(fallback)
        .service(handler);
    let get = || http::Request::get("/api/recommendations").body(()).unwrap();

    // One request in flight: 1 of 2 is below the critical level, the handler runs.
    let first = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    assert_eq!(calls.load(SeqCst), 1);
    // A second while the first runs: 2 of 2 in flight, critical: the fallback answers at once.
    let second = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(second.body(), "bestsellers");
    assert_eq!(second.headers()[FALLBACK_HEADER], "value");
    assert_eq!(Degraded::of(&second), Some(Outcome::Ignored));
    assert_eq!(calls.load(SeqCst), 1, "the handler was not called");

    assert_eq!(first.await.unwrap().unwrap().body(), "personalised");
    let third = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(third.body(), "personalised");
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!((handle.stats().switched, handle.stats().value), (1, 1));
}
