//! #27.1: `RetryLayer::new` and `RetryLayer::builder()` used directly (not through the weir
//! presets) apply HTTP's idempotency rules to cloneable `http::Request`s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use http::{Method, Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::BoxError;
use weir_retry::{RetryBudget, RetryLayer};

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

/// How many calls the upstream saw for one request through `layer` (the default type
/// parameters: what `new` and `builder().build()` give).
async fn calls_for(layer: &RetryLayer, req: Req) -> u32 {
    let (svc, calls) = failing();
    let result = layer.layer(svc).oneshot(req).await;
    assert!(result.is_err(), "the upstream always fails");
    calls.load(Ordering::SeqCst)
}

/// #27.1: a POST without an `Idempotency-Key` through `RetryLayer::new` is sent once, even
/// though the upstream fails transiently; a GET and a keyed POST are retried.
#[tokio::test(start_paused = true)]
async fn retry_layer_new_sends_a_post_without_a_key_once() {
    let layer = RetryLayer::new(3);
    assert_eq!(calls_for(&layer, request(Method::POST, None)).await, 1);
    assert_eq!(calls_for(&layer, request(Method::PATCH, None)).await, 1);
    assert_eq!(
        calls_for(&layer, request(Method::POST, Some("order-7"))).await,
        3
    );
    assert_eq!(calls_for(&layer, request(Method::GET, None)).await, 3);
    assert_eq!(calls_for(&layer, request(Method::PUT, None)).await, 3);
}

/// #27.1: the builder's defaults apply the same rules; `retry_non_idempotent()` is the
/// opt-in that retries a POST without a key.
#[tokio::test(start_paused = true)]
async fn the_builder_defaults_send_a_post_once_unless_opted_in() {
    let layer = RetryLayer::builder()
        .max_attempts(4)
        .budget(RetryBudget::unlimited())
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
        .replay(weir_retry::IdempotentReplay::new().retry_put_delete(false))
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
/// tuple borrowing a `&str`, goes through the default retry (`IdempotentReplay` in `Auto` mode)
/// and is retried.
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

/// #17.2: a request type of the user's own, with no impl of any weir trait, is retried by
/// `IdempotentReplay::plain()` (the default replay, `Auto`, does not build for it); in `Http`
/// mode the rules are the default's.
#[tokio::test(start_paused = true)]
async fn a_request_type_of_your_own_is_retried_in_plain_mode() {
    use weir_retry::IdempotentReplay;

    #[derive(Clone, Debug)]
    struct Query(u32);

    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |Query(id): Query| {
        seen.fetch_add(id, Ordering::SeqCst);
        std::future::ready(Err::<u32, BoxError>(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
        ))
    });
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .replay(IdempotentReplay::plain())
        .build()
        .unwrap();
    assert!(layer.layer(svc).oneshot(Query(1)).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let http = IdempotentReplay::http();
    assert!(!http.may_retry(&request(Method::POST, None)));
    assert!(http.may_retry(&request(Method::GET, None)));
}
