//! Every pattern stacks with every other through `ServiceBuilderExt`, in the orders DESIGN.md
//! gives, and the rejections come out as the responses the mapping promises.

#![cfg(all(
    feature = "bulkhead",
    feature = "rate-limit",
    feature = "circuit-breaker",
    feature = "load-shed",
    feature = "retry",
    feature = "timeout"
))]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use weir::ServiceBuilderExt;

/// The server edge (outermost first): mapping, rate limit, load shed, bulkhead, timeout, handler.
#[tokio::test(start_paused = true)]
async fn server_stack_maps_a_slow_handler_to_504() {
    let server = ServiceBuilder::new()
        .weir_error_response()
        .weir_rate_limit(weir::rate_limit::Quota::per_second(2))
        .weir_load_shed(100)
        .weir_bulkhead(10)
        .weir_timeout(Duration::from_millis(50))
        .service(service_fn(|req: Request<String>| async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok::<_, io::Error>(Response::new(String::from("ok")))
        }));

    let Ok(fast) = server
        .clone()
        .oneshot(Request::get("/").body(String::new()).unwrap())
        .await;
    assert_eq!(fast.status(), StatusCode::OK);

    let Ok(slow) = server
        .clone()
        .oneshot(Request::get("/slow").body(String::new()).unwrap())
        .await;
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);

    // The third request within the second is over the quota of 2 per second.
    let Ok(limited) = server
        .oneshot(Request::get("/").body(String::new()).unwrap())
        .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
}

/// The client (outermost first): total timeout, retry, circuit breaker, bulkhead, attempt
/// timeout, transport. A transport that fails twice then answers is retried to success.
#[tokio::test(start_paused = true)]
async fn client_stack_retries_through_breaker_and_bulkhead() {
    let calls = Arc::new(AtomicUsize::new(0));
    let transport = {
        let calls = Arc::clone(&calls);
        service_fn(move |_req: u32| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(io::Error::other("connection reset"))
                } else {
                    Ok::<_, io::Error>("pong")
                }
            }
        })
    };
    let client = ServiceBuilder::new()
        .weir_timeout(Duration::from_secs(10))
        .weir_retry(3)
        .weir_circuit_breaker()
        .layer(weir::bulkhead::BulkheadLayer::new(4))
        .weir_timeout(Duration::from_secs(1))
        .service(transport);

    let answer = client.oneshot(7).await.expect("the third attempt succeeds");
    assert_eq!(answer, "pong");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
