//! The README's simulation table, computed in paused time (no wall clock): an upstream with a
//! heavy tail (1 % of calls 50x slower) that slows down with the load in flight, at several
//! request rates, without hedging, with a fixed delay and with the percentile trigger.
//!
//! `cargo test -p weir-hedge --test simulation -- --nocapture` prints the table.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use weir_hedge::{HedgeBudget, HedgeLayer};

/// 10 ms, or 500 ms for 1 % of calls; each call is slower by 2 % per call in flight.
#[derive(Clone, Debug)]
struct Upstream {
    seed: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service<()> for Upstream {
    type Response = ();
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // xorshift64*: deterministic, so the table is the same on every run.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed.store(x, Ordering::Relaxed);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        let base = if r.is_multiple_of(100) {
            500_000
        } else {
            8_000 + r % 4_000
        };
        let load = self.in_flight.fetch_add(1, Ordering::Relaxed) as u64;
        let micros = base + base * load / 50;
        let guard = InFlight(Arc::clone(&self.in_flight));
        Box::pin(async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_micros(micros)).await;
            Ok(())
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    None,
    Fixed(u64),
    P95,
}

struct Row {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    extra: f64,
}

fn simulate(rate: u64, mode: Mode, requests: usize) -> Row {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let upstream = Upstream {
            seed: Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15)),
            in_flight: Arc::default(),
            calls: Arc::default(),
        };
        let builder = HedgeLayer::builder()
            .max_attempts(2)
            .budget(HedgeBudget::ratio(0.1));
        let builder = match mode {
            Mode::None => builder.max_attempts(1),
            Mode::Fixed(ms) => builder.delay(Duration::from_millis(ms)),
            Mode::P95 => builder.latency_percentile(95.0).min_samples(100),
        };
        let service = builder.build().unwrap().layer(upstream.clone());
        let gap = Duration::from_micros(1_000_000 / rate);
        let mut tasks = Vec::with_capacity(requests);
        for _ in 0..requests {
            let service = service.clone();
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                service.oneshot(()).await.unwrap();
                start.elapsed()
            }));
            tokio::time::sleep(gap).await;
        }
        let mut latencies = Vec::with_capacity(requests);
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Row {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            extra: upstream.calls.load(Ordering::Relaxed) as f64 / requests as f64 - 1.0,
        }
    })
}

/// #21: the simulation behind the README table. Hedging cuts the p99.9 of a heavy-tailed
/// upstream, and the budget keeps the extra load at or under its 10 %.
#[test]
fn hedging_cuts_the_tail_within_the_budget() {
    let requests = 10_000;
    println!("| rate | mode | p50 | p99 | p99.9 | extra load |");
    println!("|---|---|---|---|---|---|");
    for rate in [100, 500, 1000] {
        let none = simulate(rate, Mode::None, requests);
        for (name, mode) in [
            ("no hedging", Mode::None),
            ("fixed 30 ms", Mode::Fixed(30)),
            ("p95", Mode::P95),
        ] {
            let row = if matches!(mode, Mode::None) {
                Row { ..none }
            } else {
                simulate(rate, mode, requests)
            };
            println!(
                "| {rate}/s | {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} % |",
                row.p50.as_secs_f64() * 1e3,
                row.p99.as_secs_f64() * 1e3,
                row.p999.as_secs_f64() * 1e3,
                row.extra * 100.0
            );
            if !matches!(mode, Mode::None) {
                assert!(
                    row.p999 < none.p999 / 2,
                    "{name} at {rate}/s: p99.9 not cut"
                );
                assert!(row.p99 <= none.p99, "{name} at {rate}/s: p99 worse");
                // 10 % of the requests, plus the floor (1/s) and the burst (10).
                let seconds = requests as f64 / rate as f64;
                let allowed = 0.1 + (10.0 + seconds) / requests as f64;
                assert!(
                    row.extra <= allowed,
                    "{name} at {rate}/s: {} extra",
                    row.extra
                );
            }
        }
    }
}
