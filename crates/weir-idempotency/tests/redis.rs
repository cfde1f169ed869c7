//! #23 integration: two axum instances on one real `redis-server` (weir-redis's harness: a
//! server on a free port that the test can kill), and the declared policy when Redis dies
//! between a claim and its completion. No sleeps: the handler waits on a gate the test opens.

#[path = "../../weir-redis/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Semaphore, mpsc};
use weir_idempotency::{FailurePolicy, IdempotencyLayer, RedisStore};

use crate::support::Redis;

/// A handler that counts its runs, says it entered, and waits for the gate.
#[derive(Clone)]
struct Orders {
    runs: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<()>,
}

impl Orders {
    fn new() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (entered, rx) = mpsc::unbounded_channel();
        let orders = Self {
            runs: Arc::new(AtomicUsize::new(0)),
            gate: Arc::new(Semaphore::new(0)),
            entered,
        };
        (orders, rx)
    }

    fn app(&self, store: RedisStore) -> Router {
        let orders = self.clone();
        let layer = IdempotencyLayer::builder().store(store).build().unwrap();
        Router::new()
            .route(
                "/orders",
                post(move |body: String| {
                    let orders = orders.clone();
                    async move {
                        let n = orders.runs.fetch_add(1, Ordering::SeqCst) + 1;
                        let _ = orders.entered.send(());
                        orders.gate.acquire().await.unwrap().forget();
                        (StatusCode::CREATED, format!("order {n}: {body}"))
                    }
                }),
            )
            .layer(layer)
    }
}

/// A store on `redis`. The round-trip timeout is what a dead Redis costs each request of the
/// kill tests (300 ms); the two-instance test gives 5 s, so a loaded machine's slow round trip
/// is not taken for an outage (its 100 requests would get 503s, not 409s).
fn store(redis: &Redis, policy: FailurePolicy) -> RedisStore {
    store_with_timeout(redis, policy, Duration::from_millis(300))
}

fn store_with_timeout(redis: &Redis, policy: FailurePolicy, timeout: Duration) -> RedisStore {
    RedisStore::builder(redis.url())
        .failure_policy(policy)
        .timeout(timeout)
        .build()
        .unwrap()
}

struct Answer {
    status: StatusCode,
    replayed: bool,
    body: Bytes,
}

async fn send(client: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr, key: &str) -> Answer {
    let req = Request::post(format!("http://{addr}/orders"))
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from_static(b"one book")))
        .unwrap();
    let response = client.request(req).await.expect("the server answers");
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        replayed,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_posts_over_two_instances_run_the_handler_once() {
    let redis = Redis::start().await;
    let (orders, mut entered) = Orders::new();
    let patient = || store_with_timeout(&redis, FailurePolicy::FailClosed, Duration::from_secs(5));
    let (a, _server_a) = weir_test::http::serve(orders.app(patient())).await;
    let (b, _server_b) = weir_test::http::serve(orders.app(patient())).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let (done, mut answers) = mpsc::unbounded_channel();
    for i in 0..100 {
        let addr = if i % 2 == 0 { a } else { b };
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let answer = send(&client, addr, "order-42").await;
            let _ = done.send((addr, answer));
        });
    }
    // One request runs (it waits on the gate); the 99 others are answered 409 meanwhile.
    entered.recv().await.unwrap();
    let mut conflicts = Vec::new();
    while conflicts.len() < 99 {
        let (addr, answer) = answers.recv().await.unwrap();
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{:?} {:?}",
            answer.status,
            answer.body
        );
        conflicts.push(addr);
    }
    orders.gate.add_permits(1);
    let (_, first) = answers.recv().await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body, "order 1: one book");
    assert!(!first.replayed);

    // Every client retries (as weir-retry would after the 409's Retry-After) and gets the
    // same body, from either instance.
    for addr in conflicts {
        let again = send(&client, addr, "order-42").await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert!(again.replayed);
        assert_eq!(again.body, first.body);
    }
    assert_eq!(
        orders.runs.load(Ordering::SeqCst),
        1,
        "the handler ran once"
    );
    assert!(entered.try_recv().is_err());

    // One hash per key, with a TTL, its name a Cluster hash tag around the fixed digest of the
    // default scope (`Global`: as no client key) and `order-42`, SHA-1 of `-`, u64be(8),
    // `order-42`: the name every instance and every version computes.
    let keys = redis.scan("weir:idem:*").await;
    assert_eq!(
        keys,
        ["weir:idem:{06147d6db6c90165c0177665f6095d3ff2f9f809}"],
        "{keys:?}"
    );
    let mut conn = redis.connection().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "every key has a TTL");
}

/// Redis dies while the first request runs (after its claim, before its completion): its
/// client still gets its answer, the completion fails, and a repeat gets what `policy`
/// declares. Returns the repeat and the handler's runs so far.
async fn kill_between_claim_and_completion(
    policy: FailurePolicy,
) -> (Answer, Orders, impl AsyncFnMut() -> Answer) {
    let mut redis = Redis::start().await;
    let (orders, mut entered) = Orders::new();
    let store = store(&redis, policy);
    let (addr, server) = weir_test::http::serve(orders.app(store.clone())).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let first = tokio::spawn({
        let client = client.clone();
        async move { send(&client, addr, "k").await }
    });
    entered.recv().await.unwrap();
    redis.kill();
    orders.gate.add_permits(10);
    let first = first.await.unwrap();
    assert_eq!(
        first.status,
        StatusCode::CREATED,
        "{policy:?}: the first client is answered"
    );
    assert_eq!(store.errors(), 1, "{policy:?}: the completion failed");
    let repeat = async move || {
        let _keep = (&server, &redis);
        send(&client, addr, "k").await
    };
    let answer = repeat().await;
    (answer, orders, repeat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_between_claim_and_completion_fail_closed_answers_503_never_a_second_run() {
    let (repeat, orders, mut again) =
        kill_between_claim_and_completion(FailurePolicy::FailClosed).await;
    assert_eq!(repeat.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(again().await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(orders.runs.load(Ordering::SeqCst), 1, "never a second run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_between_claim_and_completion_fail_open_runs_without_the_store() {
    let (repeat, orders, mut again) =
        kill_between_claim_and_completion(FailurePolicy::FailOpen).await;
    assert_eq!(repeat.status, StatusCode::CREATED);
    assert!(!repeat.replayed);
    assert_eq!(
        orders.runs.load(Ordering::SeqCst),
        2,
        "runs without the store"
    );
    let third = again().await;
    assert_eq!(third.status, StatusCode::CREATED);
    assert!(!third.replayed, "nothing was kept");
    assert_eq!(orders.runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_between_claim_and_completion_local_keeps_the_key_in_this_instance() {
    let (repeat, orders, mut again) = kill_between_claim_and_completion(FailurePolicy::Local).await;
    // The local store claims it (it never saw the first), then replays it.
    assert_eq!(repeat.status, StatusCode::CREATED);
    assert!(!repeat.replayed);
    assert_eq!(orders.runs.load(Ordering::SeqCst), 2);
    let third = again().await;
    assert!(third.replayed);
    assert_eq!(third.body, repeat.body);
    assert_eq!(orders.runs.load(Ordering::SeqCst), 2);
}
