//! The floor and tower's own layers: a bare `service_fn` answering from an `async` block (and,
//! for reference, one answering with `std::future::ready`, the floor before #18), then tower's `ConcurrencyLimit`,
//! `RateLimit` (a rate so high it never waits), `Timeout` and `LoadShed` around it, and a boxed
//! service for contrast; each on 1 and 2 threads, each with its allocations per call. Every weir
//! bench compares against these.
//!
//! `cargo bench --bench baseline -- --warm-up-time 1 --measurement-time 3`; see benches/README.md.

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower::limit::{ConcurrencyLimitLayer, RateLimitLayer};
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;

use crate::support::{Bench, bare, bare_ready};

fn baseline(c: &mut Criterion) {
    let mut bench = Bench::new(c, "baseline");
    bench.service("service_fn", bare);
    // Reference only: the `Ready` floor every bench used before #18.
    bench.service("service_fn-ready", bare_ready);
    // Far more permits than the 2 concurrent tasks ever hold: the fast path, never a wait.
    bench.service("tower-concurrency-limit", || {
        ConcurrencyLimitLayer::new(64).layer(bare())
    });
    // tower's RateLimit is not Clone (it owns its Sleep): one instance per task on 2 threads.
    bench.service_per_task("tower-rate-limit", || {
        RateLimitLayer::new(u64::MAX, Duration::from_secs(1)).layer(bare())
    });
    bench.service("tower-timeout", || {
        TimeoutLayer::new(Duration::from_secs(30)).layer(bare())
    });
    bench.service("tower-load-shed", || LoadShedLayer::new().layer(bare()));
    // Not a floor: what one `Box<dyn Future>` per call costs (weir's layers never box), and
    // proof that the allocation counter counts.
    bench.service("tower-boxed", || BoxCloneSyncService::new(bare()));
    bench.finish();
}

criterion_group!(benches, baseline);
criterion_main!(benches);
