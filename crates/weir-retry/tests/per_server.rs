//! #16.4: retry throttling keyed per server name (gRFC A6): one budget per upstream authority
//! behind one retry layer, in a bounded map.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, backoff::Backoff};
use weir_retry::{ReplayBody, RetryBudget, RetryLayer};

type Req = Request<ReplayBody<Full<Bytes>>>;

/// Answers 503 for every call, counting the calls per authority.
fn unavailable() -> (
    impl Service<Req, Response = Response<Full<Bytes>>, Error = BoxError> + Clone,
    Arc<Mutex<HashMap<String, usize>>>,
) {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::clone(&calls);
    let service = service_fn(move |req: Req| {
        let host = req.uri().authority().expect("absolute URI").to_string();
        *seen.lock().unwrap().entry(host).or_insert(0) += 1;
        let res = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Full::new(Bytes::new()))
            .unwrap();
        std::future::ready(Ok(res))
    });
    (service, calls)
}

fn get(authority: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{authority}/items"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// gRFC A6 throttling with 3 tokens: retries stop once the count is at or below 1.5, so a
/// request whose first attempt fails is retried once (3 -> 2 tokens), and after that retry
/// fails too (2 -> 1) nothing more is retried.
fn throttle() -> RetryBudget {
    RetryBudget::grpc_throttle(3, 1.0)
}

#[tokio::test(start_paused = true)]
async fn failures_of_one_server_exhaust_its_budget_only() {
    let (service, calls) = unavailable();
    let (layer, handle) = RetryLayer::http()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(throttle())
        .budget_per_server()
        .build_with_handle()
        .unwrap();
    let client = layer.layer(service);

    // Server A fails: one retry, then A's budget is spent; its next request is sent once.
    for _ in 0..2 {
        let res = client.clone().oneshot(get("a.test")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(calls.lock().unwrap()["a.test"], 2 + 1);
    assert_eq!(handle.budget_exhausted(), 2);

    // Server B, behind the same layer, still has its whole budget: it is retried.
    let res = client.clone().oneshot(get("b.test:8080")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.lock().unwrap()["b.test:8080"], 2);
    assert_eq!(handle.retries(), 2);
    assert_eq!(handle.budget().servers(), 2);
}

#[tokio::test(start_paused = true)]
async fn one_budget_per_layer_is_still_the_default() {
    // The same calls without `budget_per_server`: A's failures spend B's retries too.
    let (service, calls) = unavailable();
    let client = RetryLayer::http()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(throttle())
        .build()
        .unwrap()
        .layer(service);
    for _ in 0..2 {
        client.clone().oneshot(get("a.test")).await.unwrap();
    }
    client.clone().oneshot(get("b.test:8080")).await.unwrap();
    assert_eq!(calls.lock().unwrap()["b.test:8080"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_names_stays_bounded_and_spares_the_known_servers() {
    let (service, calls) = unavailable();
    let (layer, handle) = RetryLayer::http()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(throttle())
        .budget_per_server()
        .max_servers(8)
        .build_with_handle()
        .unwrap();
    let client = layer.layer(service);
    // A known server, with its budget whole.
    let ok =
        service_fn(|_: Req| async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::new()))) });
    let known = RetryLayer::http()
        .shared_budget(handle.budget().clone())
        .budget_per_server()
        .max_servers(8)
        .build()
        .unwrap()
        .layer(ok);
    known.oneshot(get("known.test")).await.unwrap();

    // Ten thousand new server names, each failing.
    for n in 0..10_000 {
        client
            .clone()
            .oneshot(get(&format!("host-{n}.test")))
            .await
            .unwrap();
    }
    assert!(
        handle.budget().servers() <= 8,
        "{}",
        handle.budget().servers()
    );

    // The flood shared one overflow budget; the known server still retries.
    client.clone().oneshot(get("known.test")).await.unwrap();
    assert_eq!(calls.lock().unwrap()["known.test"], 2);
}
