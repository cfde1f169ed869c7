//! Behaviour of the idempotency layer, row by row of #23, on paused time.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_idempotency::{IdempotencyLayer, MemoryStore};

type Req = Request<Full<Bytes>>;

fn request(method: Method, path: &str, key: Option<&str>, body: &'static str) -> Req {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn post(key: Option<&str>, body: &'static str) -> Req {
    request(Method::POST, "/orders", key, body)
}

/// A handler that counts its calls and answers `order <n>` with `status`, a header of its own
/// and a cookie (which must never be replayed).
fn handler(
    calls: Arc<AtomicUsize>,
    status: StatusCode,
) -> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone {
    service_fn(move |req: Req| {
        let calls = Arc::clone(&calls);
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let text = format!("order {n} for {}", String::from_utf8_lossy(&body));
            Ok(Response::builder()
                .status(status)
                .header("x-order", n.to_string())
                .header("set-cookie", "session=secret")
                .body(Full::new(Bytes::from(text)))
                .unwrap())
        }
    })
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }

    fn problem(&self) -> bool {
        self.headers["content-type"] == "application/problem+json"
    }
}

async fn send<S, B>(svc: &mut S, req: Req) -> Answer
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = svc.ready().await.unwrap().call(req).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_repeat_with_the_same_request_is_replayed_without_calling_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (layer, handle) = IdempotencyLayer::builder().build_with_handle().unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::CREATED));

    let first = send(&mut svc, post(Some("k1"), "book")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body, "order 1 for book");
    assert!(!first.replayed());
    // The first client gets every header, the cookie too.
    assert_eq!(first.headers["set-cookie"], "session=secret");

    let again = send(&mut svc, post(Some("k1"), "book")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, "order 1 for book");
    assert!(again.replayed());
    assert_eq!(again.headers["x-order"], "1");
    assert!(
        again.headers.get("set-cookie").is_none(),
        "credentials are never replayed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    let stats = handle.stats();
    assert_eq!((stats.executed, stats.replayed, stats.stored), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn only_the_chosen_methods_are_covered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::new();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    // PUT is not covered by default: a key means nothing on it.
    for _ in 0..2 {
        let a = send(&mut svc, request(Method::PUT, "/orders", Some("k"), "x")).await;
        assert!(!a.replayed());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // PATCH is.
    for _ in 0..2 {
        send(&mut svc, request(Method::PATCH, "/orders", Some("k"), "x")).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Chosen methods: PUT only.
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .methods([Method::PUT])
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    for _ in 0..2 {
        send(&mut svc, request(Method::PUT, "/orders", Some("k"), "x")).await;
        send(&mut svc, request(Method::POST, "/orders", Some("k"), "x")).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "PUT once, POST twice");
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_key_runs_unless_the_route_requires_one() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .required_on(["/api/orders"])
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    send(&mut svc, post(None, "x")).await;
    send(&mut svc, post(None, "x")).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no key, not required: runs every time"
    );

    let missing = send(&mut svc, request(Method::POST, "/api/orders", None, "x")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.problem());
    assert!(String::from_utf8_lossy(&missing.body).contains("requires an Idempotency-Key"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_over_long_or_malformed_key_is_a_400_never_a_panic() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder().max_key_len(8).build().unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    for key in ["123456789", "has space", "\"unterminated", "\"\""] {
        let a = send(&mut svc, post(Some(key), "x")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{key}");
        assert!(a.problem());
    }
    let mut twice = post(Some("a"), "x");
    twice
        .headers_mut()
        .append("idempotency-key", "b".parse().unwrap());
    assert_eq!(send(&mut svc, twice).await.status, StatusCode::BAD_REQUEST);
    // An opaque byte is not visible ASCII.
    let mut raw = post(None, "x");
    raw.headers_mut().insert(
        "idempotency-key",
        http::HeaderValue::from_bytes(b"k\xff").unwrap(),
    );
    assert_eq!(send(&mut svc, raw).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The draft's quoted form and the bare form are both keys.
    send(&mut svc, post(Some("\"quoted\""), "x")).await;
    assert!(
        send(&mut svc, post(Some("\"quoted\""), "x"))
            .await
            .replayed()
    );
}

#[tokio::test(start_paused = true)]
async fn one_client_never_gets_another_clients_response() {
    let calls = Arc::new(AtomicUsize::new(0));
    let tenant = |req: &Req| req.headers().get("x-tenant").cloned();
    let layer = IdempotencyLayer::builder()
        .client_key(tenant)
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    let as_tenant = |tenant: &'static str, body| {
        let mut req = post(Some("same-key"), body);
        req.headers_mut()
            .insert("x-tenant", tenant.parse().unwrap());
        req
    };
    let alice = send(&mut svc, as_tenant("alice", "a")).await;
    let bob = send(&mut svc, as_tenant("bob", "b")).await;
    assert_eq!(alice.body, "order 1 for a");
    assert_eq!(bob.body, "order 2 for b");
    assert!(!bob.replayed());
    assert_eq!(
        send(&mut svc, as_tenant("alice", "a")).await.body,
        "order 1 for a"
    );
    assert_eq!(
        send(&mut svc, as_tenant("bob", "b")).await.body,
        "order 2 for b"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_same_key_with_another_request_is_a_422() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::new();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::CREATED));
    send(&mut svc, post(Some("k"), "book")).await;
    for req in [
        post(Some("k"), "lamp"),
        request(Method::POST, "/other", Some("k"), "book"),
        request(Method::POST, "/orders?x=1", Some("k"), "book"),
        request(Method::PATCH, "/orders", Some("k"), "book"),
    ] {
        let a = send(&mut svc, req).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(a.problem());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_concurrent_repeat_is_a_409_with_retry_after_never_a_second_run() {
    let (mock, mut upstream) = tower_test::mock::pair::<Req, Response<Full<Bytes>>>();
    let layer = IdempotencyLayer::new();
    let mut svc = layer.layer(mock);
    upstream.allow(10);
    let first = tokio::spawn({
        let mut svc = svc.clone();
        async move { send(&mut svc, post(Some("k"), "book")).await }
    });
    let (req, respond) = upstream.next_request().await.expect("the first runs");
    assert_eq!(req.uri(), "/orders");

    let repeat = send(&mut svc, post(Some("k"), "book")).await;
    assert_eq!(repeat.status, StatusCode::CONFLICT);
    assert_eq!(repeat.headers["retry-after"], "1");
    assert!(repeat.problem());
    // A repeat with another body is a 422 at once, even while the first runs.
    assert_eq!(
        send(&mut svc, post(Some("k"), "lamp")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    respond.send_response(Response::new(Full::new(Bytes::from_static(b"done"))));
    assert_eq!(first.await.unwrap().body, "done");
    let after = send(&mut svc, post(Some("k"), "book")).await;
    assert!(after.replayed());
    assert_eq!(after.body, "done");
    // Only one request ever reached the upstream.
    assert!(
        tokio_test::task::spawn(upstream.next_request())
            .poll()
            .is_pending()
    );
}

#[tokio::test(start_paused = true)]
async fn a_5xx_is_not_kept_so_a_retry_runs_and_4xx_is_kept() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::new();
    let mut svc = layer.layer(handler(
        Arc::clone(&calls),
        StatusCode::INTERNAL_SERVER_ERROR,
    ));
    send(&mut svc, post(Some("k"), "x")).await;
    let retry = send(&mut svc, post(Some("k"), "x")).await;
    assert!(!retry.replayed());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the retry ran");

    for (status, kept) in [
        (StatusCode::BAD_REQUEST, true),
        (StatusCode::TOO_MANY_REQUESTS, false),
        (StatusCode::SERVICE_UNAVAILABLE, false),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = IdempotencyLayer::new().layer(handler(Arc::clone(&calls), status));
        send(&mut svc, post(Some("k"), "x")).await;
        let again = send(&mut svc, post(Some("k"), "x")).await;
        assert_eq!(again.status, status);
        assert_eq!(again.replayed(), kept, "{status}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            if kept { 1 } else { 2 },
            "{status}"
        );
    }

    // The policy can keep 5xx too.
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .store_server_errors(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::BAD_GATEWAY));
    send(&mut svc, post(Some("k"), "x")).await;
    assert!(send(&mut svc, post(Some("k"), "x")).await.replayed());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_response_over_the_limit_is_passed_through_and_a_repeat_gets_409() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .max_response_bytes(10)
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    let first = send(&mut svc, post(Some("k"), "a long body")).await;
    assert_eq!(
        first.body, "order 1 for a long body",
        "passed through whole"
    );
    let repeat = send(&mut svc, post(Some("k"), "a long body")).await;
    assert_eq!(repeat.status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&repeat.body).contains("cannot be replayed"));
    assert!(repeat.headers.get("retry-after").is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_body_over_the_limit_is_a_413() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .max_request_bytes(4)
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    let a = send(&mut svc, post(Some("k"), "12345")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.problem());
    // Without a key the limit does not apply: the layer reads nothing.
    send(&mut svc, post(None, "12345")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_releases_the_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let panicking = {
        let calls = Arc::clone(&calls);
        service_fn(move |_req: Req| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n > 0, "the first attempt panics");
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        })
    };
    let layer = IdempotencyLayer::new();
    let svc = layer.layer(panicking);
    let crashed = tokio::spawn({
        let mut svc = svc.clone();
        async move { send(&mut svc, post(Some("k"), "x")).await }
    });
    assert!(crashed.await.unwrap_err().is_panic());
    let mut svc = svc;
    let retry = send(&mut svc, post(Some("k"), "x")).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(!retry.replayed());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_request_releases_the_key() {
    let (mock, mut upstream) = tower_test::mock::pair::<Req, Response<Full<Bytes>>>();
    let (layer, handle) = IdempotencyLayer::builder().build_with_handle().unwrap();
    let mut svc = layer.layer(mock);
    upstream.allow(10);
    let mut first = tokio_test::task::spawn({
        let mut svc = svc.clone();
        async move { send(&mut svc, post(Some("k"), "x")).await }
    });
    assert!(first.poll().is_pending());
    let (_req, _respond) = upstream.next_request().await.unwrap();
    drop(first);
    assert_eq!(handle.stats().released, 1);

    let retry = tokio::spawn(async move { send(&mut svc, post(Some("k"), "x")).await });
    let (_req, respond) = upstream.next_request().await.expect("the retry runs");
    respond.send_response(Response::new(Full::new(Bytes::from_static(b"second"))));
    assert_eq!(retry.await.unwrap().body, "second");
}

#[tokio::test(start_paused = true)]
async fn a_running_claim_is_renewed_and_a_crashed_ones_lease_expires() {
    let lease = Duration::from_secs(3);
    let store = MemoryStore::default();
    let build = || {
        IdempotencyLayer::builder()
            .lease(lease)
            .store(store.clone())
            .build()
            .unwrap()
    };
    let (mock, mut upstream) = tower_test::mock::pair::<Req, Response<Full<Bytes>>>();
    upstream.allow(10);
    let mut a = build().layer(mock.clone());
    let mut b = build().layer(mock);

    // A slow handler on instance A: its claim is renewed while it runs.
    let slow = tokio::spawn(async move { send(&mut a, post(Some("k"), "x")).await });
    let (_req, respond) = upstream.next_request().await.unwrap();
    tokio::time::sleep(lease * 4).await;
    assert_eq!(
        send(&mut b, post(Some("k"), "x")).await.status,
        StatusCode::CONFLICT,
        "renewed"
    );
    respond.send_response(Response::new(Full::new(Bytes::from_static(b"slow"))));
    assert_eq!(slow.await.unwrap().body, "slow");

    // Instance A "crashes" while its handler runs: its future is never dropped, never polled
    // again (leaked), so nothing releases or renews the claim.
    let (mock, mut upstream) = tower_test::mock::pair::<Req, Response<Full<Bytes>>>();
    upstream.allow(10);
    let mut crashed = build().layer(mock.clone());
    let mut fut = Box::pin(async move { send(&mut crashed, post(Some("c"), "x")).await });
    assert!(futures_poll(&mut fut).is_pending());
    let (_req, _respond) = upstream.next_request().await.unwrap();
    std::mem::forget(fut);
    let mut b = build().layer(mock);
    assert_eq!(
        send(&mut b, post(Some("c"), "x")).await.status,
        StatusCode::CONFLICT
    );
    tokio::time::sleep(lease).await;
    let taken_over = tokio::spawn(async move { send(&mut b, post(Some("c"), "x")).await });
    let (_req, respond) = upstream
        .next_request()
        .await
        .expect("the lease expired: B runs");
    respond.send_response(Response::new(Full::new(Bytes::from_static(b"b"))));
    assert_eq!(taken_over.await.unwrap().body, "b");
}

fn futures_poll<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    let waker = std::task::Waker::noop();
    std::pin::Pin::new(fut).poll(&mut std::task::Context::from_waker(waker))
}

#[tokio::test(start_paused = true)]
async fn a_kept_response_expires_after_its_ttl() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    send(&mut svc, post(Some("k"), "x")).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(send(&mut svc, post(Some("k"), "x")).await.replayed());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!send(&mut svc, post(Some("k"), "x")).await.replayed());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_memory_store_keeps_its_bounds_and_services_of_one_layer_share_it() {
    let store = MemoryStore::new(3, 1 << 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .store(store.clone())
        .build()
        .unwrap();
    let mut one = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    let mut two = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    send(&mut one, post(Some("k0"), "x")).await;
    assert!(
        send(&mut two, post(Some("k0"), "x")).await.replayed(),
        "one store per layer"
    );
    for i in 1..10 {
        let key = format!("k{i}");
        send(&mut one, post(Some(&key), "x")).await;
        assert!(store.len() <= 3);
    }
    assert_eq!(store.evicted(), 7);
    // The newest keys are still replayed; the oldest were evicted and run again.
    assert!(send(&mut one, post(Some("k9"), "x")).await.replayed());
    assert!(!send(&mut one, post(Some("k0"), "x")).await.replayed());
}

#[tokio::test(start_paused = true)]
async fn the_memory_store_drops_expired_keys_by_itself_and_keeps_its_byte_bound() {
    let store = MemoryStore::new(1_000, 4_096);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::builder()
        .store(store.clone())
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut svc = layer.layer(handler(Arc::clone(&calls), StatusCode::OK));
    for i in 0..5 {
        send(&mut svc, post(Some(&format!("old{i}")), "x")).await;
    }
    assert_eq!(store.len(), 5);
    // Far below both bounds: the expired keys go as a new one arrives, nothing evicted.
    tokio::time::advance(Duration::from_secs(60)).await;
    send(&mut svc, post(Some("fresh"), "x")).await;
    assert_eq!(store.len(), 1, "the expired keys were dropped");
    assert_eq!(store.evicted(), 0);
    // The byte bound: the oldest finished keys go to make room, the newest stay replayable.
    for i in 0..200 {
        send(&mut svc, post(Some(&format!("k{i}")), "x")).await;
        assert!(store.bytes() <= 4_096, "{} bytes", store.bytes());
    }
    assert!(store.evicted() > 0 && store.len() < 200);
    assert!(send(&mut svc, post(Some("k199"), "x")).await.replayed());
    assert!(!send(&mut svc, post(Some("k0"), "x")).await.replayed());
}

#[tokio::test(start_paused = true)]
async fn a_streamed_request_body_is_fingerprinted_whole() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = {
        let calls = Arc::clone(&calls);
        service_fn(move |req: Request<axum::body::Body>| {
            let calls = Arc::clone(&calls);
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Full::new(body)))
            }
        })
    };
    let mut svc = IdempotencyLayer::new().layer(svc);
    let streamed = |chunks: &'static [&'static str]| {
        let body = Chunks(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        );
        Request::post("/orders")
            .header("idempotency-key", "s")
            .body(axum::body::Body::new(body))
            .unwrap()
    };
    let first = svc
        .ready()
        .await
        .unwrap()
        .call(streamed(&["ab", "cd", "ef"]))
        .await
        .unwrap();
    assert_eq!(
        first.into_body().collect().await.unwrap().to_bytes(),
        "abcdef"
    );
    // The same bytes in other chunks: the same request.
    let again = svc
        .ready()
        .await
        .unwrap()
        .call(streamed(&["abc", "def"]))
        .await
        .unwrap();
    assert!(again.headers().contains_key("idempotent-replayed"));
    let other = svc
        .ready()
        .await
        .unwrap()
        .call(streamed(&["abc", "deg"]))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A body of several chunks, one frame each.
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

/// A response body of scripted frames (data, or an error) and a chosen upper size hint.
struct Scripted {
    frames: std::collections::VecDeque<Result<Bytes, &'static str>>,
    upper: Option<u64>,
}

impl http_body::Body for Scripted {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, &'static str>>> {
        std::task::Poll::Ready(
            self.frames
                .pop_front()
                .map(|f| f.map(http_body::Frame::data)),
        )
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = http_body::SizeHint::new();
        if let Some(upper) = self.upper {
            hint.set_upper(upper);
        }
        hint
    }
}

/// An axum handler's shape: it answers `Response<axum::body::Body>`; the body depends on the
/// request's path (`/json`: a body of known size; `/stream`: unknown size; `/lies`: a hint of
/// 4 bytes and 12 sent; `/fails`: an error after a first chunk).
fn axum_handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<Req, Response = Response<axum::body::Body>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |req: Req| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let scripted = |frames: Vec<Result<&'static str, &'static str>>, upper| {
            axum::body::Body::new(Scripted {
                frames: frames
                    .into_iter()
                    .map(|f| f.map(|s| Bytes::from_static(s.as_bytes())))
                    .collect(),
                upper,
            })
        };
        let body = match req.uri().path() {
            "/stream" => scripted(vec![Ok("str"), Ok("eam")], None),
            "/lies" => scripted(vec![Ok("four"), Ok(" and eight")], Some(4)),
            "/fails" => scripted(vec![Ok("half"), Err("the disk went away")], Some(8)),
            _ => axum::body::Body::from(format!("order {n}")),
        };
        let response = Response::builder().status(StatusCode::CREATED).body(body);
        std::future::ready(Ok(response.unwrap()))
    })
}

#[tokio::test(start_paused = true)]
async fn handler_body_answers_with_the_handlers_own_body_type() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (layer, handle) = IdempotencyLayer::builder()
        .handler_body()
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(axum_handler(Arc::clone(&calls)));
    // The service's responses are the handler's own type: no `IdempotencyBody` around it.
    let plain: Response<axum::body::Body> = svc
        .ready()
        .await
        .unwrap()
        .call(request(Method::GET, "/json", Some("k"), ""))
        .await
        .unwrap();
    assert_eq!(
        plain.into_body().collect().await.unwrap().to_bytes(),
        "order 1"
    );

    // A body of known size is kept and replayed, built from the stored bytes.
    let first = send(&mut svc, request(Method::POST, "/json", Some("k"), "a")).await;
    assert_eq!(
        (first.status, &first.body[..]),
        (StatusCode::CREATED, &b"order 2"[..])
    );
    let again = send(&mut svc, request(Method::POST, "/json", Some("k"), "a")).await;
    assert!(again.replayed());
    assert_eq!(
        (again.status, &again.body[..]),
        (StatusCode::CREATED, &b"order 2"[..])
    );
    // The layer's own answers are the handler's type too.
    let other = send(&mut svc, request(Method::POST, "/json", Some("k"), "b")).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other.problem());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(handle.stats().stored, 1);
}

#[tokio::test(start_paused = true)]
async fn handler_body_passes_on_what_it_cannot_keep_and_never_runs_twice() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (layer, handle) = IdempotencyLayer::builder()
        .handler_body()
        .max_response_bytes(8)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(axum_handler(Arc::clone(&calls)));
    let post = |path, key| request(Method::POST, path, Some(key), "x");

    // Unknown size (a stream): passed on untouched, not kept; the key is done.
    let first = send(&mut svc, post("/stream", "s")).await;
    assert_eq!(first.body, "stream");
    let repeat = send(&mut svc, post("/stream", "s")).await;
    assert_eq!(repeat.status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&repeat.body).contains("cannot be replayed"));

    // A hint that fits, and more sent than it said: read whole, passed on, not kept.
    let first = send(&mut svc, post("/lies", "l")).await;
    assert_eq!(first.body, "four and eight");
    assert_eq!(
        send(&mut svc, post("/lies", "l")).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "each ran once");
    assert_eq!(handle.stats().not_stored, 2);

    // A body that fails while read: 500 from the layer, and the key released for a retry.
    let failed = send(&mut svc, post("/fails", "f")).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(failed.problem());
    let retried = send(&mut svc, post("/fails", "f")).await;
    assert_eq!(retried.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!retried.replayed());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the released key ran again"
    );
    assert_eq!(handle.stats().released, 2);
}

#[tokio::test(start_paused = true)]
async fn a_replay_keeps_only_the_headers_safe_to_replay() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = {
        let calls = Arc::clone(&calls);
        service_fn(move |_req: Req| {
            calls.fetch_add(1, Ordering::SeqCst);
            let response = Response::builder()
                .status(StatusCode::CREATED)
                .header("x-order", "1")
                .header("content-type", "text/plain")
                .header("connection", "x-trace")
                .header("x-trace", "of this connection")
                .header("keep-alive", "timeout=5")
                .header("transfer-encoding", "chunked")
                .header("date", "Mon, 07 Dec 2026 22:00:00 GMT")
                .header("content-length", "7")
                .header("set-cookie", "session=secret")
                .body(Full::new(Bytes::from_static(b"order 1")))
                .unwrap();
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    let mut svc = IdempotencyLayer::new().layer(svc);
    let first = send(&mut svc, post(Some("h"), "x")).await;
    assert_eq!(
        first.headers["x-trace"], "of this connection",
        "the first gets all"
    );
    let again = send(&mut svc, post(Some("h"), "x")).await;
    assert!(again.replayed());
    assert_eq!(again.headers["x-order"], "1");
    assert_eq!(again.headers["content-type"], "text/plain");
    for gone in [
        "connection",
        "x-trace",
        "keep-alive",
        "transfer-encoding",
        "date",
        "content-length",
        "set-cookie",
    ] {
        assert!(!again.headers.contains_key(gone), "{gone} was replayed");
    }
    assert_eq!(again.body, "order 1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
