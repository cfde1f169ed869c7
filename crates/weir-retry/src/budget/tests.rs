use weir_core::Failure;

use std::time::Duration;

use tokio::time::Instant;
use weir_core::Outcome;

use super::*;

#[test]
fn requests_from_every_thread_count_once() {
    // Ratio 1, no floor: the budget allows exactly as many retries as requests were made,
    // whichever thread (hence stripe) counted them.
    let budget = RetryBudget::ratio(1.0)
        .min_per_second(0)
        .start(Instant::now());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                for _ in 0..100 {
                    budget.deposit_now();
                }
            });
        }
    });
    assert_eq!(budget.available(Instant::now()), Some(300));
}

#[test]
fn ratio_allows_the_floor_plus_the_ratio() {
    let now = Instant::now();
    let budget = RetryBudget::ratio(0.2).min_per_second(1).start(now);
    // Floor: 1/s × 10 s = 10.
    assert_eq!(budget.available(now), Some(10));
    for _ in 0..100 {
        budget.deposit(now);
    }
    assert_eq!(budget.available(now), Some(30));
    let granted = (0..100).filter(|_| budget.withdraw(now)).count();
    assert_eq!(granted, 30);
    assert_eq!(budget.available(now), Some(0));
}

#[test]
fn ratio_forgets_after_the_window() {
    let now = Instant::now();
    let budget = RetryBudget::ratio(0.5).min_per_second(0).start(now);
    for _ in 0..10 {
        budget.deposit(now);
    }
    assert_eq!((0..10).filter(|_| budget.withdraw(now)).count(), 5);
    // Half a window later, still remembered.
    let later = now + Duration::from_secs(5);
    assert!(!budget.withdraw(later));
    // A full window later, both requests and retries are forgotten.
    let much_later = now + Duration::from_secs(10);
    assert_eq!(budget.available(much_later), Some(0));
    budget.deposit(much_later);
    budget.deposit(much_later);
    assert!(budget.withdraw(much_later));
    assert!(!budget.withdraw(much_later));
}

#[tokio::test(start_paused = true)]
async fn deposits_read_the_clock_now_and_then() {
    let budget = RetryBudget::ratio(0.2).start(Instant::now());
    // Long after the layer was built: the first deposit on this thread reads the clock, so
    // the requests count in the current window, not in one long gone.
    tokio::time::advance(Duration::from_secs(35)).await;
    for _ in 0..100 {
        budget.deposit_now();
    }
    assert_eq!(budget.available(Instant::now()), Some(100 + 20));
    // A window later they are forgotten, even though most deposits never read the clock.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(budget.available(Instant::now()), Some(100));
}

#[test]
fn throttle_follows_grfc_a6() {
    let now = Instant::now();
    let budget = RetryBudget::grpc_throttle(10, 0.5).start(now);
    let failure = Outcome::Failure(Failure::transient());
    assert!(budget.withdraw(now));
    // 10 -> 6 tokens: still above 5.
    for _ in 0..4 {
        budget.record(&failure);
    }
    assert!(budget.withdraw(now));
    budget.record(&failure); // 5: not above 5
    assert!(!budget.withdraw(now));
    budget.record(&Outcome::Success); // 5.5
    assert!(budget.withdraw(now));
    // Permanent failures and ignored results do not count.
    budget.record(&Outcome::Failure(Failure::permanent()));
    budget.record(&Outcome::Ignored);
    assert!(budget.withdraw(now));
    // Never above max, never below zero.
    for _ in 0..100 {
        budget.record(&Outcome::Success);
    }
    assert_eq!(budget.available(now), Some(5));
    for _ in 0..100 {
        budget.record(&failure);
    }
    assert_eq!(budget.available(now), Some(0));
    for _ in 0..11 {
        budget.record(&Outcome::Success); // 5.5 tokens
    }
    assert!(budget.withdraw(now));
}

#[test]
fn validation_names_the_rule() {
    let field = |budget: RetryBudget| {
        let err = budget.validate().unwrap_err();
        assert!(err.is_out_of_range(), "{err}");
        err.field().to_owned()
    };
    assert_eq!(field(RetryBudget::ratio(f64::NAN)), "budget.ratio");
    assert_eq!(
        field(RetryBudget::ratio(0.1).window(Duration::from_millis(10))),
        "budget.window"
    );
    assert_eq!(
        field(RetryBudget::grpc_throttle(0, 1.0)),
        "budget.max_tokens"
    );
    assert_eq!(
        field(RetryBudget::grpc_throttle(10, 0.0)),
        "budget.token_ratio"
    );
    assert!(RetryBudget::default().validate().is_ok());
}
