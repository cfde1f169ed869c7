//! #20.4: a fallback answer is never mistaken for a success by the layers outside it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::{Error, backoff::Backoff, classify::HttpStatus};
use weir_fallback::{Cause, FALLBACK_HEADER, FallbackLayer};
use weir_retry::{RetryBudget, RetryLayer, SharedBudget};

/// #20.4: a circuit breaker outside the fallback counts the upstream's 503s as failures and
/// opens, although every one of them reached the caller as the fallback's `200`.
#[tokio::test(start_paused = true)]
async fn a_breaker_outside_sees_the_original_failures() {
    let (breaker, breaker_handle) = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .classifier(HttpStatus::new())
        .build_with_handle()
        .unwrap();
    let (fallback, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .value(|_: Cause<'_, http::Response<String>, Infallible>| {
            Some(http::Response::new("cached".to_owned()))
        })
        .http()
        .build_with_handle()
        .unwrap();
    let upstream = service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(
            http::Response::builder()
                .status(503)
                .body("down".to_owned())
                .unwrap(),
        )
    });
    let mut svc = ServiceBuilder::new()
        .layer(breaker)
        .layer(fallback)
        .service(upstream);
    let get = || http::Request::get("/").body(()).unwrap();
    for _ in 0..2 {
        let response = svc.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(
            (response.status().as_u16(), response.body().as_str()),
            (200, "cached")
        );
    }
    assert_eq!(breaker_handle.state(), State::Open);
    let err = svc.ready().await.unwrap().call(get()).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    assert_eq!(handle.stats().value, 2);
}

/// #20.5: a retry layer outside the fallback, with gRPC's throttling budget, sees the
/// upstream's 503 behind the fallback's `200`: the failures take the budget's tokens, and the
/// failure is retried as a failure (the answer the caller finally gets is the fallback's).
#[tokio::test(start_paused = true)]
async fn a_retry_budget_outside_sees_the_original_failure() {
    let budget = SharedBudget::new(RetryBudget::grpc_throttle(10, 0.1)).unwrap();
    assert_eq!(budget.available(), Some(5));
    let (retry, retries) = RetryLayer::builder()
        .classify(HttpStatus::new())
        .max_attempts(2)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .shared_budget(budget.clone())
        .build_with_handle()
        .unwrap();
    let fallback = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .value(|_: Cause<'_, http::Response<String>, Infallible>| {
            Some(http::Response::new("cached".to_owned()))
        })
        .http()
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let upstream = service_fn(move |_req: http::Request<()>| {
        counter.fetch_add(1, SeqCst);
        async {
            Ok::<_, Infallible>(
                http::Response::builder()
                    .status(503)
                    .body("down".to_owned())
                    .unwrap(),
            )
        }
    });
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(fallback)
        .service(upstream);

    let response = svc
        .oneshot(http::Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), response.body().as_str()),
        (200, "cached")
    );
    assert_eq!(response.headers()[FALLBACK_HEADER], "value");
    // Both attempts failed as far as the budget knows: two tokens taken (10 -> 8, 3 retries
    // left above half), and the first was retried.
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(retries.retries(), 1);
    assert_eq!(budget.available(), Some(3));
}
