//! #27.1: `RetryLayer::new` and `RetryLayer::builder()` used directly (not through the weir
//! presets) never retry a POST: their default replay (`IdempotentReplay` in `Plain` mode, #17.2)
//! sends an `http::Request` once, and `.replay(IdempotentReplay::http())` applies HTTP's
//! idempotency rules to cloneable `http::Request`s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use http::{Method, Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::BoxError;
use weir_retry::{IdempotentReplay, Replay, RetryBudget, RetryLayer};

/// A cloneable HTTP request (`Request<String>` is `Clone`).
type Req = Request<String>;

/// An upstream that fails every call transiently (a connection reset) and counts the calls.
fn failing() -> (
    impl Service<Req, Response = Response<String>, Error = BoxError> + Clone,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_req: Req| {
        seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<Response<String>, BoxError>(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
        ))
    });
    (svc, calls)
}

fn request(method: Method, key: Option<&str>) -> Req {
    let mut builder = Request::builder().method(method).uri("http://shop/orders");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body("{\"item\":7}".to_owned()).unwrap()
}

/// How many calls the upstream saw for one request through `layer`.
async fn calls_for<R>(layer: &RetryLayer<R>, req: Req) -> u32
where
    R: Replay<Req, Request = Req> + Send + Sync + 'static,
    R::Copy: Send + 'static,
    R::Prepare: Send + 'static,
{
    let (svc, calls) = failing();
    let result = layer.layer(svc).oneshot(req).await;
    assert!(result.is_err(), "the upstream always fails");
    calls.load(Ordering::SeqCst)
}

/// #27.1: a POST without an `Idempotency-Key` through `RetryLayer::new` is sent once, even
/// though the upstream fails transiently. The default replay (`Plain`, #17.2) cannot read an
/// `http::Request`'s method, so it sends every HTTP request once; in `Http` mode a GET and a
/// keyed POST are retried.
#[tokio::test(start_paused = true)]
async fn retry_layer_new_sends_a_post_without_a_key_once() {
    let layer = RetryLayer::new(3);
    for (method, key) in [
        (Method::POST, None),
        (Method::PATCH, None),
        (Method::POST, Some("order-7")),
        (Method::GET, None),
    ] {
        assert_eq!(
            calls_for(&layer, request(method.clone(), key)).await,
            1,
            "{method}"
        );
    }

    let http = RetryLayer::builder()
        .max_attempts(3)
        .replay(IdempotentReplay::http())
        .build()
        .unwrap();
    assert_eq!(calls_for(&http, request(Method::POST, None)).await, 1);
    assert_eq!(calls_for(&http, request(Method::PATCH, None)).await, 1);
    assert_eq!(
        calls_for(&http, request(Method::POST, Some("order-7"))).await,
        3
    );
    assert_eq!(calls_for(&http, request(Method::GET, None)).await, 3);
    assert_eq!(calls_for(&http, request(Method::PUT, None)).await, 3);
}

/// #27.1: the builder's default never retries a POST either; in `Http` mode it applies the
/// rules, and `retry_non_idempotent()` is the opt-in that retries a POST without a key.
#[tokio::test(start_paused = true)]
async fn the_builder_defaults_send_a_post_once_unless_opted_in() {
    let plain = RetryLayer::builder()
        .max_attempts(4)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    assert_eq!(calls_for(&plain, request(Method::POST, None)).await, 1);
    let layer = RetryLayer::builder()
        .max_attempts(4)
        .budget(RetryBudget::unlimited())
        .replay(IdempotentReplay::http())
        .build()
        .unwrap();
    assert_eq!(calls_for(&layer, request(Method::POST, None)).await, 1);
    assert_eq!(
        calls_for(&layer, request(Method::POST, Some("order-7"))).await,
        4
    );
    assert_eq!(calls_for(&layer, request(Method::GET, None)).await, 4);

    let opted_in = RetryLayer::builder()
        .max_attempts(4)
        .budget(RetryBudget::unlimited())
        .replay(IdempotentReplay::http())
        .retry_non_idempotent()
        .build()
        .unwrap();
    assert_eq!(calls_for(&opted_in, request(Method::POST, None)).await, 4);
    assert_eq!(
        calls_for(&opted_in, request(Method::CONNECT, None)).await,
        1
    );
}

/// #27.1: a request that is not HTTP is still retried by the defaults.
#[tokio::test(start_paused = true)]
async fn a_request_that_is_not_http_is_still_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_req: u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<u32, BoxError>(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
        ))
    });
    let result = RetryLayer::new(3).layer(svc).oneshot(1).await;
    assert!(result.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// #27.1 "PUT/DELETE as the user chooses": with `retry_put_delete(false)` a PUT or DELETE is
/// retried only with an `Idempotency-Key`, as a POST; GET stays retried.
#[tokio::test(start_paused = true)]
async fn put_and_delete_are_retried_only_with_a_key_when_the_user_says_so() {
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .budget(RetryBudget::unlimited())
        .replay(IdempotentReplay::http().retry_put_delete(false))
        .build()
        .unwrap();
    let (svc, calls) = failing();
    let result = layer.layer(svc).oneshot(request(Method::PUT, None)).await;
    assert!(result.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "PUT without a key: once");
    for (method, key, expected) in [
        (Method::DELETE, None, 1),
        (Method::DELETE, Some("d-1"), 3),
        (Method::PUT, Some("p-1"), 3),
        (Method::GET, None, 3),
    ] {
        let (svc, calls) = failing();
        let result = layer.layer(svc).oneshot(request(method.clone(), key)).await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), expected, "{method} {key:?}");
    }
    let http = weir_retry::HttpReplay::new().retry_put_delete(false);
    let headers = http::HeaderMap::new();
    assert!(!http.is_retryable(&Method::PUT, &headers));
    assert!(weir_retry::HttpReplay::new().is_retryable(&Method::PUT, &headers));
}

/// #17.2: a request type with no HTTP parts and no impl of any weir trait, a `Duration` or a
/// tuple borrowing a `&str`, goes through the default retry (`Plain`) and is retried.
#[tokio::test(start_paused = true)]
async fn a_duration_or_a_tuple_request_needs_no_impl() {
    use std::time::Duration;

    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_req: Duration| {
        seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<u32, BoxError>(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
        ))
    });
    let result = RetryLayer::new(3)
        .layer(svc)
        .oneshot(Duration::from_secs(1))
        .await;
    assert!(result.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let name = String::from("seven");
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |(_id, _name): (u32, &str)| {
        seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<u32, BoxError>(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
        ))
    });
    let result = RetryLayer::new(3)
        .layer(svc)
        .oneshot((7, name.as_str()))
        .await;
    assert!(result.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
