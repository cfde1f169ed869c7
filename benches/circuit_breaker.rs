//! weir's circuit breaker on its closed path against the bare floor: the default breaker
//! (failure rate over a count window of 100 calls), consecutive failures only, a time window
//! (30 s in 10 buckets: it reads the clock on each call) and slow-call tracking (it reads the
//! clock twice per call); each on 1 and 2 threads (two clones of one breaker), with allocations
//! per call. In the same process, as references: tower's `ConcurrencyLimit` (tower has no circuit
//! breaker), failsafe's default breaker (driven through a minimal tower adapter below) and
//! tower-resilience's circuit breaker (failure rate over a count window of 100 calls). The default
//! breaker with weir-core's `Metrics` observer (#19), which never runs on the closed path.
//!
//! `cargo bench --bench circuit_breaker -- --warm-up-time 1 --measurement-time 3`; instructions
//! per call: `scripts/instructions.sh circuit_breaker weir-default`; figures in
//! `benches/README.md` and in weir-circuit-breaker's README (`# Performance`).

mod support;

use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service};
use weir_circuit_breaker::CircuitBreakerLayer;
use weir_core::observer::Metrics;

use crate::support::{Bench, Req, bare};

/// failsafe is not a tower middleware: this adapter wraps each call's future in failsafe's
/// response future, the way its docs drive a future through a breaker.
#[derive(Clone)]
struct Failsafe<S, B> {
    inner: S,
    breaker: B,
}

impl<S, B> Service<Req> for Failsafe<S, B>
where
    S: Service<Req>,
    B: failsafe::futures::CircuitBreaker,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        B::FailurePolicy,
        B::Instrument,
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.breaker.call(self.inner.call(req))
    }
}

fn circuit_breaker(c: &mut Criterion) {
    let mut bench = Bench::new(c, "circuit_breaker");
    bench.service("service_fn", bare);
    // Not a breaker: tower's cheapest shared-state layer (an Arc'd semaphore), as a same-run
    // reference for what one atomic permit and one Arc per call cost on this machine.
    bench.service("tower-concurrency-limit", || {
        ConcurrencyLimitLayer::new(64).layer(bare())
    });
    // failsafe's default: success rate over a time window, or consecutive failures.
    bench.service("failsafe", || Failsafe {
        inner: bare(),
        breaker: failsafe::Config::new().build(),
    });
    bench.service("tower-resilience", || {
        tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
            .failure_rate_threshold(0.5)
            .sliding_window_size(100)
            .build()
            .expect("valid")
            .layer(bare())
    });
    bench.service("weir-default", || CircuitBreakerLayer::new().layer(bare()));
    // #19: weir-core's `Metrics` observer, which runs only on a rejection or a transition: the
    // closed path is the same code (no recorder installed: the facade's no-op).
    let observed = CircuitBreakerLayer::builder()
        .observer(Metrics)
        .build()
        .expect("valid");
    bench.service("weir-default-metrics", || observed.clone().layer(bare()));
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
