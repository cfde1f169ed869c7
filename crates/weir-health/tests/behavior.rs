//! The registry's behaviour under paused time: timeouts, caching, hysteresis, aggregation and
//! the lifecycle's order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::{advance, sleep};
use weir_core::ConfigError;
use weir_health::{Health, HealthRegistry, Status, Tag, from_fn};

/// A check that counts its runs, takes `delay`, and answers what `status` holds
/// (0 healthy, 1 degraded, 2 unhealthy).
fn counted(
    runs: &Arc<AtomicU32>,
    status: &Arc<AtomicU8>,
    delay: Duration,
) -> weir_health::FnCheck<
    impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Health> + Send>> + Send + Sync + 'static,
> {
    let runs = Arc::clone(runs);
    let status = Arc::clone(status);
    from_fn(move || {
        runs.fetch_add(1, Ordering::SeqCst);
        let status = Arc::clone(&status);
        Box::pin(async move {
            sleep(delay).await;
            match status.load(Ordering::SeqCst) {
                0 => Health::healthy(),
                1 => Health::degraded("slow"),
                _ => Health::unhealthy("down"),
            }
        }) as std::pin::Pin<Box<dyn Future<Output = Health> + Send>>
    })
}

fn knobs() -> (Arc<AtomicU32>, Arc<AtomicU8>) {
    (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU8::new(0)))
}

/// #22.1: a check past its timeout is Unhealthy, "timed out".
#[tokio::test(start_paused = true)]
async fn a_slow_check_times_out() {
    let registry = HealthRegistry::new();
    let (runs, status) = knobs();
    registry
        .register("slow", counted(&runs, &status, Duration::from_secs(10)))
        .ready()
        .timeout(Duration::from_millis(500))
        .add()
        .unwrap();
    let summary = registry.evaluate(&Tag::Ready).await;
    assert_eq!(summary.status(), Status::Unhealthy);
    let report = &summary.checks()[0];
    assert_eq!(report.health().reason(), Some("timed out"));
    assert_eq!(report.duration(), Duration::from_millis(500));
}

/// #22.1: 100 concurrent probes run the check once, and share its result.
#[tokio::test(start_paused = true)]
async fn concurrent_probes_share_one_run() {
    let registry = HealthRegistry::new();
    let (runs, status) = knobs();
    status.store(1, Ordering::SeqCst);
    registry
        .register("db", counted(&runs, &status, Duration::from_millis(50)))
        .ready()
        .add()
        .unwrap();
    let probes = (0..100).map(|_| {
        let registry = registry.clone();
        tokio::spawn(async move { registry.evaluate(&Tag::Ready).await })
    });
    let probes: Vec<_> = probes.collect();
    for probe in probes {
        let summary = probe.await.unwrap();
        assert_eq!(summary.status(), Status::Degraded);
        assert_eq!(summary.checks()[0].health().reason(), Some("slow"));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// #22.1: within the caching period a check does not run again; after it, it does.
#[tokio::test(start_paused = true)]
async fn a_result_is_cached_for_its_period() {
    let registry = HealthRegistry::new();
    let (runs, status) = knobs();
    registry
        .register("db", counted(&runs, &status, Duration::ZERO))
        .ready()
        .cache_for(Duration::from_secs(5))
        .add()
        .unwrap();
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Healthy
    );
    status.store(2, Ordering::SeqCst);
    advance(Duration::from_secs(4)).await;
    for _ in 0..10 {
        assert_eq!(
            registry.evaluate(&Tag::Ready).await.status(),
            Status::Healthy
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Unhealthy
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// #22.1: a probe dropped while running a check does not leave the others waiting forever.
#[tokio::test(start_paused = true)]
async fn a_dropped_runner_hands_over() {
    let registry = HealthRegistry::new();
    let (runs, status) = knobs();
    registry
        .register("db", counted(&runs, &status, Duration::from_millis(100)))
        .ready()
        .add()
        .unwrap();
    let runner = {
        let registry = registry.clone();
        tokio::spawn(async move { registry.evaluate(&Tag::Ready).await })
    };
    tokio::task::yield_now().await;
    let waiter = {
        let registry = registry.clone();
        tokio::spawn(async move { registry.evaluate(&Tag::Ready).await })
    };
    tokio::task::yield_now().await;
    runner.abort();
    let summary = waiter.await.unwrap();
    assert_eq!(summary.status(), Status::Healthy);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// #22.1: three failures in a row to turn Unhealthy, two successes to turn back.
#[tokio::test(start_paused = true)]
async fn hysteresis_thresholds() {
    let registry = HealthRegistry::new();
    let (runs, status) = knobs();
    registry
        .register("db", counted(&runs, &status, Duration::ZERO))
        .ready()
        .cache_for(Duration::ZERO)
        .unhealthy_after(3)
        .healthy_after(2)
        .add()
        .unwrap();
    let mut seen = Vec::new();
    for raw in [0, 2, 2, 2, 0, 0] {
        status.store(raw, Ordering::SeqCst);
        seen.push(registry.evaluate(&Tag::Ready).await.status());
    }
    use Status::{Healthy, Unhealthy};
    assert_eq!(
        seen,
        [Healthy, Healthy, Healthy, Unhealthy, Unhealthy, Healthy]
    );
}

/// #22.1: the worst status wins; Degraded beside Healthy is Degraded, Unhealthy beats both;
/// only the checks of the probe's tag count.
#[tokio::test(start_paused = true)]
async fn the_worst_status_wins() {
    let registry = HealthRegistry::new();
    registry
        .register("ok", from_fn(|| async { Health::healthy() }))
        .ready()
        .live()
        .add()
        .unwrap();
    registry
        .register("cache", from_fn(|| async { Health::degraded("cold") }))
        .ready()
        .add()
        .unwrap();
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Degraded
    );
    registry
        .register("deep", from_fn(|| async { Health::unhealthy("down") }))
        .tag(Tag::custom("deep"))
        .add()
        .unwrap();
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Degraded
    );
    assert_eq!(
        registry.evaluate(&Tag::Live).await.status(),
        Status::Healthy
    );
    assert_eq!(
        registry.evaluate(&Tag::custom("deep")).await.status(),
        Status::Unhealthy
    );
    assert!(registry.check("deep").await.is_some());
    assert!(registry.check("nope").await.is_none());
}

/// #22.3: starting fails readiness and startup; draining fails readiness first while
/// liveness and startup stay healthy.
#[tokio::test(start_paused = true)]
async fn draining_fails_readiness_not_liveness() {
    let registry = HealthRegistry::starting();
    registry
        .register("ok", from_fn(|| async { Health::healthy() }))
        .live()
        .ready()
        .add()
        .unwrap();
    let status = async |tag: Tag| registry.evaluate(&tag).await.status();
    assert_eq!(status(Tag::Startup).await, Status::Unhealthy);
    assert_eq!(status(Tag::Ready).await, Status::Unhealthy);
    assert_eq!(status(Tag::Live).await, Status::Healthy);
    registry.lifecycle().serving();
    assert_eq!(status(Tag::Startup).await, Status::Healthy);
    assert_eq!(status(Tag::Ready).await, Status::Healthy);
    registry.lifecycle().draining();
    assert_eq!(status(Tag::Ready).await, Status::Unhealthy);
    assert_eq!(
        registry
            .evaluate(&Tag::Ready)
            .await
            .lifecycle()
            .unwrap()
            .reason(),
        Some("draining")
    );
    assert_eq!(status(Tag::Live).await, Status::Healthy);
    assert_eq!(status(Tag::Startup).await, Status::Healthy);
}

/// #22.3: `drain` fails readiness at once, and only returns (letting the server stop) after
/// the grace period, while liveness stays healthy throughout.
#[tokio::test(start_paused = true)]
async fn drain_fails_readiness_before_the_server_stops() {
    let registry = HealthRegistry::new();
    let lifecycle = registry.lifecycle().clone();
    let stopped = Arc::new(AtomicU32::new(0));
    let flag = Arc::clone(&stopped);
    let drain = tokio::spawn(async move {
        lifecycle.drain(Duration::from_secs(10)).await;
        flag.store(1, Ordering::SeqCst);
    });
    tokio::task::yield_now().await;
    assert_eq!(
        registry.evaluate(&Tag::Ready).await.status(),
        Status::Unhealthy
    );
    assert_eq!(
        registry.evaluate(&Tag::Live).await.status(),
        Status::Healthy
    );
    advance(Duration::from_secs(9)).await;
    tokio::task::yield_now().await;
    assert_eq!(stopped.load(Ordering::SeqCst), 0);
    advance(Duration::from_secs(1)).await;
    drain.await.unwrap();
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
    assert_eq!(
        registry.evaluate(&Tag::Live).await.status(),
        Status::Healthy
    );
}

/// #22.1: bad registrations are refused with the rule they broke.
#[test]
fn bad_registrations_are_refused() {
    let registry = HealthRegistry::new();
    let ok = || from_fn(|| async { Health::healthy() });
    assert_eq!(
        registry.register("a", ok()).add(),
        Err(ConfigError::missing("health", "tag", ""))
    );
    assert_eq!(
        registry.register("", ok()).ready().add(),
        Err(ConfigError::invalid("health", "name", ""))
    );
    assert_eq!(
        registry
            .register("a", ok())
            .ready()
            .timeout(Duration::ZERO)
            .add(),
        Err(ConfigError::zero("health", "timeout", ""))
    );
    assert_eq!(
        registry
            .register("a", ok())
            .ready()
            .unhealthy_after(0)
            .add(),
        Err(ConfigError::zero("health", "unhealthy_after", ""))
    );
    assert_eq!(
        registry.register("a", ok()).ready().healthy_after(0).add(),
        Err(ConfigError::zero("health", "healthy_after", ""))
    );
    registry.register("a", ok()).ready().add().unwrap();
    let err = registry.register("a", ok()).live().add().unwrap_err();
    assert_eq!(err, ConfigError::duplicate("health", "name", ""));
    assert!(err.to_string().contains("`name`"));
}

/// The registry, its service and its reports cross threads.
#[test]
fn auto_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HealthRegistry>();
    assert_send_sync::<weir_health::HealthService>();
    assert_send_sync::<weir_health::Summary>();
    fn assert_send<T: Send>() {}
    assert_send::<weir_health::ResponseFuture>();
}

/// #22.2: a verbose answer reads the same whether its probe ran the checks or found them in
/// cache (the cached path answers in `call` and writes the body itself); both 503 while a check
/// is unhealthy, and the checks ran once.
#[tokio::test(start_paused = true)]
async fn a_cached_answer_reads_as_the_run_that_filled_the_cache() {
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use weir_health::{HealthService, Verbose};

    let (runs, status) = knobs();
    status.store(2, Ordering::SeqCst);
    let registry = HealthRegistry::new();
    registry
        .register("db", counted(&runs, &status, Duration::from_millis(30)))
        .ready()
        .cache_for(Duration::from_secs(10))
        .add()
        .unwrap();
    registry
        .register(
            "quote \"q\"",
            from_fn(|| async { Health::degraded("a\nb") }),
        )
        .ready()
        .add()
        .unwrap();
    let svc = HealthService::new(registry).verbose(Verbose::Always);
    let probe = async || {
        let res = svc
            .clone()
            .oneshot(Request::get("/readyz").body(()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    };
    let ran = probe().await;
    let cached = probe().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the second probe read the cache"
    );
    assert_eq!(ran.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ran.1,
        concat!(
            r#"{"status":"fail","checks":{"lifecycle":[{"status":"pass"}],"#,
            r#""db":[{"status":"fail","output":"down","durationMs":30.000}],"#,
            r#""quote \"q\"":[{"status":"warn","output":"a\nb","durationMs":0.000}]}}"#
        )
    );
    assert_eq!(cached, ran);
}
