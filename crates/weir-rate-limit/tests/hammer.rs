//! Many tasks on a multi-thread runtime hammering one limiter never admit more than the quota.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tower::{Layer, Service, ServiceExt, service_fn};
use weir_rate_limit::{Quota, RateLimitLayer, TokenBucket};

const TASKS: u64 = 16;
const CALLS: u64 = 2_000;

async fn hammer<S>(svc: S, key_of: fn(u64) -> u64) -> Vec<u64>
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
{
    let per_key: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mut svc = svc.clone();
        let per_key = Arc::clone(&per_key);
        tasks.push(tokio::spawn(async move {
            for i in 0..CALLS {
                let key = key_of(task * CALLS + i);
                let Ok(ready) = svc.ready().await else {
                    continue;
                };
                if ready.call(key).await.is_ok() {
                    per_key[key as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    per_key.iter().map(|n| n.load(Ordering::Relaxed)).collect()
}

fn echo() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = std::future::Ready<Result<u64, Infallible>>,
> + Clone
+ Send
+ 'static {
    service_fn(|n: u64| std::future::ready(Ok(n)))
}

// The quotas refill 1 unit per 86 s: the test takes far less, so the bound is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_limiter_admits_exactly_its_quota_under_contention() {
    let layer = RateLimitLayer::per_day(1_000).build().expect("valid");
    let admitted = hammer(layer.layer(echo()), |_| 0).await;
    assert_eq!(admitted[0], 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_limits_admit_exactly_their_quota_per_key_under_contention() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_day(500))
        .quota(Quota::per_hour(300))
        .key(|k: &u64| Some(*k))
        .build()
        .expect("valid");
    let admitted = hammer(layer.layer(echo()), |i| i % 4).await;
    assert_eq!(admitted, [300, 300, 300, 300]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutex_algorithms_hold_under_contention_too() {
    let layer = RateLimitLayer::per_day(700)
        .algorithm(TokenBucket)
        .build()
        .expect("valid");
    let admitted = hammer(layer.layer(echo()), |_| 0).await;
    assert_eq!(admitted[0], 700);
}
