//! #20.5: weir's own rejections fall back, raised by the real layers (not a fake error): a rate
//! limit, a timeout, a load shedder and a full bulkhead inside the fallback. The observer gets
//! the original error and can tell which it was.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use weir_bulkhead::BulkheadLayer;
use weir_core::{BoxError, Error};
use weir_fallback::{Cause, Event, FallbackHandle, FallbackLayer, Reason, Source};
use weir_load_shed::LoadShedLayer;
use weir_rate_limit::RateLimitLayer;
use weir_timeout::TimeoutLayer;

type Seen = Arc<Mutex<Vec<&'static str>>>;

/// What kind of weir rejection an error is.
fn kind(err: &Error) -> &'static str {
    if err.is_rate_limited() {
        "rate limited"
    } else if err.is_timeout() {
        "timeout"
    } else if err.is_overloaded() {
        "overloaded"
    } else if err.is_bulkhead_full() {
        "bulkhead full"
    } else {
        "other"
    }
}

/// `inner` behind a fallback answering `0`, whose value closure and observer both record the
/// kind of weir error they were given.
fn with_fallback<S>(
    inner: S,
    seen: &Seen,
) -> (
    impl Service<u32, Response = u32, Error = BoxError>,
    FallbackHandle,
)
where
    S: Service<u32, Response = u32, Error = BoxError> + Clone,
{
    let in_value = Arc::clone(seen);
    let in_observer = Arc::clone(seen);
    let (layer, handle) = FallbackLayer::builder()
        .value(move |cause: Cause<'_, u32, BoxError>| {
            let err = cause.error().and_then(|e| Error::find(&**e))?;
            in_value.lock().unwrap().push(kind(err));
            Some(0)
        })
        .observer(move |event: &Event<'_>| {
            if let Event::Answered { source, reason, .. } = event {
                assert_eq!((*source, *reason), (Source::Value, Reason::Error));
                in_observer
                    .lock()
                    .unwrap()
                    .push(event.weir_error().map_or("none", kind));
            }
        })
        .build_with_handle()
        .unwrap();
    (layer.layer(inner), handle)
}

/// An upstream that answers `n * 2` at once.
fn upstream() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|n: u32| async move { Ok::<_, BoxError>(n * 2) })
}

/// An upstream whose call `0` never answers (it holds what it was admitted with) and every
/// other answers `n * 2`.
fn holding() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|n: u32| async move {
        if n == 0 {
            pending::<()>().await;
        }
        Ok::<_, BoxError>(n * 2)
    })
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_inside_falls_back() {
    let seen = Seen::default();
    let limit = RateLimitLayer::per_second(1).build().unwrap();
    let (mut svc, handle) = with_fallback(limit.layer(upstream()), &seen);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 0);
    assert_eq!(*seen.lock().unwrap(), ["rate limited", "rate limited"]);
    assert_eq!(handle.stats().value, 1);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_falls_back() {
    let seen = Seen::default();
    let timeout = TimeoutLayer::new(Duration::from_millis(100));
    let (mut svc, handle) = with_fallback(timeout.layer(holding()), &seen);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
    // Call 0 never answers: the timeout fires after 100 ms of paused time.
    assert_eq!(svc.ready().await.unwrap().call(0).await.unwrap(), 0);
    assert_eq!(*seen.lock().unwrap(), ["timeout", "timeout"]);
    assert_eq!(handle.stats().value, 1);
}

#[tokio::test(start_paused = true)]
async fn a_load_shedder_inside_falls_back() {
    let seen = Seen::default();
    let (mut svc, handle) = with_fallback(LoadShedLayer::new(1).layer(holding()), &seen);
    // One call in flight, never answering: the next is shed.
    let held = svc.ready().await.unwrap().call(0);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 0);
    assert_eq!(*seen.lock().unwrap(), ["overloaded", "overloaded"]);
    assert_eq!(handle.stats().value, 1);
    // Once it goes, the upstream answers again.
    drop(held);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_inside_falls_back() {
    let seen = Seen::default();
    let (mut svc, handle) = with_fallback(BulkheadLayer::new(1).layer(holding()), &seen);
    let held = svc.ready().await.unwrap().call(0);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 0);
    assert_eq!(*seen.lock().unwrap(), ["bulkhead full", "bulkhead full"]);
    assert_eq!(handle.stats().value, 1);
    drop(held);
    assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
}
