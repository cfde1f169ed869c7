//! weir-rate-limit under a flood of 1 000 000 distinct keys (spoofed addresses): memory per key,
//! the bound of `max_keys`, and the return to baseline once the keys are idle, measured with a
//! counting allocator (live bytes).
//!
//! The counting allocator is `stats_alloc`'s, installed without `unsafe` code (the workspace
//! forbids it). One test in this binary, so nothing else allocates meanwhile.

use std::alloc::System;
use std::convert::Infallible;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_rate_limit::{Quota, RateLimitLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

const FLOOD: u64 = 1_000_000;

/// One test, so no other test of this binary allocates meanwhile.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_million_key_flood_is_bounded_and_memory_returns_after_idle() {
    let idle = Duration::from_secs(60);
    let echo = service_fn(|n: u64| std::future::ready(Ok::<_, Infallible>(n)));

    // 1. Room for every key: measures the bytes per key, then the return to baseline.
    let (layer, handle) = RateLimitLayer::builder()
        .quota(Quota::per_second(10))
        .key(|ip: &u64| Some(*ip))
        .max_keys(FLOOD as usize * 11 / 10)
        .idle_timeout(idle)
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(echo);
    svc.ready()
        .await
        .expect("ready")
        .call(u64::MAX)
        .await
        .expect("admitted");
    let baseline = live();
    for ip in 0..FLOOD {
        svc.ready()
            .await
            .expect("ready")
            .call(ip)
            .await
            .expect("a new key is admitted");
    }
    let flooded = live() - baseline;
    let per_key = flooded as f64 / FLOOD as f64;
    eprintln!(
        "{FLOOD} keys: {} keys stored, {flooded} bytes, {per_key:.1} bytes/key",
        handle.keys()
    );
    assert_eq!(handle.keys(), FLOOD as usize + 1);
    // A 17-byte slot (key hash, GCRA state, control byte), as governor's keyed store, in a table
    // growing by doubling: 19 to 39 bytes per key with its load.
    assert!(per_key < 40.0, "{per_key} bytes per key");

    // The flood stops; one client keeps coming. Its requests sweep the idle keys away.
    for _ in 0..200 {
        advance(idle).await;
        let _ = svc.ready().await.expect("ready").call(u64::MAX).await;
    }
    let after = live() - baseline;
    eprintln!(
        "after the idle period: {} keys, {after} bytes above baseline",
        handle.keys()
    );
    assert!(handle.keys() <= 1, "{} keys left", handle.keys());
    assert!(after < 64 * 1024, "{after} bytes above baseline");

    // 2. The bound: at most `max_keys` keys, whatever the flood.
    let max_keys: u64 = 10_000;
    let flood: u64 = 200_000;
    let (layer, handle) = RateLimitLayer::builder()
        .quota(Quota::per_second(10))
        .key(|ip: &u64| Some(*ip))
        .max_keys(max_keys as usize)
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(echo);
    let before = live();
    let mut refused = 0;
    for ip in 0..flood {
        if svc.ready().await.expect("ready").call(ip).await.is_err() {
            refused += 1;
        }
    }
    let grown = live() - before;
    eprintln!(
        "bounded: {} keys stored, {grown} bytes, {refused} requests of new keys refused by the overflow states",
        handle.keys()
    );
    assert!(handle.keys() <= max_keys as usize, "{} keys", handle.keys());
    assert!(grown < 10_064 * 40, "{grown} bytes");
    // Past the bound, new keys share the overflow states (one per eight keys of the bound, all
    // made at once, within the bytes above): the flood is limited as that many clients.
    let spread = max_keys / 8;
    assert!(
        refused >= flood - max_keys - 10 * spread,
        "{refused} refused"
    );
}
