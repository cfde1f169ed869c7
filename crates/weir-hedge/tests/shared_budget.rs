//! #21: hedges and retries drawing on one budget (weir-retry's `SharedBudget`): hedges that
//! spend it stop retries, and retries that spend it stop hedges.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower::{Layer, ServiceExt, service_fn};
use weir_core::{BoxError, backoff::Backoff};
use weir_hedge::HedgeLayer;
use weir_retry::{RetryBudget, RetryLayer, SharedBudget};

const MS: Duration = Duration::from_millis(1);

/// A ratio budget with no ratio and a floor of 1 per second over 10 s: 10 retries or hedges in
/// all, whoever spends them.
fn ten() -> SharedBudget {
    SharedBudget::new(RetryBudget::ratio(0.0).min_per_second(1)).unwrap()
}

/// An upstream that answers after 50 ms, counting its calls.
fn slow(
    calls: &Arc<AtomicU32>,
) -> impl tower::Service<(), Response = u32, Error = BoxError> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(50 * MS).await;
            Ok::<_, BoxError>(7)
        }
    })
}

/// An upstream that fails at once, counting its calls.
fn failing(
    calls: &Arc<AtomicU32>,
) -> impl tower::Service<(), Response = u32, Error = BoxError> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<u32, BoxError>("connection reset".into()))
    })
}

#[tokio::test(start_paused = true)]
async fn hedges_that_spend_the_budget_stop_retries() {
    let budget = ten();
    let (hedge, hedges) = HedgeLayer::builder()
        .delay(10 * MS)
        .shared_budget(budget.clone())
        .build_with_handle()
        .unwrap();
    let (retry, retries) = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS))
        .shared_budget(budget.clone())
        .build_with_handle()
        .unwrap();

    // Ten slow requests: each is hedged once, spending the whole budget.
    let calls = Arc::new(AtomicU32::new(0));
    let hedged = hedge.layer(slow(&calls));
    for _ in 0..10 {
        assert_eq!(hedged.clone().oneshot(()).await.unwrap(), 7);
    }
    assert_eq!(hedges.hedges_sent(), 10);
    assert_eq!(budget.available(), Some(0));

    // A failing call behind the retry layer is not retried: the hedges took the budget.
    let calls = Arc::new(AtomicU32::new(0));
    assert!(retry.layer(failing(&calls)).oneshot(()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(retries.budget_exhausted(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_that_spend_the_budget_stop_hedges() {
    let budget = ten();
    let (retry, retries) = RetryLayer::builder()
        .max_attempts(11)
        .backoff(Backoff::constant(MS))
        .shared_budget(budget.clone())
        .build_with_handle()
        .unwrap();
    let (hedge, hedges) = HedgeLayer::builder()
        .delay(10 * MS)
        .shared_budget(budget.clone())
        .build_with_handle()
        .unwrap();

    // One failing call, retried ten times: the budget is spent.
    let calls = Arc::new(AtomicU32::new(0));
    assert!(retry.layer(failing(&calls)).oneshot(()).await.is_err());
    assert_eq!(retries.retries(), 10);
    assert_eq!(hedges.budget_available(), Some(0));

    // A slow call is not hedged: the retries took the budget.
    let calls = Arc::new(AtomicU32::new(0));
    assert_eq!(hedge.layer(slow(&calls)).oneshot(()).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(hedges.hedges_sent(), 0);
    assert_eq!(hedges.budget_exhausted(), 1);
}

/// #21.2: gRFC A6's retry throttling applies to hedges. With a `grpc_throttle` budget, every
/// attempt's outcome moves the tokens: failing attempts (the primaries' and the hedges') take
/// them until no hedge is allowed, and successes give them back.
#[tokio::test(start_paused = true)]
async fn failing_attempts_throttle_further_hedges() {
    // 10 tokens; hedging allowed while above 5; a success gives back half a token.
    let budget = SharedBudget::new(RetryBudget::grpc_throttle(10, 0.5)).unwrap();
    let (hedge, hedges) = HedgeLayer::builder()
        .delay(10 * MS)
        .max_attempts(2)
        .shared_budget(budget.clone())
        .build_with_handle()
        .unwrap();
    assert_eq!(budget.available(), Some(5));

    // Each failing request: its primary fails (a token), its hedge is sent at once and fails
    // (another). After two requests 6 tokens are left; the third request's primary takes one
    // more and its hedge is refused.
    let calls = Arc::new(AtomicU32::new(0));
    let failing = hedge.layer(failing(&calls));
    for _ in 0..3 {
        assert!(failing.clone().oneshot(()).await.is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(hedges.hedges_sent(), 2);
    assert_eq!(hedges.budget_exhausted(), 1);
    assert_eq!(budget.available(), Some(0));

    // A slow request is not hedged while throttled.
    let calls = Arc::new(AtomicU32::new(0));
    let slow = hedge.layer(slow(&calls));
    assert_eq!(slow.clone().oneshot(()).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(hedges.hedges_sent(), 2);
    assert_eq!(hedges.budget_exhausted(), 2);

    // Its success gave half a token back: above half of the tokens again, the next slow
    // request is hedged.
    assert_eq!(budget.available(), Some(1));
    assert_eq!(slow.oneshot(()).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(hedges.hedges_sent(), 3);
}
