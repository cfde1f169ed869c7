//! The presets compose over a `service_fn`, behave as their docs promise, and refuse
//! configurations that break their rules with errors naming the field.

#![cfg(feature = "presets")]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use weir::{ClientStack, ConfigError, ServerStack};

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

/// A handler that sleeps on `/slow`.
async fn handler(req: Request<String>) -> Result<Response<String>, io::Error> {
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(Response::new(String::from("ok")))
}

#[tokio::test(start_paused = true)]
async fn server_preset_answers_and_maps_a_slow_handler_to_504() {
    let stack = ServerStack::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let server = ServiceBuilder::new()
        .layer(stack)
        .service(service_fn(handler));

    let Ok(fast) = server.clone().oneshot(get("/")).await;
    assert_eq!(fast.status(), StatusCode::OK);

    let started = tokio::time::Instant::now();
    let Ok(slow) = server.oneshot(get("/slow")).await;
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn server_preset_honours_a_shorter_client_deadline() {
    let stack = ServerStack::builder().build().unwrap();
    assert_eq!(stack.timeout(), Duration::from_secs(30));
    assert_eq!(stack.max_in_flight(), 1_000);
    let server = stack.layer(service_fn(handler));
    let req = Request::get("/slow")
        .header("x-timeout-ms", "200")
        .body(String::new())
        .unwrap();
    let started = tokio::time::Instant::now();
    let Ok(slow) = server.oneshot(req).await;
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn server_preset_sheds_the_call_over_max_in_flight() {
    let stack = ServerStack::builder().max_in_flight(1).build().unwrap();
    let server = stack.layer(service_fn(handler));
    let busy = tokio::spawn(server.clone().oneshot(get("/slow")));
    tokio::task::yield_now().await;
    let Ok(shed) = server.oneshot(get("/")).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    busy.abort();
}

#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn server_preset_with_a_rate_limit_answers_429() {
    let limit =
        weir::rate_limit::RateLimitLayer::new(weir::rate_limit::Quota::per_second(2)).unwrap();
    let stack = ServerStack::builder().rate_limit(limit).build().unwrap();
    let server = stack.layer(service_fn(handler));
    for _ in 0..2 {
        let Ok(ok) = server.clone().oneshot(get("/")).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let Ok(limited) = server.oneshot(get("/")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
}

/// A transport that fails its first `failures` calls, then answers `n + 1`.
fn flaky(
    failures: usize,
    calls: &Arc<AtomicUsize>,
) -> impl tower::Service<
    u32,
    Response = u32,
    Error = io::Error,
    Future = impl Future<Output = Result<u32, io::Error>> + Send,
> + Clone
+ Send {
    let calls = Arc::clone(calls);
    service_fn(move |n: u32| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if call < failures {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            } else {
                Ok(n + 1)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn client_preset_retries_a_transport_failing_twice_to_success() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ClientStack::builder().build().unwrap();
    let client = stack.layer(flaky(2, &calls));
    assert_eq!(client.oneshot(41).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn client_preset_in_the_seeds_order_retries_to_success_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ClientStack::builder()
        .breaker_outside_retry()
        .build()
        .unwrap();
    let client = stack.layer(flaky(2, &calls));
    assert_eq!(client.oneshot(1).await.unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn client_preset_gives_up_after_max_retries() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ClientStack::builder().max_retries(1).build().unwrap();
    let client = stack.layer(flaky(5, &calls));
    let err = client.oneshot(1).await.unwrap_err();
    assert!(err.downcast_ref::<io::Error>().is_some(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn client_preset_attempt_timeout_is_retried_within_the_total() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let stack = ClientStack::builder()
        .total_timeout(Duration::from_secs(10))
        .attempt_timeout(Duration::from_secs(1))
        .sampling_window(Duration::from_secs(2))
        .build()
        .unwrap();
    let client = stack.layer(service_fn(move |n: u32| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if call == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, io::Error>(n)
        }
    }));
    let started = tokio::time::Instant::now();
    assert_eq!(client.oneshot(7).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn client_preset_per_authority_retries_a_503_then_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let stack = ClientStack::builder().per_authority().build().unwrap();
    let client = stack.layer(service_fn(
        move |_req: Request<weir::retry::ReplayBody<String>>| {
            let call = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                let status = if call < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                let mut response = Response::new(String::new());
                *response.status_mut() = status;
                Ok::<_, io::Error>(response)
            }
        },
    ));
    let response = client
        .oneshot(get("http://inventory:8080/items/7"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn client_preset_refuses_an_attempt_timeout_longer_than_the_total() {
    let err = ClientStack::builder()
        .total_timeout(Duration::from_secs(5))
        .attempt_timeout(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::AttemptLongerThanTotal {
            attempt: Duration::from_secs(10),
            total: Duration::from_secs(5),
        }
    );
    let message = err.to_string();
    assert!(message.contains("attempt_timeout"), "{message}");
    assert!(message.contains("total_timeout"), "{message}");
}

#[test]
fn client_preset_refuses_a_sampling_window_under_twice_the_attempt_timeout() {
    let err = ClientStack::builder()
        .attempt_timeout(Duration::from_secs(10))
        .sampling_window(Duration::from_secs(19))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::SamplingWindowTooShort { .. }));
    let message = err.to_string();
    assert!(message.contains("sampling_window"), "{message}");
    assert!(message.contains("attempt_timeout"), "{message}");
    // Exactly twice is allowed.
    assert!(
        ClientStack::builder()
            .attempt_timeout(Duration::from_secs(10))
            .sampling_window(Duration::from_secs(20))
            .build()
            .is_ok()
    );
}

#[test]
fn presets_refuse_zero_settings_naming_the_field() {
    let err = ClientStack::builder()
        .total_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("total_timeout"), "{err}");
    let err = ClientStack::builder()
        .max_concurrent(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Bulkhead(_)));
    assert!(err.to_string().contains("max_concurrent"), "{err}");
    let err = ClientStack::builder()
        .failure_rate(0.0)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::CircuitBreaker(_)));
    assert!(err.to_string().contains("failure_rate"), "{err}");
    let err = ServerStack::builder()
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroTimeout { field: "timeout" });
    let err = ServerStack::builder().max_in_flight(0).build().unwrap_err();
    assert!(err.to_string().contains("max_in_flight"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn axum_router_mounts_the_server_preset() {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get as route;

    let stack = ServerStack::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", route(|| async { "hello" }))
        .route(
            "/slow",
            route(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .layer(stack);

    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = app
        .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn client_preset_per_authority_opens_one_breaker_per_host() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let stack = ClientStack::builder()
        .per_authority()
        .max_retries(0)
        .minimum_calls(2)
        .failure_rate(50.0)
        .build()
        .unwrap();
    let client = stack.layer(service_fn(
        move |req: Request<weir::retry::ReplayBody<String>>| {
            seen.fetch_add(1, Ordering::SeqCst);
            let down = req.uri().host() == Some("down");
            async move {
                let mut response = Response::new(String::new());
                if down {
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                Ok::<_, io::Error>(response)
            }
        },
    ));
    for _ in 0..2 {
        let response = client.clone().oneshot(get("http://down/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // The breaker of `down` is open: refused without a call to the transport.
    let err = client
        .clone()
        .oneshot(get("http://down/"))
        .await
        .unwrap_err();
    assert!(
        weir::Error::find(&*err).is_some_and(weir::Error::is_circuit_open),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Another host has its own breaker, still closed.
    let response = client.oneshot(get("http://up/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
