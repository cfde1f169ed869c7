//! New settings through the handle while requests run (#25): attempts and backoff for the
//! requests started after, a request in flight keeping its own, the budget's numbers with its
//! counts and tokens carried over, refused settings, and a multi-thread run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, backoff::Backoff};
use weir_retry::{RetryBudget, RetryLayer, RetrySettings};

/// When each request's attempts started, by request number.
type Seen = Arc<Mutex<HashMap<u32, Vec<Instant>>>>;

/// A service whose every call fails, recording when each request's attempts started.
fn failing() -> (
    impl Service<
        u32,
        Response = u32,
        Error = BoxError,
        Future = std::future::Ready<Result<u32, BoxError>>,
    > + Clone,
    Seen,
) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let svc = service_fn(move |req: u32| {
        record
            .lock()
            .unwrap()
            .entry(req)
            .or_default()
            .push(Instant::now());
        std::future::ready(Err::<u32, BoxError>("reset".into()))
    });
    (svc, seen)
}

fn settings(attempts: u32, backoff_ms: u64) -> RetrySettings {
    let mut settings = RetrySettings::new();
    settings.max_attempts = attempts;
    settings.backoff = Backoff::constant(Duration::from_millis(backoff_ms));
    settings.budget = RetryBudget::unlimited();
    settings
}

fn gaps(calls: &[Instant]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn more_attempts_and_a_new_backoff_apply_to_requests_started_after() {
    let (inner, seen) = failing();
    let (layer, handle) = RetryLayer::builder()
        .settings(settings(3, 100))
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(inner);
    let started_before = tokio::spawn({
        let svc = svc.clone();
        async move { svc.oneshot(1).await }
    });
    // Request 1 is in its first backoff.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(seen.lock().unwrap()[&1].len(), 1);
    handle.apply(settings(5, 1_000)).unwrap();
    assert!(started_before.await.unwrap().is_err());
    svc.clone().oneshot(2).await.unwrap_err();

    let seen = seen.lock().unwrap();
    let ms = Duration::from_millis;
    assert_eq!(
        gaps(&seen[&1]),
        [ms(100), ms(100)],
        "in flight: its 3 attempts and 100 ms"
    );
    assert_eq!(
        gaps(&seen[&2]),
        [ms(1_000); 4],
        "started after: 5 attempts, 1 s apart"
    );
    assert_eq!(handle.settings().max_attempts, 5);
}

#[tokio::test(start_paused = true)]
async fn a_refused_setting_changes_nothing_and_names_the_field() {
    let (_layer, handle) = RetryLayer::builder()
        .budget(RetryBudget::ratio(0.2))
        .build_with_handle()
        .unwrap();
    let before = handle.settings();
    let mut zero = before.clone();
    zero.max_attempts = 0;
    let mut nan = before.clone();
    nan.budget = RetryBudget::ratio(f64::NAN);
    let mut kind = before.clone();
    kind.budget = RetryBudget::grpc_throttle(10, 0.1);
    let mut window = before.clone();
    window.budget = RetryBudget::ratio(0.2).window(Duration::from_secs(30));
    for (settings, field) in [
        (zero, "max_attempts"),
        (nan, "budget.ratio"),
        (kind, "budget"),
        (window, "budget.window"),
    ] {
        let err = handle.apply(settings).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert_eq!(handle.settings(), before);
        assert_eq!(handle.budget().budget(), before.budget);
    }
}

#[tokio::test(start_paused = true)]
async fn a_throttles_tokens_are_carried_over_and_clamped_to_the_new_maximum() {
    let mut first = settings(3, 0);
    first.budget = RetryBudget::grpc_throttle(10, 0.1);
    let (_layer, handle) = RetryLayer::builder()
        .settings(first.clone())
        .build_with_handle()
        .unwrap();
    // 10 tokens; a retry needs more than half of the maximum: 5 available.
    assert_eq!(handle.available(), Some(5));
    let mut smaller = first.clone();
    smaller.budget = RetryBudget::grpc_throttle(4, 0.1);
    handle.apply(smaller).unwrap();
    // 4 tokens (clamped) over a maximum of 4: 2 available.
    assert_eq!(handle.available(), Some(2));
    handle.apply(first).unwrap();
    // Back to a maximum of 10: the 4 tokens are carried over, not refilled.
    assert_eq!(handle.available(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_raised_ratio_allows_more_retries_at_once_over_the_requests_counted() {
    let mut first = settings(3, 0);
    first.budget = RetryBudget::ratio(0.1).min_per_second(0);
    let (_layer, handle) = RetryLayer::builder()
        .settings(first.clone())
        .build_with_handle()
        .unwrap();
    for _ in 0..100 {
        handle.budget().deposit();
    }
    assert_eq!(handle.available(), Some(10));
    let mut raised = first;
    raised.budget = RetryBudget::ratio(0.5).min_per_second(0);
    handle.apply(raised).unwrap();
    assert_eq!(
        handle.available(),
        Some(50),
        "the 100 requests counted are kept"
    );
}

/// Attempt counts of 2 and 4 applied again and again while tasks on four threads send
/// requests to a service that always fails: every request makes exactly 2 or exactly 4
/// attempts (the version it started under), never a mix of the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_applied_while_requests_run_never_mix_two_versions() {
    let (inner, seen) = failing();
    let (layer, handle) = RetryLayer::builder()
        .settings(settings(2, 0))
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(inner);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let requests = Arc::new(AtomicUsize::new(0));
    // Requests made with 2 and with 4 attempts so far.
    let versions: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    for t in 0..8u32 {
        let (svc, stop, requests, versions, seen) = (
            svc.clone(),
            stop.clone(),
            requests.clone(),
            versions.clone(),
            seen.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = t * 1_000_000 + n;
                let _ = svc.clone().oneshot(id).await;
                let attempts = seen.lock().unwrap()[&id].len();
                versions[usize::from(attempts == 4)].fetch_add(1, Ordering::Relaxed);
                requests.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    // Until the tasks sent 4 000 requests under both versions, and at least 1 000
    // applications.
    let mut i = 0u32;
    while i < 1_000
        || requests.load(Ordering::Relaxed) < 4_000
        || versions.iter().any(|n| n.load(Ordering::Relaxed) == 0)
    {
        handle
            .apply(settings(if i.is_multiple_of(2) { 4 } else { 2 }, 0))
            .unwrap();
        i += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let mut counts = [0usize; 5];
    for calls in seen.values() {
        assert!(
            calls.len() == 2 || calls.len() == 4,
            "a request made {} attempts",
            calls.len()
        );
        counts[calls.len()] += 1;
    }
    assert!(
        counts[2] > 0 && counts[4] > 0,
        "both versions ran: {counts:?}"
    );
}
