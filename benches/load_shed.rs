//! The load shedder's happy path (below the limit) against the bare floor, tower's `LoadShed`
//! alone and over a `ConcurrencyLimit`, with a fixed limit and with an adaptive one (Gradient2: a clock read and a short
//! lock per call), on 1 and 2 threads, with allocations per call.
//!
//! `cargo bench --bench load_shed -- --warm-up-time 1 --measurement-time 2`

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer as TowerLoadShedLayer;
use weir_load_shed::{Gradient2, LoadShedLayer, Priority};

use crate::support::{Bench, bare};

fn load_shed(c: &mut Criterion) {
    let mut bench = Bench::new(c, "load_shed");
    bench.service("service_fn", bare);
    bench.service("tower-load-shed", || {
        TowerLoadShedLayer::new().layer(bare())
    });
    // tower's way to shed above a concurrency limit: LoadShed over ConcurrencyLimit.
    bench.service("tower-load-shed-concurrency-limit", || {
        TowerLoadShedLayer::new().layer(ConcurrencyLimitLayer::new(64).layer(bare()))
    });
    // Far above the 2 calls ever in flight: never sheds.
    bench.service("weir-load-shed-fixed", || {
        LoadShedLayer::new(64).layer(bare())
    });
    bench.service("weir-load-shed-priority", || {
        LoadShedLayer::builder()
            .max_in_flight(64)
            .priority(|req: &u64| {
                if req.is_multiple_of(2) {
                    Priority::Critical
                } else {
                    Priority::Normal
                }
            })
            .build()
            .expect("valid load shedder")
            .layer(bare())
    });
    bench.service("weir-load-shed-gradient2", || {
        LoadShedLayer::adaptive(Gradient2::new().bounds(64, 1000))
            .build()
            .expect("valid load shedder")
            .layer(bare())
    });
    bench.finish();
}

criterion_group!(benches, load_shed);
criterion_main!(benches);
