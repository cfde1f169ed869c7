//! #20.4: a fallback answer is never mistaken for a success by the layers outside it.

use std::convert::Infallible;

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::{Error, HttpStatus};
use weir_fallback::{Cause, FallbackLayer};

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
