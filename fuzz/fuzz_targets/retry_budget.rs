//! The retry budget (weir-retry's `SharedBudget`), structure-aware: random budgets, then random
//! requests (deposits), retries asked for (withdrawals), outcomes and times, on tokio's paused
//! clock, against reference models of the documented rules (`RetryBudget`'s docs):
//!
//! - `grpc_throttle(max_tokens, token_ratio)` (gRFC A6), exactly: the count starts at
//!   `max_tokens`, a transient failure (or "do not retry") takes 1, a success gives back
//!   `token_ratio` (to three decimal places), never below 0 nor above `max_tokens`; a retry is
//!   allowed exactly while the count is above `max_tokens / 2`, and `available()` is how many
//!   failures that leaves;
//! - `ratio(r)`: a retry granted never makes the retries of the last `window` exceed
//!   `min_per_second × window + r × requests in the window` (the requests counted at the time
//!   they were made); one refused always had the floor spent; `available()` lies between what
//!   the floor and what the whole allowance leave; with the clock still in its first tenth of a
//!   window (no deposit can count in a stale slot), exactly at the documented point.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use weir_core::wire::ServerHint;
use weir_core::{Failure, Outcome};
use weir_retry::{RetryBudget, SharedBudget};

#[derive(Arbitrary, Debug)]
struct Input {
    throttle: bool,
    /// `max_tokens`, or `min_per_second`.
    amount: u16,
    /// `token_ratio` or `ratio`, in thousandths.
    ratio_milli: u16,
    window_s: u8,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Deposit(u8),
    Withdraw,
    Record(Recorded),
    /// Milliseconds.
    Advance(u16),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Recorded {
    Success,
    Transient,
    Permanent,
    DoNotRetry,
    Throttled,
    Ignored,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

fn outcome(recorded: Recorded) -> Outcome {
    match recorded {
        Recorded::Success => Outcome::Success,
        Recorded::Transient => Outcome::Failure(Failure::transient()),
        Recorded::Permanent => Outcome::Failure(Failure::permanent()),
        Recorded::DoNotRetry => {
            Outcome::Failure(Failure::permanent().with_hint(Some(ServerHint::DoNotRetry)))
        }
        // What a layer records: `Outcome::for_upstream`, so a throttled failure counts neither
        // way.
        Recorded::Throttled => Outcome::Failure(Failure::throttled()).for_upstream(),
        Recorded::Ignored => Outcome::Ignored,
    }
}

fuzz_target!(|input: Input| {
    runtime().block_on(async {
        if input.throttle {
            throttle(&input).await;
        } else {
            ratio(&input).await;
        }
    });
});

async fn throttle(input: &Input) {
    let max_tokens = u32::from(input.amount % 1000) + 1;
    let milli = u64::from(input.ratio_milli % 5000) + 1;
    let budget = SharedBudget::new(RetryBudget::grpc_throttle(
        max_tokens,
        milli as f64 / 1000.0,
    ))
    .unwrap();
    let max = u64::from(max_tokens) * 1000;
    let mut tokens = max;
    for step in input.steps.iter().take(300) {
        match *step {
            Step::Deposit(n) => (0..n % 4).for_each(|_| budget.deposit()),
            Step::Withdraw => {
                assert_eq!(budget.withdraw(), tokens > max / 2, "{tokens} of {max}");
            }
            Step::Record(recorded) => {
                budget.record(&outcome(recorded));
                match recorded {
                    Recorded::Success => tokens = (tokens + milli).min(max),
                    Recorded::Transient | Recorded::DoNotRetry => {
                        tokens = tokens.saturating_sub(1000);
                    }
                    Recorded::Permanent | Recorded::Throttled | Recorded::Ignored => {}
                }
            }
            Step::Advance(ms) => tokio::time::advance(Duration::from_millis(u64::from(ms))).await,
        }
        let available = budget.available().expect("a throttle is limited");
        assert_eq!(
            available,
            tokens.saturating_sub(max / 2).div_ceil(1000),
            "{tokens} of {max} (ratio {milli}/1000) after {step:?}",
        );
        assert!(available <= max_tokens.div_ceil(2).into());
    }
}

async fn ratio(input: &Input) {
    let min_per_second = u64::from(input.amount % 20);
    let milli = u64::from(input.ratio_milli % 2000);
    let window = Duration::from_secs(u64::from(input.window_s % 60) + 1);
    let budget = SharedBudget::new(
        RetryBudget::ratio(milli as f64 / 1000.0)
            .min_per_second(min_per_second as u32)
            .window(window),
    )
    .unwrap();
    let start = tokio::time::Instant::now();
    let slot = window / 10;
    let epoch = || (start.elapsed().as_nanos() / slot.as_nanos()) as u64;
    let floor = min_per_second * window.as_secs();
    // The epoch (tenth of a window) of every request and every retry granted.
    let mut requests: Vec<u64> = Vec::new();
    let mut retries: Vec<u64> = Vec::new();
    let in_window = |events: &[u64], now: u64| events.iter().filter(|&&e| now - e < 10).count();
    for step in input.steps.iter().take(300) {
        let now = epoch();
        match *step {
            Step::Deposit(n) => (0..n % 40).for_each(|_| {
                budget.deposit();
                requests.push(now);
            }),
            Step::Withdraw => {
                let spent = in_window(&retries, now) as u64;
                let allowance = floor + in_window(&requests, now) as u64 * milli / 1000;
                let granted = budget.withdraw();
                if granted {
                    assert!(
                        spent < allowance,
                        "{spent} retries of {allowance} and one more"
                    );
                    retries.push(now);
                } else {
                    assert!(
                        spent >= floor,
                        "refused with {spent} of the floor {floor} spent"
                    );
                }
                if now == 0 {
                    assert_eq!(granted, spent < allowance, "{spent} of {allowance}");
                }
            }
            Step::Record(recorded) => budget.record(&outcome(recorded)),
            Step::Advance(ms) => tokio::time::advance(Duration::from_millis(u64::from(ms))).await,
        }
        let now = epoch();
        let spent = in_window(&retries, now) as u64;
        let allowance = floor + in_window(&requests, now) as u64 * milli / 1000;
        let available = budget.available().expect("a ratio is limited");
        assert!(
            floor.saturating_sub(spent) <= available
                && available <= allowance.saturating_sub(spent),
            "{available} available: floor {floor}, allowance {allowance}, spent {spent}",
        );
        if now == 0 {
            assert_eq!(available, allowance.saturating_sub(spent));
        }
    }
}
