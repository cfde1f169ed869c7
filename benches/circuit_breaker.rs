//! weir's circuit breaker on its closed path against the bare floor: the default breaker
//! (failure rate over a count window of 100 calls), consecutive failures only, a time window
//! (30 s in 10 buckets: it reads the clock on each call) and slow-call tracking (it reads the
//! clock twice per call); each on 1 and 2 threads (two clones of one breaker), with allocations
//! per call; tower's `ConcurrencyLimit` runs in the same process as a reference. tower has no
//! circuit breaker; failsafe and tower-resilience are not dependencies of
//! this workspace and are not measured here.
//!
//! `cargo bench --bench circuit_breaker -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use weir_circuit_breaker::CircuitBreakerLayer;

use crate::support::{Bench, bare};

fn circuit_breaker(c: &mut Criterion) {
    let mut bench = Bench::new(c, "circuit_breaker");
    bench.service("service_fn", bare);
    // Not a breaker: tower's cheapest shared-state layer (an Arc'd semaphore), as a same-run
    // reference for what one atomic permit and one Arc per call cost on this machine.
    bench.service("tower-concurrency-limit", || {
        ConcurrencyLimitLayer::new(64).layer(bare())
    });
    bench.service("weir-default", || CircuitBreakerLayer::new().layer(bare()));
    bench.service("weir-consecutive", || {
        CircuitBreakerLayer::consecutive_failures(5)
            .build()
            .expect("valid")
            .layer(bare())
    });
    bench.service("weir-time-window", || {
        CircuitBreakerLayer::builder()
            .time_window(Duration::from_secs(30), 10)
            .build()
            .expect("valid")
            .layer(bare())
    });
    bench.service("weir-slow-calls", || {
        CircuitBreakerLayer::builder()
            .slow_calls(Duration::from_secs(1), 50.0)
            .build()
            .expect("valid")
            .layer(bare())
    });
    bench.finish();
}

criterion_group!(benches, circuit_breaker);
criterion_main!(benches);
