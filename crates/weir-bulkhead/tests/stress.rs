//! Exactly-once release under load: 100 000 requests on a multi-thread runtime, a fifth of them
//! cancelled at random points (queued, running, between the two), after which every permit is
//! back and nobody is counted as queued; at no point did more calls run than permitted.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};
use weir_bulkhead::{BulkheadHandle, BulkheadLayer};

const REQUESTS: u64 = 100_000;
const BATCH: u64 = 500;
const MAX: usize = 8;

/// xorshift64*: a deterministic stream of pseudo-random numbers per seed.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.max(1);
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Counts the calls running at once and the most ever running; each call yields 0 to 3 times.
#[derive(Clone)]
struct Worker {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Service<u64> for Worker {
    type Response = u64;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<u64, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u64) -> Self::Future {
        let (running, peak) = (Arc::clone(&self.running), Arc::clone(&self.peak));
        Box::pin(async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            // Uncounts the call however it ends, cancellation included.
            let _running = Running(running);
            for _ in 0..(n % 4) {
                tokio::task::yield_now().await;
            }
            Ok(n)
        })
    }
}

struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn hammer<L>(layer: L, handle: BulkheadHandle)
where
    L: Layer<Worker>,
    L::Service: Service<u64, Response = u64> + Clone + Send + 'static,
    <L::Service as Service<u64>>::Future: Send,
    <L::Service as Service<u64>>::Error: Send + std::fmt::Debug,
{
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let worker = Worker {
        running: Arc::clone(&running),
        peak: Arc::clone(&peak),
    };
    let svc = layer.layer(worker);
    let mut next = rng(0x5eed);
    let mut cancelled = 0;
    let mut completed = 0;
    let mut rejected = 0;
    for batch in 0..REQUESTS / BATCH {
        let mut tasks = Vec::with_capacity(BATCH as usize);
        for i in 0..BATCH {
            let n = next();
            let svc = svc.clone();
            tasks.push((
                n,
                tokio::spawn(async move { svc.oneshot(batch * BATCH + i + (n << 40)).await }),
            ));
        }
        for (n, task) in &tasks {
            if n % 5 == 0 {
                // Cancel after a random number of scheduler turns: anywhere in its life.
                for _ in 0..(n >> 8) % 3 {
                    tokio::task::yield_now().await;
                }
                task.abort();
            }
        }
        for (_, task) in tasks {
            match task.await {
                Ok(Ok(_)) => completed += 1,
                Ok(Err(_)) => rejected += 1,
                Err(e) if e.is_cancelled() => cancelled += 1,
                Err(e) => panic!("task failed: {e}"),
            }
        }
    }
    assert_eq!(completed + rejected + cancelled, REQUESTS);
    assert!(cancelled > 1_000, "cancellations happened: {cancelled}");
    assert!(completed > 5_000, "many requests ran: {completed}");
    assert!(
        peak.load(Ordering::SeqCst) <= MAX,
        "never more than MAX at once"
    );
    assert_eq!(running.load(Ordering::SeqCst), 0);
    let stats = handle.stats();
    assert_eq!(stats.available, MAX, "every permit came back: {stats:?}");
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.queued, 0);
    assert_eq!(stats.rejected, rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_bulkhead_releases_every_permit_exactly_once() {
    let (layer, handle) = BulkheadLayer::queueing(MAX, 64, Duration::from_secs(30))
        .build_with_handle()
        .unwrap();
    hammer(layer, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bulkhead_releases_every_permit_exactly_once() {
    let (layer, handle) = BulkheadLayer::builder()
        .max_concurrent(MAX)
        .backpressure()
        .build_with_handle()
        .unwrap();
    hammer(layer, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_bulkhead_releases_every_permit_exactly_once() {
    let (layer, handle) = BulkheadLayer::builder()
        .max_concurrent(MAX)
        .build_with_handle()
        .unwrap();
    hammer(layer, handle).await;
}
