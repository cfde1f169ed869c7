//! The bulkhead's happy path (a permit free) against the bare floor and tower's
//! `ConcurrencyLimit`, on 1 and 2 threads, with allocations per call.
//!
//! `cargo bench --bench bulkhead -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use weir_bulkhead::BulkheadLayer;

use crate::support::{Bench, bare};

fn bulkhead(c: &mut Criterion) {
    let mut bench = Bench::new(c, "bulkhead");
    bench.service("service_fn", bare);
    // Far more permits than the 2 concurrent tasks ever hold: the fast path, never a wait.
    bench.service("tower-concurrency-limit", || {
        ConcurrencyLimitLayer::new(64).layer(bare())
    });
    bench.service("weir-bulkhead", || BulkheadLayer::new(64).layer(bare()));
    bench.service("weir-bulkhead-queueing", || {
        BulkheadLayer::queueing(64, 64, Duration::from_secs(1))
            .build()
            .expect("valid bulkhead")
            .layer(bare())
    });
    bench.service("weir-bulkhead-backpressure", || {
        BulkheadLayer::builder()
            .max_concurrent(64)
            .backpressure()
            .build()
            .expect("valid bulkhead")
            .layer(bare())
    });
    bench.finish();
}

criterion_group!(benches, bulkhead);
criterion_main!(benches);
