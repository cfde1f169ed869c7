//! weir-rate-limit under a flood of 1 000 000 distinct keys (spoofed addresses): memory per key,
//! the bound of `max_keys`, and the return to baseline once the keys are idle, measured with a
//! counting allocator (live bytes).
//!
//! This is a test of the root package because installing a `#[global_allocator]` needs `unsafe`,
//! which the workspace forbids in every crate and this package only denies (see the root
//! Cargo.toml and `benches/support/mod.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_rate_limit::{Quota, RateLimitLayer};

static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

#[allow(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; every method only forwards to System"
)]
// SAFETY: every method forwards its arguments unchanged to `System`; counting only touches an
// atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
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
    assert!(per_key < 72.0, "{per_key} bytes per key");

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

    // 2. The bound: at most `max_keys` keys, whatever the flood. (Kept small here: while the
    // map is full, weir-core's `KeyedMap` sweeps a shard on every new key, which is slow in a
    // debug build.)
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
        "bounded: {} keys stored, {grown} bytes, {refused} requests of new keys refused by the shared overflow state",
        handle.keys()
    );
    assert!(handle.keys() <= max_keys as usize, "{} keys", handle.keys());
    assert!(grown < 10_064 * 72, "{grown} bytes");
    // Past the bound, new keys share one state: the flood is limited as one client.
    assert!(refused >= flood - max_keys - 10, "{refused} refused");
}
