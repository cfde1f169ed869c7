//! #16.1: a call that was never sent, or that ran out of the caller's own budget, is not the
//! upstream's failure. Hostile clients sending tiny deadlines (`x-timeout-ms: 1`) must not open a
//! breaker that a well-behaved client shares.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};
use weir_core::{BoxError, classify::HttpStatus, response::ErrorResponseLayer};
use weir_timeout::TimeoutLayer;

const LATENCY: Duration = Duration::from_millis(20);

/// The upstream's latency over real sockets (real time): long enough that a loaded machine
/// cannot stall the server past it before the hostile 1 ms deadline fires (the timeout polls the
/// inner future first, so a handler already done by then would answer 200). With 20 ms the test
/// failed under a load average of 17 on 2 cores.
const HTTP_LATENCY: Duration = Duration::from_millis(300);

/// A healthy upstream: answers 200 after `LATENCY`, counting the calls that reach it.
fn upstream(
    hits: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    service_fn(move |_req: Request<()>| {
        let hits = Arc::clone(&hits);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(LATENCY).await;
            Ok::<_, Infallible>(Response::new(()))
        }
    })
}

fn breaker() -> (CircuitBreakerLayer<HttpStatus>, CircuitBreakerHandle) {
    CircuitBreakerLayer::consecutive_failures(3)
        .classifier(HttpStatus::new())
        .open_duration(Duration::from_secs(60))
        .build_with_handle()
        .expect("valid")
}

fn request(timeout_ms: Option<&str>) -> Request<()> {
    let mut req = Request::builder().uri("/");
    if let Some(ms) = timeout_ms {
        req = req.header("x-timeout-ms", ms);
    }
    req.body(()).expect("valid request")
}

/// #16.1: the breaker outside a server-mode timeout. A hostile client's 1 ms deadline expires
/// while the healthy upstream works; the timeout answers it (504 for the client) with the
/// caller's-deadline error, which the breaker does not count; a well-behaved client keeps
/// getting 200.
#[tokio::test(start_paused = true)]
async fn tiny_deadlines_through_a_server_timeout_never_open_the_breaker() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (breaker, handle) = breaker();
    let service = ServiceBuilder::new()
        .layer(breaker)
        .layer(
            TimeoutLayer::server(Duration::from_secs(10))
                .build()
                .expect("valid"),
        )
        .service(upstream(Arc::clone(&hits)));

    for round in 0..20 {
        for _ in 0..5 {
            let err = service
                .clone()
                .oneshot(request(Some("1")))
                .await
                .expect_err("the hostile call runs out of its own deadline");
            let weir = weir_core::Error::find(&*err).expect("a weir error");
            assert!(weir.is_timeout() && weir.is_caller_deadline(), "{err}");
        }
        let response = service
            .clone()
            .oneshot(request(None))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the good client was refused: {e}"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(handle.state(), State::Closed, "round {round}");
    }
    assert_eq!(handle.snapshot().failures(), 0);
}

/// #16.1: the gateway's order: a server-mode edge timeout, then the client stack's breaker and
/// an attempt timeout in client mode that propagates the deadline. A deadline no larger than the
/// allowance is refused before it is sent (the upstream never sees it), and that refusal is not
/// the upstream's failure either.
#[tokio::test(start_paused = true)]
async fn a_deadline_spent_before_sending_is_not_counted_by_the_breaker() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (breaker, handle) = breaker();
    let service = ServiceBuilder::new()
        .layer(
            TimeoutLayer::server(Duration::from_secs(10))
                .build()
                .expect("valid"),
        )
        .layer(breaker)
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_secs(1))
                .propagate(Duration::from_millis(5))
                .build()
                .expect("valid"),
        )
        .service(upstream(Arc::clone(&hits)));

    for _ in 0..50 {
        let err = service
            .clone()
            .oneshot(request(Some("1")))
            .await
            .expect_err("no time left to send");
        assert!(weir_core::Error::find(&*err).is_some_and(weir_core::Error::is_caller_deadline));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "never sent");
    assert_eq!(handle.state(), State::Closed);
    let response = service
        .clone()
        .oneshot(request(Some("500")))
        .await
        .expect("the good client gets through");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// The attempt timeout of the layer itself still counts: an upstream slower than the attempt
/// timeout is the upstream's failure and opens the breaker (the fix does not hide real
/// failures).
#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_itself_still_counts_against_the_upstream() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (breaker, handle) = breaker();
    let service = ServiceBuilder::new()
        .layer(breaker)
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(5))
                .propagate(Duration::ZERO)
                .build()
                .expect("valid"),
        )
        .service(upstream(Arc::clone(&hits)));
    for _ in 0..3 {
        let err = service
            .clone()
            .oneshot(request(Some("10000")))
            .await
            .expect_err("the upstream is slower than the attempt timeout");
        let weir = weir_core::Error::find(&*err).expect("a weir error");
        assert!(weir.is_timeout() && !weir.is_caller_deadline());
    }
    assert_eq!(handle.state(), State::Open);
}

/// #16.1 over real sockets: an axum app whose route sits behind a breaker and a server-mode
/// timeout. Hostile requests with `x-timeout-ms: 1` get 504; a well-behaved client keeps getting
/// 200 and the breaker stays closed. (Real time: the upstream's latency is a real sleep, [`HTTP_LATENCY`].)
#[tokio::test]
async fn over_http_hostile_tiny_deadlines_leave_the_good_client_served() {
    let (breaker, handle) = breaker();
    let app = Router::new().route(
        "/",
        get(|| async {
            tokio::time::sleep(HTTP_LATENCY).await;
            "ok"
        })
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(breaker)
                .layer(
                    TimeoutLayer::server(Duration::from_secs(10))
                        .build()
                        .expect("valid"),
                ),
        ),
    );
    let (addr, server) = weir_test::http::serve(app).await;
    let mut sender = weir_test::http::connect(addr).await;
    for _ in 0..10 {
        let mut hostile = weir_test::http::get_root();
        hostile
            .headers_mut()
            .insert("x-timeout-ms", http::HeaderValue::from_static("1"));
        sender.ready().await.expect("connection open");
        let response = sender.send_request(hostile).await.expect("a response");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let _ = response.into_body().collect().await;
    }
    assert_eq!(handle.state(), State::Closed);
    sender.ready().await.expect("connection open");
    let response = sender
        .send_request(weir_test::http::get_root())
        .await
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.expect("body");
    assert_eq!(body.to_bytes(), "ok");
    server.abort();
}

/// The error type of the upstream is not in the way: the breaker's own `BoxError` passes the
/// caller's deadline through unchanged, so an outer layer sees it too.
#[tokio::test(start_paused = true)]
async fn the_callers_deadline_error_passes_through_the_breaker_unchanged() {
    let (breaker, _handle) = breaker();
    let service = ServiceBuilder::new()
        .layer(breaker)
        .layer(
            TimeoutLayer::server(Duration::from_secs(10))
                .name("edge")
                .build()
                .expect("valid"),
        )
        .service(service_fn(|_req: Request<()>| async {
            std::future::pending::<Result<Response<()>, BoxError>>().await
        }));
    let err = service
        .oneshot(request(Some("3")))
        .await
        .expect_err("timed out");
    let weir = weir_core::Error::find(&*err).expect("a weir error");
    assert!(weir.is_caller_deadline());
    assert_eq!(weir.layer(), Some("edge"));
}
