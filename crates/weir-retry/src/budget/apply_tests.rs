//! Unit tests of a running budget's new settings (`SharedBudget::check` and `apply`, #25) and
//! of its `Debug`: the lines the unit tests left uncovered (#26); the layer's behaviour is in
//! `tests/reconfigure.rs`.

use std::time::Duration;

use tokio::time::Instant;
use weir_core::keyed::KeyedConfig;

use super::*;

fn field(result: Result<(), ConfigError>) -> String {
    result.unwrap_err().field().to_owned()
}

#[test]
fn check_keeps_the_kind_and_a_ratio_budgets_window() {
    let ratio = SharedBudget::new(RetryBudget::ratio(0.1)).unwrap();
    assert!(
        ratio
            .check(&RetryBudget::ratio(0.5).min_per_second(3))
            .is_ok()
    );
    assert_eq!(
        field(ratio.check(&RetryBudget::ratio(0.1).window(Duration::from_secs(60)))),
        "budget.window"
    );
    assert_eq!(
        field(ratio.check(&RetryBudget::grpc_throttle(10, 0.5))),
        "budget"
    );
    assert_eq!(field(ratio.check(&RetryBudget::unlimited())), "budget");
    assert_eq!(
        field(ratio.check(&RetryBudget::ratio(f64::NAN))),
        "budget.ratio"
    );

    let throttle = SharedBudget::new(RetryBudget::grpc_throttle(10, 0.5)).unwrap();
    assert!(throttle.check(&RetryBudget::grpc_throttle(4, 0.1)).is_ok());
    assert_eq!(field(throttle.check(&RetryBudget::ratio(0.1))), "budget");
    let unlimited = SharedBudget::new(RetryBudget::unlimited()).unwrap();
    assert!(unlimited.check(&RetryBudget::unlimited()).is_ok());
    assert_eq!(field(unlimited.check(&RetryBudget::ratio(0.1))), "budget");
    // A refused change changes nothing.
    assert_eq!(field(unlimited.apply(RetryBudget::ratio(0.1))), "budget");
    assert_eq!(unlimited.budget(), RetryBudget::unlimited());
}

/// A change of kind is refused naming both kinds as a configuration file writes them.
#[test]
fn a_change_of_kind_names_both_kinds() {
    let rule = |from: RetryBudget, to: RetryBudget| {
        let err = SharedBudget::new(from).unwrap().check(&to).unwrap_err();
        err.rule().to_owned()
    };
    assert_eq!(
        rule(RetryBudget::ratio(0.1), RetryBudget::grpc_throttle(10, 0.5)),
        "of a running layer keeps its kind (ratio): rebuild the layer to make it grpc_throttle"
    );
    assert!(
        rule(RetryBudget::unlimited(), RetryBudget::ratio(0.1))
            .ends_with("(unlimited): rebuild the layer to make it ratio")
    );
}

#[tokio::test(start_paused = true)]
async fn apply_keeps_a_ratio_budgets_counts_under_the_new_ratio() {
    let budget = SharedBudget::new(RetryBudget::ratio(0.1).min_per_second(0)).unwrap();
    for _ in 0..20 {
        budget.deposit();
    }
    assert_eq!(budget.available(), Some(2));
    budget
        .apply(RetryBudget::ratio(0.5).min_per_second(0))
        .unwrap();
    assert_eq!(budget.budget(), RetryBudget::ratio(0.5).min_per_second(0));
    assert_eq!(
        budget.available(),
        Some(10),
        "the 20 requests counted, at 0.5"
    );
}

#[tokio::test(start_paused = true)]
async fn apply_clamps_a_throttles_tokens_to_the_new_maximum() {
    let budget = SharedBudget::new(RetryBudget::grpc_throttle(10, 0.5)).unwrap();
    let full = budget.available();
    budget.apply(RetryBudget::grpc_throttle(4, 0.5)).unwrap();
    let clamped = budget.available();
    assert!(clamped < full, "{clamped:?} !< {full:?}");
    // Back to the larger maximum: the tokens stay where the clamp left them (4), not above
    // half of 10, so no retry; refilled to 10 they would allow `full` again.
    budget.apply(RetryBudget::grpc_throttle(10, 0.5)).unwrap();
    assert_eq!(budget.available(), Some(0));
    assert_ne!(budget.available(), full);
}

#[tokio::test(start_paused = true)]
async fn apply_reaches_every_servers_budget_and_debug_shows_them() {
    let budget = SharedBudget::new(RetryBudget::ratio(0.1)).unwrap();
    let servers = budget.keyed::<u32>(KeyedConfig::new()).unwrap();
    let now = Instant::now();
    for server in 0..3 {
        servers.with(
            server,
            now,
            |key| (key, SharedBudget::start(budget.budget())),
            |_| (),
        );
    }
    assert_eq!(budget.servers(), 3);
    budget.apply(RetryBudget::ratio(0.3)).unwrap();
    let mut seen = 0;
    servers.for_each(|_, server| {
        assert_eq!(server.budget(), RetryBudget::ratio(0.3));
        seen += 1;
    });
    assert_eq!(seen, 3);
    assert_eq!(servers.overflow().budget(), RetryBudget::ratio(0.3));
    let debug = format!("{budget:?}");
    assert!(debug.starts_with("SharedBudget"), "{debug}");
    assert!(debug.contains("servers: 3"), "{debug}");
}
