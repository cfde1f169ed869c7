//! `ServerStack`: its parts are reachable (handles, an observer), its refusals can be what a JSON
//! API sends, and it declares priorities.

#![cfg(feature = "presets")]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt, service_fn};
use weir::{ServerStack, core::response::ErrorResponseLayer};

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

/// Counts the events it sees, by kind: one observer for every layer of the stack.
#[derive(Clone, Default)]
struct Seen {
    shed: Arc<AtomicUsize>,
    timed_out: Arc<AtomicUsize>,
}

impl weir::core::Observer<weir::load_shed::Event<'_>> for Seen {
    fn on_event(&self, event: &weir::load_shed::Event<'_>) {
        if matches!(event, weir::load_shed::Event::Shed { .. }) {
            self.shed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl weir::core::Observer<weir::timeout::Event<'_>> for Seen {
    fn on_event(&self, event: &weir::timeout::Event<'_>) {
        if matches!(event, weir::timeout::Event::TimedOut { .. }) {
            self.timed_out.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// #16.8: the server preset takes an observer (it sees the shedder's and the timeout's events)
/// and gives a handle on its load shedder, shared by every service and clone.
#[tokio::test(start_paused = true)]
async fn server_stack_takes_an_observer_and_exposes_its_load_shedder() {
    let seen = Seen::default();
    let stack = ServerStack::builder()
        .max_in_flight(1)
        .timeout(Duration::from_secs(1))
        .observer(seen.clone())
        .build()
        .unwrap();
    let shedder = stack.load_shed();
    let server = stack.layer(service_fn(handler));

    let busy = tokio::spawn(server.clone().oneshot(get("/slow")));
    tokio::task::yield_now().await;
    assert_eq!(shedder.stats().in_flight, 1);
    let Ok(shed) = server.clone().oneshot(get("/")).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shedder.stats().shed, 1);
    assert_eq!(seen.shed.load(Ordering::SeqCst), 1);

    let Ok(timed_out) = busy.await.unwrap();
    assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(seen.timed_out.load(Ordering::SeqCst), 1);
    assert_eq!(shedder.stats().in_flight, 0);
}

/// #27.6: `ErrorResponseLayer`'s settings are reachable from the server preset: problem+json
/// bodies and the status of a timeout.
#[tokio::test(start_paused = true)]
async fn server_stack_answers_refusals_as_the_error_responses_say() {
    let stack = ServerStack::builder()
        .timeout(Duration::from_secs(1))
        .error_responses(
            ErrorResponseLayer::new()
                .problem_json()
                .timeout_status(StatusCode::REQUEST_TIMEOUT),
        )
        .build()
        .unwrap();
    assert_eq!(
        format!("{:?}", stack.error_responses()),
        format!(
            "{:?}",
            ErrorResponseLayer::new()
                .problem_json()
                .timeout_status(StatusCode::REQUEST_TIMEOUT)
        )
    );
    let server = stack.layer(service_fn(handler));
    let Ok(res) = server.oneshot(get("/slow")).await;
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        r#"{"type":"about:blank","title":"Request Timeout","status":408,"detail":"timed out"}"#
    );
}

/// #27.6: a keyed rate limit that rejects requests without a key answers them 401 through the
/// server preset, not 429.
#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn server_stack_answers_a_missing_key_with_401() {
    use weir::rate_limit::{Quota, RateLimitLayer};

    let limit = RateLimitLayer::builder()
        .quota(Quota::per_second(10))
        .key(weir::core::key::ApiKey::new())
        .missing_key(weir::core::key::MissingKey::Reject)
        .build()
        .unwrap();
    let server = ServerStack::builder()
        .rate_limit(limit)
        .build()
        .unwrap()
        .layer(service_fn(handler));
    let Ok(res) = server.clone().oneshot(get("/")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!res.headers().contains_key("retry-after"));
    let req = Request::get("/")
        .header("x-api-key", "k-1")
        .body(String::new())
        .unwrap();
    let Ok(res) = server.oneshot(req).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// #16.8: the preset's rate limit is reachable, and its handle reads the keys the stack's
/// services filled.
#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn server_stack_exposes_its_rate_limit_handle() {
    use weir::rate_limit::{Quota, RateLimitLayer};

    let limit = RateLimitLayer::builder()
        .quota(Quota::per_second(10))
        .key(weir::core::key::ApiKey::new())
        .build()
        .unwrap();
    let stack = ServerStack::builder().rate_limit(limit).build().unwrap();
    let limits = stack.rate_limit().handle();
    let server = stack.clone().layer(service_fn(handler));
    for key in ["k-1", "k-2"] {
        let req = Request::get("/")
            .header("x-api-key", key)
            .body(String::new())
            .unwrap();
        let Ok(res) = server.clone().oneshot(req).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(limits.keys(), 2);
}

/// Starts `n` requests to `/slow` (each holds its place for 60 s) with `header` set; returns
/// the tasks still running and how many were refused with a 503.
async fn occupy<S, B>(
    server: &S,
    n: usize,
    header: Option<&'static str>,
) -> (Vec<tokio::task::JoinHandle<()>>, usize)
where
    S: tower::Service<Request<String>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Send + 'static,
{
    let mut running = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        let mut req = get("/slow");
        if let Some(name) = header {
            req.headers_mut()
                .insert(name, http::HeaderValue::from_static("1"));
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let server = server.clone();
        let task = tokio::spawn(async move {
            let res = server.oneshot(req).await.unwrap();
            let _ = tx.send(res.status());
        });
        tokio::task::yield_now().await;
        match rx.try_recv() {
            Ok(status) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                refused += 1;
            }
            Err(_) => running.push(task),
        }
    }
    (running, refused)
}

/// #27.4: `max_in_flight(n)` admits `n` requests of the default priority (not 0.8 n), and the
/// preset declares priorities: a lowered normal share keeps room for critical requests.
#[tokio::test(start_paused = true)]
async fn server_stack_admits_max_in_flight_and_declares_priorities() {
    let server = ServerStack::builder()
        .max_in_flight(10)
        .build()
        .unwrap()
        .layer(service_fn(handler));
    let (running, refused) = occupy(&server, 11, None).await;
    assert_eq!((running.len(), refused), (10, 1));

    let server = ServerStack::builder()
        .max_in_flight(10)
        .priority(|req: &Request<String>| {
            if req.headers().contains_key("x-critical") {
                weir::load_shed::Priority::Critical
            } else {
                weir::load_shed::Priority::Normal
            }
        })
        .share(weir::load_shed::Priority::Normal, 0.8)
        .build()
        .unwrap()
        .layer(service_fn(handler));
    let (normal, refused) = occupy(&server, 9, None).await;
    assert_eq!((normal.len(), refused), (8, 1));
    let (critical, refused) = occupy(&server, 3, Some("x-critical")).await;
    assert_eq!((critical.len(), refused), (2, 1));

    let err = ServerStack::builder()
        .share(weir::load_shed::Priority::Normal, 1.5)
        .build()
        .unwrap_err();
    assert_eq!(err.pattern(), "load shed", "{err:?}");
    assert!(err.to_string().contains("share"), "{err}");
}

/// #27.6: a configuration file reaches the refusal settings too: problem+json bodies, the
/// status of a timeout and of a missing key; a status that is not an error is refused, named.
#[cfg(feature = "config")]
#[tokio::test(start_paused = true)]
async fn server_config_sets_the_refusals() {
    let config: weir::ServerConfig = toml::from_str(
        r#"
        timeout = "1s"
        refusal_body = "problem_json"
        timeout_status = 408
        missing_key_status = 400
        "#,
    )
    .unwrap();
    let server = config.build().unwrap().layer(service_fn(handler));
    let Ok(res) = server.oneshot(get("/slow")).await;
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let missing: Response<weir::core::response::ResponseBody<String>> = config
        .build()
        .unwrap()
        .error_responses()
        .http_response(&weir::Error::missing_key());
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    let err = toml::from_str::<weir::ServerConfig>("timeout_status = 200")
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "server stack: `timeout_status` must be a 4xx or 5xx status, not 200"
    );
    assert!(toml::from_str::<weir::ServerConfig>(r#"refusal_body = "xml""#).is_err());
}

/// A handler that answers after 20 ms, counting its calls.
fn counted(
    calls: &Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<String>,
    Response = Response<String>,
    Error = io::Error,
    Future = impl Send,
> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |_req: Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Response::new(String::from("ok")))
        }
    })
}

fn with_timeout(header: &'static str, value: &'static str) -> Request<String> {
    let mut req = get("/");
    req.headers_mut()
        .insert(header, http::HeaderValue::from_static(value));
    req
}

/// #16.2: `ServerBuilder::incoming_floor` refuses a client's deadline below the floor at once,
/// with a 504 and without calling the handler (`Reject`), or raises it to the floor (`Raise`);
/// without a floor the same `x-timeout-ms: 1` reaches the handler and times out.
#[tokio::test(start_paused = true)]
async fn server_stack_holds_client_deadlines_to_its_incoming_floor() {
    use weir::timeout::BelowFloor;

    let calls = Arc::new(AtomicUsize::new(0));
    let reject = ServerStack::builder()
        .incoming_floor(Duration::from_millis(50), BelowFloor::Reject)
        .build()
        .unwrap()
        .layer(counted(&calls));
    let Ok(refused) = reject
        .clone()
        .oneshot(with_timeout("x-timeout-ms", "1"))
        .await;
    assert_eq!(refused.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "refused before the handler"
    );
    let Ok(served) = reject.oneshot(with_timeout("x-timeout-ms", "50")).await;
    assert_eq!(served.status(), StatusCode::OK, "at the floor: honoured");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let raise = ServerStack::builder()
        .incoming_floor(Duration::from_millis(50), BelowFloor::Raise)
        .build()
        .unwrap()
        .layer(counted(&calls));
    let Ok(raised) = raise.oneshot(with_timeout("grpc-timeout", "1m")).await;
    assert_eq!(raised.status(), StatusCode::OK, "raised to 50 ms: served");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let plain = ServerStack::builder()
        .build()
        .unwrap()
        .layer(counted(&calls));
    let Ok(late) = plain.oneshot(with_timeout("x-timeout-ms", "1")).await;
    assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "without a floor the handler ran"
    );
}

/// The future of a request through the stack is the protected path's and a tag: a probe's (the
/// request and a readied clone of the direct path) is boxed, so it does not make every
/// request's future the size of a request, a future each outer future and the server then move
/// in turn (#15: the server stack's instruction count, benches/README.md).
#[test]
fn the_server_stacks_future_is_smaller_than_a_request() {
    fn future_size<S: tower::Service<Request<String>>>(_: &S) -> usize {
        size_of::<S::Future>()
    }
    // An `async` handler, as a real one: its future holds nothing before it runs.
    let handler =
        service_fn(|_: Request<String>| async { Ok::<_, io::Error>(Response::new(String::new())) });
    let stack = ServerStack::builder().build().unwrap().layer(handler);
    let size = future_size(&stack);
    eprintln!("ServerStack's future over an async handler: {size} bytes");
    assert!(
        size < size_of::<Request<String>>(),
        "{size} bytes, a request is {}",
        size_of::<Request<String>>()
    );
}
