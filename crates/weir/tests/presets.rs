//! The presets compose over a `service_fn`, behave as their docs promise, and refuse
//! configurations that break their rules with errors naming the field.

#![cfg(feature = "presets")]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use weir::circuit_breaker::State;
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
    let limit = weir::rate_limit::RateLimitLayer::new(weir::rate_limit::Quota::per_second(2));
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
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.field(), "attempt_timeout");
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
    assert!(err.is_out_of_range(), "{err:?}");
    assert_eq!(err.field(), "sampling_window");
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
    assert_eq!(err.pattern(), "bulkhead", "{err:?}");
    assert!(err.to_string().contains("max_concurrent"), "{err}");
    let err = ClientStack::builder()
        .failure_rate(0.0)
        .build()
        .unwrap_err();
    assert_eq!(err.pattern(), "circuit breaker", "{err:?}");
    assert!(err.to_string().contains("failure_rate"), "{err}");
    let err = ServerStack::builder()
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::zero("server stack", "timeout", "must be greater than zero")
    );
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

/// Every event's pattern, kind and trace id (#19), from any layer of a stack.
#[derive(Clone, Default)]
struct TraceIds(Arc<Mutex<Vec<(&'static str, &'static str, Option<String>)>>>);

impl<E: weir::core::Event> weir::core::Observer<E> for TraceIds {
    fn on_event(&self, event: &E) {
        let trace_id = event.fields().trace_id.map(|id| id.to_string());
        self.0
            .lock()
            .unwrap()
            .push((event.pattern(), event.kind(), trace_id));
    }
}

#[tokio::test(start_paused = true)]
async fn client_preset_per_authority_breaker_refusals_carry_the_trace_id() {
    // The per-authority (HTTP) preset's breakers run in HTTP mode, so a refusal of an open
    // circuit joins the caller's trace, as the retry's events do.
    let seen = TraceIds::default();
    let stack = ClientStack::builder()
        .per_authority()
        .max_retries(0)
        .minimum_calls(2)
        .failure_rate(50.0)
        .observer(seen.clone())
        .build()
        .unwrap();
    let client = stack.layer(service_fn(
        |_: Request<weir::retry::ReplayBody<String>>| async {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, io::Error>(response)
        },
    ));
    for _ in 0..2 {
        let _ = client.clone().oneshot(get("http://down/")).await.unwrap();
    }
    let mut traced = get("http://down/");
    traced.headers_mut().insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let err = client.clone().oneshot(traced).await.unwrap_err();
    assert!(weir::Error::find(&*err).is_some_and(weir::Error::is_circuit_open));
    let refusals: Vec<_> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(pattern, kind, _)| *pattern == "circuit_breaker" && *kind == "rejected")
        .map(|(_, _, id)| id.clone())
        .collect();
    assert_eq!(
        refusals,
        [Some("0af7651916cd43dd8448eb211c80319c".to_owned())]
    );
}

/// A transport of `Request<String>` whose calls all fail with a reset connection; counts them
/// and keeps the `x-timeout-ms` each carried.
#[derive(Clone, Default)]
struct Resetting {
    calls: Arc<AtomicUsize>,
    timeouts: Arc<Mutex<Vec<Option<String>>>>,
}

impl Resetting {
    fn service(
        &self,
    ) -> impl tower::Service<
        Request<String>,
        Response = Response<String>,
        Error = io::Error,
        Future = impl Future<Output = Result<Response<String>, io::Error>> + Send,
    > + Clone
    + Send {
        let this = self.clone();
        service_fn(move |req: Request<String>| {
            this.calls.fetch_add(1, Ordering::SeqCst);
            let header = req
                .headers()
                .get("x-timeout-ms")
                .map(|v| v.to_str().unwrap().to_owned());
            this.timeouts.lock().unwrap().push(header);
            async { Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")) }
        })
    }

    fn calls(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }
}

fn post(key: Option<&str>) -> Request<String> {
    let mut req = Request::post("http://shop/orders");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.body(String::from("{\"item\": 7}")).unwrap()
}

/// #27.1: a POST through the default client preset runs once; a GET, and a POST with an
/// `Idempotency-Key`, are retried (4 attempts); `retry_non_idempotent()` is the opt-in.
#[tokio::test(start_paused = true)]
async fn client_preset_sends_a_post_once_by_default() {
    let transport = Resetting::default();
    for stack in [
        ClientStack::builder().build().unwrap(),
        ClientStack::builder()
            .breaker_classifier(weir::core::classify::AnyError)
            .build()
            .unwrap(),
    ] {
        let client = stack.layer(transport.service());
        client.clone().oneshot(post(None)).await.unwrap_err();
        assert_eq!(transport.calls(), 1, "a POST is sent once");
        client
            .clone()
            .oneshot(post(Some("order-7")))
            .await
            .unwrap_err();
        assert_eq!(transport.calls(), 4, "a keyed POST is retried");
        client
            .oneshot(get("http://shop/orders/7"))
            .await
            .unwrap_err();
        assert_eq!(transport.calls(), 4, "a GET is retried");
    }

    // The seeds' order follows the same rules.
    let stack = ClientStack::builder()
        .breaker_outside_retry()
        .build()
        .unwrap();
    stack
        .layer(transport.service())
        .oneshot(post(None))
        .await
        .unwrap_err();
    assert_eq!(transport.calls(), 1);

    // The opt-in says what it does.
    let stack = ClientStack::builder()
        .retry_non_idempotent()
        .build()
        .unwrap();
    stack
        .layer(transport.service())
        .oneshot(post(None))
        .await
        .unwrap_err();
    assert_eq!(transport.calls(), 4);
}

/// #27.1: the per-authority preset sends a POST once too, unless told otherwise.
#[tokio::test(start_paused = true)]
async fn client_preset_per_authority_sends_a_post_once_by_default() {
    let calls = Arc::new(AtomicUsize::new(0));
    let transport = {
        let calls = Arc::clone(&calls);
        service_fn(move |_req: Request<weir::retry::ReplayBody<String>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, io::Error>(response)
            }
        })
    };
    let stack = ClientStack::builder().per_authority().build().unwrap();
    let response = stack.layer(transport.clone()).oneshot(post(None)).await;
    assert_eq!(response.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

    let stack = ClientStack::builder()
        .per_authority()
        .retry_non_idempotent()
        .build()
        .unwrap();
    let response = stack.layer(transport).oneshot(post(None)).await;
    assert_eq!(response.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// #27.1 and #27.7: `ServiceBuilderExt::weir_retry` applies the idempotency rules, and
/// `weir_retry(3)` makes as many attempts as `max_retries(3)`: 4.
#[tokio::test(start_paused = true)]
async fn retries_extension_counts_retries_and_sends_a_post_once() {
    use weir::ServiceBuilderExt;

    let transport = Resetting::default();
    let client = ServiceBuilder::new()
        .weir_retry(3)
        .service(transport.service());
    client
        .clone()
        .oneshot(get("http://shop/"))
        .await
        .unwrap_err();
    assert_eq!(transport.calls(), 4, "retries(3): the call and 3 retries");
    client.oneshot(post(None)).await.unwrap_err();
    assert_eq!(transport.calls(), 1, "a POST is sent once");

    let stack = ClientStack::builder().max_retries(3).build().unwrap();
    stack
        .layer(transport.service())
        .oneshot(get("http://shop/"))
        .await
        .unwrap_err();
    assert_eq!(transport.calls(), 4, "max_retries(3): the same 4 attempts");
}

/// #27.3: the client preset sends the time left as `x-timeout-ms` on every attempt, less the
/// allowance when one is set; `propagate_deadline(false)` turns it off.
#[tokio::test(start_paused = true)]
async fn client_preset_propagates_the_time_left_as_x_timeout_ms() {
    let transport = Resetting::default();
    let stack = ClientStack::builder()
        .attempt_timeout(Duration::from_secs(2))
        .max_retries(1)
        .build()
        .unwrap();
    stack
        .layer(transport.service())
        .oneshot(get("http://shop/"))
        .await
        .unwrap_err();
    let sent: Vec<_> = std::mem::take(&mut *transport.timeouts.lock().unwrap());
    assert_eq!(sent, [Some("2000".to_owned()), Some("2000".to_owned())]);

    // The total deadline wins when it is the earlier one.
    let stack = ClientStack::builder()
        .total_timeout(Duration::from_millis(1_500))
        .attempt_timeout(Duration::from_secs(1))
        .deadline_allowance(Duration::from_millis(100))
        .max_retries(0)
        .build()
        .unwrap();
    stack
        .layer(transport.service())
        .oneshot(get("http://shop/"))
        .await
        .unwrap_err();
    let sent: Vec<_> = std::mem::take(&mut *transport.timeouts.lock().unwrap());
    assert_eq!(sent, [Some("900".to_owned())]);

    let stack = ClientStack::builder()
        .propagate_deadline(false)
        .max_retries(0)
        .build()
        .unwrap();
    stack
        .layer(transport.service())
        .oneshot(get("http://shop/"))
        .await
        .unwrap_err();
    let sent: Vec<_> = std::mem::take(&mut *transport.timeouts.lock().unwrap());
    assert_eq!(sent, [None]);
}

/// #16.8: the preset's breaker, retry and bulkhead are reachable through their handles: the
/// retry handle counts the retries, the bulkhead handle its permits, and a breaker forced open
/// refuses the next call without reaching the transport.
#[tokio::test(start_paused = true)]
async fn client_preset_exposes_its_breaker_retry_and_bulkhead() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = ClientStack::builder().max_concurrent(8).build().unwrap();
    let client = stack.layer(flaky(2, &calls));
    assert_eq!(client.clone().oneshot(1).await.unwrap(), 2);
    assert_eq!(stack.retry_handle().retries(), 2);
    let stats = stack.bulkhead_handle().stats();
    assert_eq!((stats.max_concurrent, stats.in_flight), (8, 0));

    stack.breaker_handle().force_open();
    assert_eq!(stack.breaker_handle().state(), State::ForcedOpen);
    let err = client.clone().oneshot(1).await.unwrap_err();
    assert!(
        weir::Error::find(&*err).is_some_and(weir::Error::is_circuit_open),
        "{err}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "refused before the transport"
    );

    stack.breaker_handle().force_closed();
    assert_eq!(client.oneshot(1).await.unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// Records `(pattern, kind)` of every event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(&'static str, &'static str)>>>);

impl<Ev: weir::core::Event + ?Sized> weir::core::Observer<Ev> for Recorder {
    fn on_event(&self, event: &Ev) {
        self.0.lock().unwrap().push((event.pattern(), event.kind()));
    }
}

/// #16.8: the preset takes an observer, and every layer reports to it: the attempt timeout,
/// the retry, the breaker's transition and refusal.
#[tokio::test(start_paused = true)]
async fn client_preset_reports_every_layer_to_its_observer() {
    let recorder = Recorder::default();
    let stack = ClientStack::builder()
        .attempt_timeout(Duration::from_secs(1))
        .sampling_window(Duration::from_secs(2))
        .max_retries(1)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let client = stack.layer(service_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, io::Error>(n)
    }));
    client.clone().oneshot(1).await.unwrap_err();
    stack.breaker_handle().open();
    client.oneshot(1).await.unwrap_err();

    let events = recorder.0.lock().unwrap().clone();
    for expected in [
        ("timeout", "timed_out"),
        ("retry", "retry"),
        ("circuit_breaker", "state_change"),
        ("circuit_breaker", "rejected"),
    ] {
        assert!(events.contains(&expected), "{expected:?} in {events:?}");
    }
}

/// #27.5: every error under the gRPC preset reaches tonic as a `tonic::Status` with its own
/// code: weir's refusals their codes (never `UNKNOWN`), a transport failure `UNAVAILABLE`, a
/// status as it was; an error while readying is answered by the next call, not by tonic's
/// `UNKNOWN "Service was not ready"`.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_status_layer_gives_every_error_its_code() {
    use std::task::{Context, Poll};
    use tonic::Code;
    use weir::{BoxError, Error, GrpcStatusLayer};

    let cases: Vec<(BoxError, Code)> = vec![
        (Error::timeout().into(), Code::DeadlineExceeded),
        (Error::circuit_open().into(), Code::Unavailable),
        (Error::bulkhead_full().into(), Code::Unavailable),
        (
            Error::rate_limited(Duration::from_secs(1)).into(),
            Code::ResourceExhausted,
        ),
        (
            io::Error::from(io::ErrorKind::ConnectionRefused).into(),
            Code::Unavailable,
        ),
        (
            tonic::Status::not_found("no such item").into(),
            Code::NotFound,
        ),
    ];
    for (error, code) in cases {
        let text = error.to_string();
        let error = Mutex::new(Some(error));
        let service = GrpcStatusLayer::new().layer(service_fn(move |_req: u32| {
            let error = error.lock().unwrap().take().unwrap();
            async move { Err::<u32, BoxError>(error) }
        }));
        let status = service.oneshot(1).await.unwrap_err();
        assert_eq!(status.code(), code, "{text}: {status:?}");
    }

    /// Fails in `poll_ready` with a full bulkhead.
    struct Unready;
    impl tower::Service<u32> for Unready {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Err(Error::bulkhead_full()
                .with_retry_after(Duration::from_secs(2))
                .into()))
        }
        fn call(&mut self, n: u32) -> Self::Future {
            std::future::ready(Ok(n))
        }
    }
    let mut service = GrpcStatusLayer::new().layer(Unready);
    let ready = tower::ServiceExt::ready(&mut service).await;
    assert!(ready.is_ok(), "readiness never fails");
    let status = tower::Service::call(&mut service, 1).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "2000"
    );
}

/// #27.1 "PUT/DELETE as the user chooses": the client preset retries a PUT by default (RFC 9110
/// calls it idempotent); `no_put_delete_retries()` sends a PUT or DELETE without an
/// `Idempotency-Key` once, and still retries one with a key.
#[tokio::test(start_paused = true)]
async fn client_preset_retries_put_and_delete_as_the_user_chooses() {
    let transport = Resetting::default();
    let put = |key: Option<&str>| {
        let mut req = Request::put("http://shop/orders/7");
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.body(String::from("{\"item\": 7}")).unwrap()
    };
    let default = ClientStack::builder().build().unwrap();
    default
        .layer(transport.service())
        .oneshot(put(None))
        .await
        .unwrap_err();
    assert_eq!(transport.calls(), 4, "a PUT is retried by default");

    let strict = ClientStack::builder()
        .no_put_delete_retries()
        .build()
        .unwrap();
    let client = strict.layer(transport.service());
    client.clone().oneshot(put(None)).await.unwrap_err();
    assert_eq!(transport.calls(), 1, "a PUT without a key is sent once");
    client
        .clone()
        .oneshot(
            Request::delete("http://shop/orders/7")
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(transport.calls(), 1, "a DELETE without a key is sent once");
    client.oneshot(put(Some("put-7"))).await.unwrap_err();
    assert_eq!(transport.calls(), 4, "a keyed PUT is retried");
}
