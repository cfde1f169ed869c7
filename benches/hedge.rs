//! weir-hedge's happy path (the primary answers on its first poll, before any delay) against
//! the bare service and its two peers: tower's `hedge` (a latency-percentile trigger over an
//! `hdrhistogram` behind a mutex) and tower-resilience's hedge (a fixed delay). weir's rows: a
//! fixed delay, the percentile trigger (which records such a primary as latency zero with a
//! relaxed load and store into its lane's stripe and no clock read; one answer in 64 of a
//! stripe reads the clock once so the window still rotates), and a one-attempt layer (hedging
//! off). Each on 1 and 2 threads, with allocations per call (weir's target: none).
//!
//! `cargo bench --bench hedge -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use weir_hedge::HedgeLayer;

use crate::support::{Bench, Req, bare};

/// tower's hedge asks its policy for a copy of each request (`None`: not hedged) and whether a
/// hedge may go; every `u64` may.
#[derive(Clone, Copy, Debug)]
struct EveryRequest;

impl tower::hedge::Policy<Req> for EveryRequest {
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(*req)
    }

    fn can_retry(&self, _req: &Req) -> bool {
        true
    }
}

fn hedge(c: &mut Criterion) {
    let mut bench = Bench::new(c, "hedge");
    bench.service("service_fn", bare);
    // tower has no defaults to take: the values weir's percentile trigger defaults to (p95 over
    // a 10 s window, 100 samples before it hedges). Not `Clone`: on 2 threads each task drives
    // its own instance (its own histogram).
    bench.service_per_task("tower-hedge", || {
        tower::hedge::Hedge::new::<Req>(bare(), EveryRequest, 100, 0.95, Duration::from_secs(10))
    });
    // tower-resilience's builder default: a fixed 1 s delay, two attempts.
    bench.service("tower-resilience", || {
        tower_resilience_hedge::HedgeLayer::builder()
            .build()
            .layer(bare())
    });
    bench.service("weir-hedge-fixed", || {
        HedgeLayer::new(Duration::from_millis(50)).layer(bare())
    });
    bench.service("weir-hedge-p95", || {
        HedgeLayer::builder()
            .latency_percentile(95.0)
            .build()
            .expect("valid hedge")
            .layer(bare())
    });
    bench.service("weir-hedge-off", || {
        HedgeLayer::builder()
            .max_attempts(1)
            .build()
            .expect("valid hedge")
            .layer(bare())
    });
    bench.finish();
}

criterion_group!(benches, hedge);
criterion_main!(benches);
