//! End to end over real sockets on 127.0.0.1: a hyper client behind a weir client stack (total
//! deadline → retry → circuit breaker → bulkhead → attempt timeout with deadline propagation),
//! built by hand and with the `ClientStack` preset, against a real hyper server that fails or
//! answers late on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use weir::circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};
use weir::retry::{ReplayBody, RetryLayer};
use weir::timeout::TimeoutLayer;
use weir::{
    BoxError, ClientStack, Error, ServiceBuilderExt, core::backoff::Backoff,
    core::classify::HttpStatus,
};

/// What the server saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    timeouts_ms: Mutex<Vec<u64>>,
}

/// A hyper server answering 503 to its first `failures` requests, 200 after.
async fn server(failures: usize) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let state = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = Arc::clone(&state);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let n = state.calls.fetch_add(1, Ordering::SeqCst);
                if let Some(ms) = req
                    .headers()
                    .get("x-timeout-ms")
                    .and_then(|v| weir::core::wire::decode_timeout_ms(v.as_bytes()).ok())
                {
                    let ms = u64::try_from(ms.as_millis()).unwrap_or(u64::MAX);
                    state.timeouts_ms.lock().expect("not poisoned").push(ms);
                }
                let status = if n < failures {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                async move {
                    Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(b"hello")))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The client stack in front of a hyper client, and the breaker's handle.
fn client() -> (
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<impl hyper::body::Body + std::fmt::Debug>,
        Error = BoxError,
        Future: Send,
    > + Clone,
    CircuitBreakerHandle,
) {
    let transport = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(4)
        .classifier(HttpStatus::new())
        .open_duration(Duration::from_secs(30))
        .build_with_handle()
        .expect("valid breaker");
    let stack = ServiceBuilder::new()
        .weir_timeout(Duration::from_secs(2))
        .layer(
            RetryLayer::http()
                .max_attempts(3)
                // Real sockets run on the wall clock: retry at once.
                .backoff(Backoff::constant(Duration::ZERO))
                .build()
                .expect("valid retry"),
        )
        .layer(breaker)
        .weir_bulkhead(4)
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(500))
                .propagate(Duration::from_millis(10))
                .build()
                .expect("valid timeout"),
        )
        .service(transport);
    (stack, handle)
}

fn get(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/items"))
        .body(Full::default())
        .expect("valid request")
}

#[tokio::test]
async fn retries_through_the_stack_and_propagates_the_deadline() {
    let (addr, seen) = server(2).await;
    let (client, handle) = client();

    let response = client.oneshot(get(addr)).await.expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3, "two 503s, then a 200");
    // Every attempt carried the budget left: at most the attempt timeout less the allowance.
    let timeouts = seen.timeouts_ms.lock().unwrap().clone();
    assert_eq!(timeouts.len(), 3);
    assert!(
        timeouts.iter().all(|ms| (400..=490).contains(ms)),
        "{timeouts:?}"
    );
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test]
async fn the_breaker_opens_and_stops_calling_the_server() {
    let (addr, seen) = server(usize::MAX).await;
    let (client, handle) = client();

    // Three attempts, three 503s: retry returns the last one.
    let response = client.clone().oneshot(get(addr)).await.expect("answered");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);

    // The fourth failure in a row opens the breaker; retry does not retry "circuit open".
    let err = client.clone().oneshot(get(addr)).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 4);
    assert_eq!(handle.state(), State::Open);

    // While open, the server sees nothing.
    let err = client.oneshot(get(addr)).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 4);
}

/// What the orders server saw.
#[derive(Default)]
struct Orders {
    created: AtomicUsize,
    timeouts_ms: Mutex<Vec<u64>>,
}

/// A hyper server that creates an order per `POST /orders` (counted on arrival) and answers
/// after `delay`; records every `x-timeout-ms`.
async fn orders_server(delay: Duration) -> (SocketAddr, Arc<Orders>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let orders = Arc::new(Orders::default());
    let state = Arc::clone(&orders);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = Arc::clone(&state);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                if req.method() == http::Method::POST {
                    state.created.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(ms) = req
                    .headers()
                    .get("x-timeout-ms")
                    .and_then(|v| weir::core::wire::decode_timeout_ms(v.as_bytes()).ok())
                {
                    let ms = u64::try_from(ms.as_millis()).unwrap_or(u64::MAX);
                    state.timeouts_ms.lock().expect("not poisoned").push(ms);
                }
                async move {
                    tokio::time::sleep(delay).await;
                    Response::builder()
                        .status(StatusCode::CREATED)
                        .body(Full::new(Bytes::from_static(b"created")))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, orders)
}

/// #27.1: a new user's `POST /orders` through the default client preset, around a hyper
/// client, runs once even when its attempts time out (it created four orders before).
#[tokio::test]
async fn the_default_preset_creates_one_order_for_a_post_that_times_out() {
    let (addr, orders) = orders_server(Duration::from_millis(400)).await;
    let stack = ClientStack::builder()
        .total_timeout(Duration::from_secs(3))
        .attempt_timeout(Duration::from_millis(100))
        .sampling_window(Duration::from_secs(1))
        .build()
        .expect("valid preset");
    let client = stack.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let post = Request::post(format!("http://{addr}/orders"))
        .body(Full::new(Bytes::from_static(b"{\"item\": 7}")))
        .expect("valid request");

    let err = client.oneshot(post).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_timeout), "{err}");
    assert_eq!(
        orders.created.load(Ordering::SeqCst),
        1,
        "one order, not four"
    );
    assert_eq!(stack.retry_handle().retries(), 0);
}

/// #27.3: the client preset sends the time left of each attempt as `x-timeout-ms`, in the
/// default mode around a hyper client and per authority around one that replays bodies.
#[tokio::test]
async fn the_client_preset_propagates_the_deadline_as_x_timeout_ms() {
    let (addr, orders) = orders_server(Duration::ZERO).await;
    let get = || {
        Request::get(format!("http://{addr}/orders/7"))
            .body(Full::default())
            .expect("valid request")
    };

    let stack = ClientStack::builder()
        .attempt_timeout(Duration::from_millis(500))
        .build()
        .expect("valid preset");
    let client = stack.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let response = client.oneshot(get()).await.expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);

    let stack = ClientStack::builder()
        .per_authority()
        .attempt_timeout(Duration::from_millis(500))
        .build()
        .expect("valid preset");
    let client =
        stack.wrap(Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>());
    let response = client.oneshot(get()).await.expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);

    let timeouts = orders.timeouts_ms.lock().unwrap().clone();
    assert_eq!(timeouts.len(), 2, "{timeouts:?}");
    assert!(
        timeouts.iter().all(|ms| (300..=500).contains(ms)),
        "{timeouts:?}"
    );
}

/// A hyper server whose handler (of hyper's own `Request<Incoming>`) sits behind weir's timeout,
/// built with `TimeoutLayer::new` (its default protocol, `Auto`) or with `.plain()` on top, and
/// answers whether it found a deadline in the request's extensions.
async fn deadline_server(plain: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = tower::service_fn(|req: Request<Incoming>| async move {
                let found = weir::core::Deadline::get(req.extensions()).is_some();
                let body = if found { "deadline" } else { "none" };
                let response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                Ok::<_, std::convert::Infallible>(response)
            });
            let timeout = TimeoutLayer::new(Duration::from_secs(5));
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let timeout = timeout.clone();
                async move {
                    let answer = if plain {
                        timeout.plain().layer(handler).oneshot(req).await
                    } else {
                        timeout.layer(handler).oneshot(req).await
                    };
                    // The server's error type stays concrete (a `BoxError` here trips the
                    // compiler's check of the spawned future): a timeout is a 504.
                    Ok::<_, std::convert::Infallible>(answer.unwrap_or_else(|_| {
                        let mut response = Response::new(Full::new(Bytes::from_static(b"timeout")));
                        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                        response
                    }))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// #17.2: the timeout's default protocol, `Auto`, reads an `http::Request` whatever its body:
/// on a real server, a handler of hyper's `Request<Incoming>` behind `TimeoutLayer::new` finds
/// the deadline the layer stored (as before `Carrier` was removed); behind `.plain()` it finds
/// none.
#[tokio::test]
async fn an_incoming_request_carries_the_default_timeouts_deadline() {
    use http_body_util::BodyExt;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for (plain, expected) in [(false, "deadline"), (true, "none")] {
        let addr = deadline_server(plain).await;
        let get = Request::get(format!("http://{addr}/"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = client.request(get).await.expect("answered");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, expected.as_bytes(), "plain: {plain}");
    }
}
