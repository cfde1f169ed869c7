//! Three axum servers on 127.0.0.1, each with its own Redis store (its own connection, as three
//! instances of one service would have), sharing one real redis-server, or one real three-node
//! Redis Cluster: one global limit.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::Backend;
use tower::ServiceBuilder;
use weir_core::{key::Header, response::ErrorResponseLayer};
use weir_rate_limit::{Quota, RateLimitLayer};
use weir_redis::FailurePolicy;
use weir_test::http::serve;

const CLIENT: HeaderName = HeaderName::from_static("x-client");

/// One instance: an axum server limited per `x-client` header to 30 per hour, on `backend`.
async fn instance(
    backend: &Backend,
    name: &'static str,
    lease: Option<u32>,
) -> (String, weir_redis::RedisHandle) {
    let mut builder = backend.builder();
    if let Some(batch) = lease {
        builder = builder.lease(batch, Duration::from_secs(10));
    }
    let (store, handle) = builder
        .name(name)
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_secs(1))
        .build_with_handle()
        .expect("valid config");
    let limit = RateLimitLayer::builder()
        .quota(Quota::per_hour(30).named("hourly"))
        .key(Header::new(CLIENT))
        .http()
        .build_with_store(store)
        .expect("valid limit");
    let app = Router::new().route("/", get(|| async { "ok" })).layer(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(limit),
    );
    let (addr, _server) = serve(app).await;
    (format!("http://{addr}/"), handle)
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<Vec<T>>>) -> Vec<T> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all
}

/// 150 concurrent requests over three instances: 120 for "alice", 30 for "bob". Returns the
/// admitted count per client, and the handles.
async fn burst(
    backend: &Backend,
    lease: Option<u32>,
) -> ([usize; 2], Vec<weir_redis::RedisHandle>) {
    let mut urls = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let (url, handle) = instance(backend, name, lease).await;
        urls.push(url);
        handles.push(handle);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    // Six concurrent streams of 25 requests, two per instance.
    let mut tasks = Vec::new();
    for stream in 0..6 {
        let url = urls[stream % 3].clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for k in 0..25 {
                let who = if (stream * 25 + k) % 5 == 4 {
                    "bob"
                } else {
                    "alice"
                };
                let req = Request::get(url.as_str())
                    .header(CLIENT, who)
                    .body(Body::empty())
                    .expect("request");
                let res = client.request(req).await.expect("response");
                let status = res.status();
                let retry_after = res.headers().get("retry-after").cloned();
                let _ = res.into_body().collect().await;
                answers.push((who, status, retry_after));
            }
            answers
        }));
    }
    let mut admitted = [0usize; 2];
    let mut refused = 0usize;
    let answers = futures_join(tasks).await;
    for (who, status, retry_after) in answers {
        match status {
            StatusCode::OK => admitted[usize::from(who == "bob")] += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                // The next unit of an hourly 30 comes within 2 minutes.
                let secs: u64 = retry_after
                    .expect("retry-after")
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                assert!((1..=120).contains(&secs), "{secs}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(refused + admitted[0] + admitted[1], 150);
    (admitted, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sharing_one_redis_admit_the_global_limit_exactly() {
    global_limit_exactly(&Backend::single().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sharing_one_cluster_admit_the_global_limit_exactly() {
    let backend = Backend::cluster().await;
    global_limit_exactly(&backend).await;
    // The two clients' state sits on the nodes owning their slots, and nowhere else.
    let keys = backend.scan("weir:*").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    for (node, key) in keys {
        assert_eq!(backend.owner(key.as_bytes()).await, node, "{key}");
    }
}

async fn global_limit_exactly(backend: &Backend) {
    let (admitted, handles) = burst(backend, None).await;
    // Exactly the global limit per client, whatever instance served the request.
    assert_eq!(admitted, [30, 30]);
    // Every decision came from Redis, none from the failure policy.
    let decided: u64 = handles.iter().map(weir_redis::RedisHandle::decisions).sum();
    assert_eq!(decided, 150);
    assert!(handles.iter().all(|h| h.fallbacks() == 0));
    // Each instance served part of the traffic (the limit is not per instance).
    assert!(handles.iter().all(|h| h.decisions() == 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_mode_stays_within_its_bound_with_fewer_round_trips() {
    lease_within_bound(&Backend::single().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_mode_on_a_cluster_stays_within_its_bound() {
    lease_within_bound(&Backend::cluster().await).await;
}

async fn lease_within_bound(backend: &Backend) {
    let batch = 5;
    let (admitted, handles) = burst(backend, Some(batch)).await;
    // Units are charged to Redis before they are spent: a burst never passes the limit. Leased
    // units still unspent when the burst ends are the only shortfall: at most
    // instances × (batch − 1) per client.
    let shortfall = 3 * (batch as usize - 1);
    for n in admitted {
        assert!((30 - shortfall..=30).contains(&n), "{admitted:?}");
    }
    let leased: u64 = handles.iter().map(weir_redis::RedisHandle::leased).sum();
    let trips: u64 = handles.iter().map(weir_redis::RedisHandle::decisions).sum();
    assert!(leased >= 20, "{leased} decisions from leases");
    assert!(trips < 150 - 20, "{trips} round trips");
    assert!(handles.iter().all(|h| h.fallbacks() == 0));
}

#[tokio::test]
async fn keyed_tiers_and_stacked_quotas_work_unchanged_on_redis() {
    keyed_tiers(&Backend::single().await).await;
}

#[tokio::test]
async fn keyed_tiers_and_stacked_quotas_work_unchanged_on_a_cluster() {
    keyed_tiers(&Backend::cluster().await).await;
}

async fn keyed_tiers(backend: &Backend) {
    use std::convert::Infallible;
    use tower::{Service, ServiceExt};
    use weir_core::{key::ApiKey, key::ApiKeyToken};

    let store = backend
        .builder()
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .expect("valid config");
    let tier_of = |key: &ApiKeyToken| key.as_bytes().starts_with(b"gold").then_some("gold");
    let limit = RateLimitLayer::builder()
        .quota(Quota::per_hour(2))
        .tier(
            "gold",
            [Quota::per_hour(50), Quota::per_day(5).named("daily")],
        )
        .key(ApiKey::new())
        .tier_of(tier_of)
        .build_with_store(store)
        .expect("valid limit");
    let svc = ServiceBuilder::new()
        .layer(limit)
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(()) });
    let admitted = |key: &'static str| {
        let mut svc = svc.clone();
        async move {
            let mut n = 0;
            let mut last = None;
            for _ in 0..8 {
                let req = Request::get("/")
                    .header("x-api-key", key)
                    .body(())
                    .expect("request");
                match svc.ready().await.expect("ready").call(req).await {
                    Ok(()) => n += 1,
                    Err(e) => last = Some(e),
                }
            }
            (n, last)
        }
    };
    assert_eq!(admitted("free-1").await.0, 2);
    assert_eq!(admitted("free-2").await.0, 2);
    // The gold tier's stacked daily quota (5) is the one that refuses, and says so.
    let (n, last) = admitted("gold-1").await;
    assert_eq!(n, 5);
    let error = last.expect("a refusal");
    let error = weir_core::Error::find(&*error).expect("a weir error");
    assert!(error.is_rate_limited());
    assert_eq!(
        error.rate_limit().map(|i| i.policy().to_string()),
        Some("daily".to_owned())
    );
}
