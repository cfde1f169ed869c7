//! weir-chaos on the happy path against the bare service: the layer disabled (what production
//! pays for having it in the stack: one atomic load), enabled with every probability at zero
//! (the selection and the rolls of an enabled layer that leaves the request alone). Each on 1
//! and 2 threads, with allocations per call. Then the same disabled layer where it goes, innermost
//! in a stack: `weir::ClientStack` over the bare service, with and without it in the stack's
//! chaos slot (`ClientStack::chaos`); and the stack a `weir::ClientConfig` file builds, without
//! a `[chaos]` table (an empty `OptionalChaosLayer` in the slot) and with one (built disabled).
//!
//! `cargo bench --bench chaos -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use weir::ClientStack;
use weir_chaos::{ChaosLayer, Latency};

use crate::support::{Bench, bare};

fn chaos(c: &mut Criterion) {
    let mut bench = Bench::new(c, "chaos");
    bench.service("service_fn", bare);
    bench.service("weir-chaos-disabled", || {
        ChaosLayer::builder()
            .latency(1.0, Latency::fixed(Duration::from_millis(1)))
            .disabled()
            .build()
            .expect("valid chaos")
            .layer(bare())
    });
    bench.service("weir-chaos-enabled-zero", || {
        ChaosLayer::builder()
            .latency(0.0, Latency::fixed(Duration::from_millis(1)))
            .behaviour(0.0, |_: &mut u64| {})
            .seed(1)
            .build()
            .expect("valid chaos")
            .layer(bare())
    });
    bench.service("weir-client", || {
        ClientStack::builder().build().expect("valid").layer(bare())
    });
    bench.service("weir-client-chaos-disabled", || {
        let chaos = ChaosLayer::builder()
            .latency(1.0, Latency::fixed(Duration::from_millis(1)))
            .disabled()
            .build()
            .expect("valid chaos");
        ClientStack::builder()
            .build()
            .expect("valid")
            .chaos(chaos)
            .layer(bare())
    });
    // The stacks a configuration file builds: a `ClientConfig` without a `[chaos]` table has an
    // empty `OptionalChaosLayer` in the slot (the transport called directly, in the chaos
    // future's pass-through state); with one, its layer is built disabled.
    bench.service("weir-client-config", || {
        let config: weir::ClientConfig = toml::from_str("").expect("valid file");
        config.build().expect("valid").layer(bare())
    });
    bench.service("weir-client-config-chaos-disabled", || {
        let config: weir::ClientConfig =
            toml::from_str("[chaos]\nlatency = 1.0").expect("valid file");
        config.build().expect("valid").layer(bare())
    });
    bench.finish();
}

criterion_group!(benches, chaos);
criterion_main!(benches);
