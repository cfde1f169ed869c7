//! weir-hedge's happy path (the primary answers on its first poll, before any delay) against
//! the bare service: a fixed delay, the percentile trigger (which records such a primary as
//! latency zero with a few relaxed atomic adds and no clock read; one answer in 64 reads the
//! clock once so the window still rotates), and a one-attempt layer (hedging off). Each on 1 and
//! 2 threads, with allocations per call (the target: none).
//!
//! `cargo bench --bench hedge -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use weir_hedge::HedgeLayer;

use crate::support::{Bench, bare};

fn hedge(c: &mut Criterion) {
    let mut bench = Bench::new(c, "hedge");
    bench.service("service_fn", bare);
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
