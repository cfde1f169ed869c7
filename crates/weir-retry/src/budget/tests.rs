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
    // Each success gives back exactly the ratio: 6.5, one failure and a half above 5.
    budget.record(&Outcome::Success);
    budget.record(&Outcome::Success);
    assert_eq!(budget.available(now), Some(2));
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
    assert_eq!(
        field(RetryBudget::ratio(0.1).window(Duration::from_secs(61))),
        "budget.window"
    );
    for bound in [1, 60] {
        let budget = RetryBudget::ratio(0.1).window(Duration::from_secs(bound));
        assert!(budget.validate().is_ok(), "{bound} s");
    }
    assert!(RetryBudget::default().validate().is_ok());
}

/// `SharedBudget` spends from the budget it holds, and every clone sees the spending.
#[test]
fn a_shared_budget_spends_and_its_clones_see_it() {
    let budget = SharedBudget::new(RetryBudget::ratio(0.5).min_per_second(0)).unwrap();
    let clone = budget.clone();
    for _ in 0..4 {
        clone.deposit();
    }
    assert_eq!(budget.available(), Some(2));
    assert!(budget.withdraw());
    assert!(clone.withdraw());
    assert!(!budget.withdraw(), "the budget is spent");
    assert_eq!(clone.available(), Some(0));
    assert!(SharedBudget::new(RetryBudget::ratio(-1.0)).is_err());
}

/// Found by the `retry_budget` fuzz target: a ratio or a token ratio with three decimals
/// (`1.001`) was cut to `1.000` (`1.001 × 1000` is `1000.999…` in binary floating point, and
/// `as u64` truncates); both are rounded now.
#[test]
fn ratios_keep_their_three_decimals() {
    let now = Instant::now();
    let budget = RetryBudget::ratio(1.001).min_per_second(0).start(now);
    for _ in 0..1000 {
        budget.deposit(now);
    }
    assert_eq!(budget.available(now), Some(1001));

    let budget = RetryBudget::grpc_throttle(10, 1.001).start(now);
    let failure = Outcome::Failure(Failure::transient());
    budget.record(&failure);
    budget.record(&failure);
    budget.record(&Outcome::Success);
    // 8 tokens, then 9.001: above half (5) by 4.001, so 5 failures until it stops.
    assert_eq!(budget.available(now), Some(5));
}

/// Model tests: a ratio budget's counters on `shuttle`'s atomic word, under shuttle's
/// scheduler, which switches threads at every operation on a counter. Each thread counts its
/// requests in a stripe of its own, as `deposit_now` does; whatever the interleaving, no request
/// and no retry is created or lost, and two retries racing for the last one of the budget are
/// never both granted (both may be refused: take first, then check). A withdrawal reads every
/// slot of every stripe (some 90 scheduling points), too many for an exhaustive search: each race
/// is explored by shuttle's randomized PCT scheduler (500 schedules of depth 3; PCT finds a bug
/// of depth `d` in each schedule with probability at least `1 / (n × k^(d-1))`).
mod model {
    use std::sync::Arc;

    use shuttle::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
    use shuttle::thread;

    use super::super::state::RatioState;
    use super::*;

    type ModelRatio = RatioState<AtomicU64>;

    /// Ratio 1 and no floor: the budget allows one retry per request.
    fn ratio_one(now: Instant) -> Arc<ModelRatio> {
        Arc::new(ModelRatio::new(1.0, 0, Duration::from_secs(60), now))
    }

    /// Two threads count requests in their stripes while a third asks for retries: every
    /// request counts once, every retry granted counts once, and never more retries than
    /// requests.
    fn deposits_and_withdrawals(per_thread: usize) {
        let now = Instant::now();
        let budget = ratio_one(now);
        let epoch = budget.epoch(now);
        let granted = Arc::new(AtomicUsize::new(0));
        let depositors: Vec<_> = (0..2)
            .map(|stripe| {
                let budget = Arc::clone(&budget);
                thread::spawn(move || {
                    for _ in 0..per_thread {
                        budget.deposit_in(stripe, epoch);
                    }
                })
            })
            .collect();
        let retrier = {
            let budget = Arc::clone(&budget);
            let granted = Arc::clone(&granted);
            thread::spawn(move || {
                for _ in 0..per_thread {
                    if budget.withdraw(now) {
                        granted.fetch_add(1, SeqCst);
                    }
                    let retries = budget.retries(epoch);
                    assert!(retries <= budget.requests(epoch) + 1, "{retries} retries");
                }
            })
        };
        for thread in depositors {
            thread.join().expect("a depositor ran");
        }
        retrier.join().expect("the retrier ran");
        let granted = granted.load(SeqCst) as u64;
        assert_eq!(
            budget.requests(epoch),
            2 * per_thread as u64,
            "a request lost"
        );
        assert_eq!(budget.retries(epoch), granted, "a retry created or lost");
        assert!(granted <= 2 * per_thread as u64);
    }

    #[test]
    fn stripes_lose_no_request_and_make_no_retry() {
        shuttle::check_pct(|| deposits_and_withdrawals(2), 500, 3);
    }

    /// One retry left, two threads ask for it: at most one gets it, and the count of retries is
    /// the number granted.
    #[test]
    fn the_last_retry_is_never_granted_twice() {
        shuttle::check_pct(
            || {
                let now = Instant::now();
                let budget = ratio_one(now);
                let epoch = budget.epoch(now);
                budget.deposit_in(0, epoch);
                let other = {
                    let budget = Arc::clone(&budget);
                    thread::spawn(move || budget.withdraw(now))
                };
                let mine = budget.withdraw(now);
                let theirs = other.join().expect("the other ran");
                assert!(!(mine && theirs), "both granted the last retry");
                assert_eq!(budget.retries(epoch), u64::from(mine) + u64::from(theirs));
            },
            500,
            3,
        );
    }

    /// A request counted in a slot's new epoch while another is counted in its old one (a
    /// thread whose epoch lags): the new epoch keeps every request counted in it.
    #[test]
    fn a_slot_moving_to_a_new_epoch_keeps_the_new_epochs_requests() {
        shuttle::check_pct(
            || {
                let now = Instant::now();
                let budget = ratio_one(now);
                let old = budget.epoch(now);
                let new = old + 10;
                budget.deposit_in(0, old);
                let lagging = {
                    let budget = Arc::clone(&budget);
                    thread::spawn(move || budget.deposit_in(0, old))
                };
                budget.deposit_in(0, new);
                budget.deposit_in(0, new);
                lagging.join().expect("the lagging thread ran");
                // The lagging request may count in the new epoch (as good) or be overwritten
                // (it leaves the window early: fewer retries); the new ones always count.
                let counted = budget.requests(new);
                assert!(
                    (2..=3).contains(&counted),
                    "{counted} requests in the new epoch"
                );
            },
            500,
            3,
        );
    }
}

/// A budget keyed per server counts the servers that have a budget of their own.
#[test]
fn a_keyed_budget_counts_its_servers() {
    let budget = SharedBudget::new(RetryBudget::default()).unwrap();
    assert_eq!(budget.servers(), 0);
    let now = Instant::now();
    let keyed = budget
        .keyed::<&'static str>(KeyedConfig::new())
        .expect("the first key type");
    for server in ["a.example", "b.example", "a.example"] {
        keyed.with(
            server,
            now,
            |k| (k, SharedBudget::start(RetryBudget::default())),
            |_| (),
        );
    }
    assert_eq!(budget.servers(), 2);
    assert!(
        budget.keyed::<u32>(KeyedConfig::new()).is_none(),
        "another key type"
    );
}

/// A refused retry is taken back from its own epoch's count only: once its slot has moved on to
/// an epoch a window later (another thread's retry, while this one was being checked), the
/// undo leaves the newer count alone rather than taking a retry of the newer epoch back.
#[test]
fn an_undo_takes_back_a_count_of_its_own_epoch_only() {
    let window = super::state::Window::<AtomicU64>::new();
    window.add(5, 1);
    window.add(5, 1);
    window.undo(5);
    assert_eq!(window.sum(5), 1);
    // Epoch 15 shares epoch 5's slot, a window later.
    window.add(15, 1);
    window.undo(5);
    assert_eq!(window.sum(15), 1, "the newer epoch's retry is kept");
    window.undo(15);
    assert_eq!(window.sum(15), 0);
}
