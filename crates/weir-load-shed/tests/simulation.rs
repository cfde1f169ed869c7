//! Deterministic simulations on paused time: a server whose latency rises past a concurrency
//! knee, driven by a closed loop of clients; each adaptive algorithm must settle near the knee,
//! and under constant timeouts fall to its floor instead of growing. The figures printed here
//! are the ones in the README (`cargo test -p weir-load-shed --test simulation -- --nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};
use weir_core::Error;
use weir_load_shed::{Aimd, Gradient2, Limit, LoadShedHandle, LoadShedLayer, Vegas};

/// Up to `KNEE` calls at once take `BASE`; beyond it, every call waits its turn:
/// latency = BASE x concurrency / KNEE.
const KNEE: usize = 10;
const BASE: Duration = Duration::from_millis(10);
const CLIENTS: usize = 40;
const BACKOFF: Duration = Duration::from_millis(10);
const RUN: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct Report {
    /// The mean limit over the second half of the run.
    mean_limit: f64,
    final_limit: usize,
    max_limit: usize,
    /// Completed calls per second over the run.
    throughput: f64,
    /// Mean latency of completed calls.
    mean_latency_ms: f64,
}

async fn simulate<L: Limit>(algorithm: L, timeouts: bool) -> Report {
    let (layer, handle) = LoadShedLayer::adaptive(algorithm)
        .build_with_handle()
        .unwrap();
    let concurrency = Arc::new(AtomicUsize::new(0));
    let server = {
        let concurrency = Arc::clone(&concurrency);
        service_fn(move |()| {
            let now = concurrency.fetch_add(1, Ordering::SeqCst) + 1;
            let concurrency = Arc::clone(&concurrency);
            async move {
                let latency = if timeouts {
                    Duration::from_secs(1)
                } else {
                    BASE * u32::try_from(now.max(KNEE)).unwrap() / u32::try_from(KNEE).unwrap()
                };
                sleep(latency).await;
                concurrency.fetch_sub(1, Ordering::SeqCst);
                if timeouts {
                    Err::<(), Error>(Error::timeout())
                } else {
                    Ok(())
                }
            }
        })
    };
    let svc = layer.layer(server);
    let start = Instant::now();
    let end = start + RUN;
    let completed = Arc::new(AtomicUsize::new(0));
    let latency_ms = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let svc = svc.clone();
        let (completed, latency_ms) = (Arc::clone(&completed), Arc::clone(&latency_ms));
        clients.push(tokio::spawn(async move {
            while Instant::now() < end {
                let sent = Instant::now();
                match svc.clone().oneshot(()).await {
                    Err(e) if Error::find(&*e).is_some_and(Error::is_overloaded) => {
                        sleep(BACKOFF).await;
                    }
                    _ => {
                        completed.fetch_add(1, Ordering::Relaxed);
                        let ms = sent.elapsed().as_millis();
                        latency_ms.fetch_add(usize::try_from(ms).unwrap(), Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let (sum, samples, max) = watch(&handle, start, end).await;
    for client in clients {
        client.await.unwrap();
    }
    let completed = completed.load(Ordering::Relaxed);
    Report {
        mean_limit: sum as f64 / samples as f64,
        final_limit: handle.limit(),
        max_limit: max,
        throughput: completed as f64 / RUN.as_secs_f64(),
        mean_latency_ms: latency_ms.load(Ordering::Relaxed) as f64 / completed.max(1) as f64,
    }
}

/// Samples the limit every 100 ms: sum and count over the second half, and the maximum.
async fn watch(handle: &LoadShedHandle, start: Instant, end: Instant) -> (usize, usize, usize) {
    let (mut sum, mut samples, mut max) = (0, 0, 0);
    while Instant::now() < end {
        sleep(Duration::from_millis(100)).await;
        let limit = handle.limit();
        max = max.max(limit);
        if Instant::now() >= start + RUN / 2 {
            sum += limit;
            samples += 1;
        }
    }
    (sum, samples, max)
}

fn assert_near_the_knee(name: &str, report: &Report) {
    eprintln!("{name}: {report:?}");
    let knee = KNEE as f64;
    assert!(
        report.mean_limit >= knee * 0.8 && report.mean_limit <= knee * 2.5,
        "{name} settles near the knee ({KNEE}): {report:?}"
    );
    // Most of the server's capacity (KNEE / BASE = 1000/s) is used, at a latency near BASE.
    assert!(report.throughput >= 600.0, "{name}: {report:?}");
    assert!(report.mean_latency_ms <= 30.0, "{name}: {report:?}");
}

#[tokio::test(start_paused = true)]
async fn aimd_settles_near_the_knee() {
    let aimd = Aimd::new()
        .bounds(1, 200)
        .initial(1)
        .timeout(Duration::from_millis(15));
    let report = simulate(aimd, false).await;
    assert_near_the_knee("aimd", &report);
}

#[tokio::test(start_paused = true)]
async fn vegas_settles_near_the_knee() {
    let report = simulate(Vegas::new().bounds(1, 200).initial(1), false).await;
    assert_near_the_knee("vegas", &report);
}

#[tokio::test(start_paused = true)]
async fn gradient2_settles_near_the_knee() {
    let report = simulate(Gradient2::new().bounds(1, 200).initial(1), false).await;
    assert_near_the_knee("gradient2", &report);
}

fn assert_at_the_floor(name: &str, report: &Report, floor: usize, initial: usize) {
    eprintln!("{name} under constant timeouts: {report:?}");
    assert_eq!(report.final_limit, floor, "{name}: {report:?}");
    assert!(report.max_limit <= initial, "{name} never grew: {report:?}");
}

#[tokio::test(start_paused = true)]
async fn constant_timeouts_drive_every_algorithm_to_its_floor_not_its_ceiling() {
    let report = simulate(Aimd::new().bounds(5, 200).initial(50), true).await;
    assert_at_the_floor("aimd", &report, 5, 50);
    let report = simulate(Vegas::new().bounds(5, 200).initial(50), true).await;
    assert_at_the_floor("vegas", &report, 5, 50);
    let report = simulate(Gradient2::new().bounds(5, 200).initial(50), true).await;
    assert_at_the_floor("gradient2", &report, 5, 50);
}
