//! A deterministic simulation (paused time, seeded jitter): many clients retrying against one
//! contended resource, for no backoff, exponential backoff without jitter and each jitter mode.
//! It prints total work (calls made) and completion time (when the last client got through);
//! the crate README shows the table. `cargo test -p weir-retry --test simulation -- --nocapture`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};
use weir_core::{BoxError, backoff::Backoff, backoff::Jitter};
use weir_retry::{RetryBudget, RetryLayer};

const CLIENTS: u64 = 100;
/// The resource serves this many calls per slot and refuses the rest.
const CAPACITY: u64 = 10;
const SLOT: Duration = Duration::from_millis(10);
/// Every call takes this long, served or refused.
const LATENCY: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("busy")
    }
}

impl std::error::Error for Busy {}

struct Run {
    calls: u64,
    completion: Duration,
}

async fn simulate(backoff: Backoff) -> Run {
    let start = Instant::now();
    // (slot index, calls admitted in it) packed as slot << 32 | admitted; total calls.
    let slot_state = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let (state, counter) = (Arc::clone(&slot_state), Arc::clone(&calls));
    let resource = service_fn(move |_: u64| {
        counter.fetch_add(1, Ordering::Relaxed);
        let slot = (start.elapsed().as_nanos() / SLOT.as_nanos()) as u64;
        let word = state.load(Ordering::Relaxed);
        let (current, admitted) = (word >> 32, word & 0xFFFF_FFFF);
        let admitted = if current == slot { admitted } else { 0 };
        let served = admitted < CAPACITY;
        if served {
            state.store((slot << 32) | (admitted + 1), Ordering::Relaxed);
        }
        async move {
            tokio::time::sleep(LATENCY).await;
            if served {
                Ok(())
            } else {
                Err::<(), BoxError>(Busy.into())
            }
        }
    });
    let layer = RetryLayer::builder()
        .max_attempts(10_000)
        .backoff(backoff)
        .budget(RetryBudget::unlimited())
        .seed(2026)
        .build()
        .expect("valid");
    let svc = layer.layer(resource);
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..CLIENTS {
        clients.spawn(svc.clone().oneshot(id));
    }
    let mut completion = Duration::ZERO;
    while let Some(done) = clients.join_next().await {
        done.expect("client task")
            .expect("every client gets through");
        completion = completion.max(start.elapsed());
    }
    Run {
        calls: calls.load(Ordering::Relaxed),
        completion,
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_contending_clients() {
    let base = Duration::from_millis(10);
    let cap = Duration::from_secs(1);
    let exponential = Backoff::exponential(base).max(cap);
    let strategies = [
        ("no backoff", Backoff::constant(Duration::ZERO)),
        ("exponential, no jitter", exponential),
        ("exponential, full jitter", exponential.jitter(Jitter::Full)),
        (
            "exponential, equal jitter",
            exponential.jitter(Jitter::Equal),
        ),
        (
            "exponential, ±20 % jitter",
            exponential.jitter(Jitter::Proportional(20)),
        ),
        (
            "decorrelated jitter",
            exponential.jitter(Jitter::Decorrelated),
        ),
    ];
    println!(
        "{CLIENTS} clients, capacity {CAPACITY} calls per {} ms, {} ms per call, base 10 ms, cap 1 s\n",
        SLOT.as_millis(),
        LATENCY.as_millis()
    );
    println!("| strategy | calls (work) | completion |");
    println!("|---|---:|---:|");
    let mut runs = Vec::new();
    for (name, backoff) in strategies {
        let run = simulate(backoff).await;
        println!(
            "| {name} | {} | {} ms |",
            run.calls,
            run.completion.as_millis()
        );
        runs.push((name, run));
    }
    let work = |name: &str| runs.iter().find(|(n, _)| *n == name).unwrap().1.calls;
    let time = |name: &str| runs.iter().find(|(n, _)| *n == name).unwrap().1.completion;
    // Every client got through in every run; the capacity bounds the best completion time.
    for (name, run) in &runs {
        assert!(run.calls >= CLIENTS, "{name}");
        assert!(run.completion >= SLOT * 9, "{name}");
    }
    // Retrying at once does the most work; backing off without jitter keeps clients in
    // lock-step, so it is slower than any jittered strategy and does more work than full jitter.
    assert!(runs.iter().all(|(_, run)| run.calls <= work("no backoff")));
    assert!(work("exponential, full jitter") < work("exponential, no jitter"));
    assert!(time("exponential, full jitter") < time("exponential, no jitter"));
    assert!(time("decorrelated jitter") < time("exponential, no jitter"));
}

#[tokio::test(start_paused = true)]
async fn the_simulation_is_deterministic() {
    let backoff = Backoff::exponential(Duration::from_millis(10))
        .max(Duration::from_secs(1))
        .jitter(Jitter::Full);
    let (a, b) = (simulate(backoff).await, simulate(backoff).await);
    assert_eq!((a.calls, a.completion), (b.calls, b.completion));
}
