//! #16.7: adaptive limits recover from a lasting latency change. A deterministic simulation on
//! paused time: a server that serves `KNEE` calls at once at its base latency (beyond that,
//! calls queue); 40 clients load it past the knee for 10 s, then its base latency steps up five
//! times for good and the load drops to what fits (`KNEE` clients in a closed loop). The limit
//! must come back to within 20 % of the capacity (`KNEE` calls at once) within `RECOVERY`, and
//! stay there. `cargo test -p weir-load-shed --test recovery -- --nocapture` prints the limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};
use weir_core::Error;
use weir_load_shed::{Gradient2, Limit, LoadShedLayer, Vegas};

const KNEE: usize = 10;
const BEFORE: Duration = Duration::from_millis(10);
/// The base latency after the step: five times slower, for good.
const AFTER: Duration = Duration::from_millis(50);
const WARM_UP: Duration = Duration::from_secs(10);
/// The documented recovery time: within this after the step, the limit is back.
const RECOVERY: Duration = Duration::from_secs(20);
/// How long after `RECOVERY` the limit is watched.
const WATCH: Duration = Duration::from_secs(10);
const BACKOFF: Duration = Duration::from_millis(10);

/// Runs the scenario; returns the lowest and the mean limit seen over `WATCH`, sampled every
/// 100 ms.
async fn step_up<L: Limit>(algorithm: L) -> (usize, f64) {
    let (layer, handle) = LoadShedLayer::adaptive(algorithm)
        .build_with_handle()
        .unwrap();
    let concurrency = Arc::new(AtomicUsize::new(0));
    let slow = Arc::new(AtomicBool::new(false));
    let server = {
        let (concurrency, slow) = (Arc::clone(&concurrency), Arc::clone(&slow));
        service_fn(move |()| {
            let now = concurrency.fetch_add(1, Ordering::SeqCst) + 1;
            let concurrency = Arc::clone(&concurrency);
            let base = if slow.load(Ordering::SeqCst) {
                AFTER
            } else {
                BEFORE
            };
            async move {
                let queued = u32::try_from(now.max(KNEE)).unwrap();
                sleep(base * queued / u32::try_from(KNEE).unwrap()).await;
                concurrency.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), Error>(())
            }
        })
    };
    let svc = layer.layer(server);
    let start = Instant::now();
    let step = start + WARM_UP;
    let end = step + RECOVERY + WATCH;
    let mut clients = Vec::new();
    for client in 0..40 {
        let svc = svc.clone();
        // Past the step only `KNEE` clients go on: the load fits the capacity.
        let stop = if client < KNEE { end } else { step };
        clients.push(tokio::spawn(async move {
            while Instant::now() < stop {
                if let Err(e) = svc.clone().oneshot(()).await {
                    assert!(Error::find(&*e).is_some_and(Error::is_overloaded));
                    sleep(BACKOFF).await;
                }
            }
        }));
    }
    sleep(WARM_UP).await;
    slow.store(true, Ordering::SeqCst);
    let mut trace = Vec::new();
    let (mut lowest, mut sum, mut samples) = (usize::MAX, 0, 0);
    for tick in 0.. {
        if Instant::now() >= end {
            break;
        }
        sleep(Duration::from_millis(100)).await;
        let limit = handle.limit();
        if Instant::now() >= step + RECOVERY {
            lowest = lowest.min(limit);
            sum += limit;
            samples += 1;
        }
        if tick % 10 == 0 {
            trace.push(limit);
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    eprintln!("limits after the step, each second: {trace:?}");
    (lowest, sum as f64 / f64::from(samples))
}

fn assert_recovered(name: &str, (lowest, mean): (usize, f64)) {
    eprintln!("{name}: lowest {lowest}, mean {mean:.1} over {WATCH:?} after {RECOVERY:?}");
    let capacity = KNEE as f64;
    assert!(
        lowest as f64 >= capacity * 0.8,
        "{name}: the limit fell to {lowest}, below 80 % of the capacity ({KNEE})"
    );
    // With the load fitting, the limit may sit above the capacity (no growth once it is about
    // twice the calls in flight), but it does not run away.
    assert!(
        mean <= capacity * 3.0,
        "{name}: the limit ran away ({mean:.1}) with {KNEE} clients"
    );
}

/// #16.7: Vegas re-measures its no-load RTT (halving the limit for about two round trips when a
/// whole probe window stayed above it), so a lasting latency step does not pin it at a low limit.
#[tokio::test(start_paused = true)]
async fn vegas_recovers_from_a_lasting_latency_step() {
    let result = step_up(Vegas::new().bounds(1, 200).initial(1)).await;
    assert_recovered("vegas", result);
}

/// #16.7: Gradient2 with a floor of 1 learns the slower service at its floor within a few short
/// windows and comes back.
#[tokio::test(start_paused = true)]
async fn gradient2_with_a_floor_of_one_recovers_from_a_lasting_latency_step() {
    let result = step_up(Gradient2::new().bounds(1, 200).initial(1)).await;
    assert_recovered("gradient2", result);
}
