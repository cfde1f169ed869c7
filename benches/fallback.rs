//! weir-fallback's happy path (the primary succeeds) against the bare service: a value source
//! (copies nothing from the request), an alternative service (keeps a copy of the request, a
//! `u64` here), and a value with a switch that never fires. Over the floor (an inner service whose
//! future is an `async` block, the shape of a real handler's future, which the fallback's future
//! wraps by value) and, for reference, over a `std::future::ready` floor (the `-ready` rows). Each on 1 and 2 threads, with allocations per call.
//!
//! `cargo bench --bench fallback -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use weir_fallback::{Cause, FallbackLayer};

use crate::support::{Bench, Req, bare, bare_ready};

fn value(cause: Cause<'_, Req, Infallible>) -> Option<Req> {
    let _ = cause;
    Some(0)
}

fn fallback(c: &mut Criterion) {
    let mut bench = Bench::new(c, "fallback");
    bench.service("service_fn", bare);
    bench.service("weir-fallback-value", || {
        FallbackLayer::builder()
            .value(value)
            .build()
            .expect("valid fallback")
            .layer(bare())
    });
    bench.service("weir-fallback-service", || {
        FallbackLayer::builder()
            .service(bare())
            .build()
            .expect("valid fallback")
            .layer(bare())
    });
    bench.service("weir-fallback-switch", || {
        FallbackLayer::builder()
            .value(value)
            .switch(|req: &Req| *req == u64::MAX)
            .build()
            .expect("valid fallback")
            .layer(bare())
    });
    bench.service("service_fn-ready", bare_ready);
    bench.service("weir-fallback-value-ready", || {
        FallbackLayer::builder()
            .value(value)
            .build()
            .expect("valid fallback")
            .layer(bare_ready())
    });
    bench.finish();
}

criterion_group!(benches, fallback);
criterion_main!(benches);
