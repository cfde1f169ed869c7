//! Unit tests of the machine's steps the other unit tests left uncovered (#26): mostly
//! [`Breaker::reconfigure`] (#25), which window is in force after new settings, what a count
//! window carries over, and the bound on window shapes (the layer's behaviour is in
//! `tests/reconfigure.rs`); and a rejection taken back when it became a wait.

use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_core::backoff::Backoff;

use super::machine::Breaker;
use super::vocabulary::*;

fn settings(window: WindowKind) -> Settings {
    Settings {
        window,
        // No threshold: outcomes are only counted, the circuit stays closed.
        failure_rate: None,
        slow_rate: None,
        consecutive_failures: None,
        minimum_calls: 1,
        open: Backoff::constant(Duration::from_secs(5)),
        probes: 1,
        max_half_open: Duration::from_secs(30),
        seed: Some(1),
    }
}

fn record(breaker: &Breaker, at: Duration, verdict: Verdict) {
    let Admit::Permit(permit) = breaker.admit(|| at).0 else {
        panic!("rejected in {:?}", breaker.state());
    };
    breaker.record(
        permit,
        Report {
            verdict,
            slow: false,
        },
        || at,
    );
}

fn slot(breaker: &Breaker) -> usize {
    window_slot(breaker.word.load(Ordering::Acquire))
}

const TIME: WindowKind = WindowKind::Time {
    size: Duration::from_secs(10),
    buckets: 10,
};

#[test]
fn a_count_window_of_another_size_carries_the_newest_outcomes() {
    let breaker = Breaker::new(settings(WindowKind::Count(10)));
    let now = Duration::ZERO;
    for _ in 0..6 {
        record(&breaker, now, Verdict::Success);
    }
    for _ in 0..3 {
        record(&breaker, now, Verdict::Failure);
    }
    breaker.reconfigure(settings(WindowKind::Count(4))).unwrap();
    assert_eq!(slot(&breaker), 1, "a new shape, a new slot");
    let counts = breaker.counts(now);
    assert_eq!((counts.total, counts.failures), (4, 3), "the newest four");
    // Grown again: all four come along, and the window slides on from them.
    breaker
        .reconfigure(settings(WindowKind::Count(20)))
        .unwrap();
    assert_eq!(slot(&breaker), 2);
    record(&breaker, now, Verdict::Failure);
    let counts = breaker.counts(now);
    assert_eq!((counts.total, counts.failures), (5, 4));
    // The same shape again changes nothing.
    breaker
        .reconfigure(settings(WindowKind::Count(20)))
        .unwrap();
    assert_eq!(slot(&breaker), 2);
    assert_eq!(breaker.counts(now).total, 5);
}

#[test]
fn a_time_window_starts_empty_and_a_shape_held_is_reused_empty() {
    let breaker = Breaker::new(settings(WindowKind::Count(10)));
    let now = Duration::from_secs(1);
    for _ in 0..5 {
        record(&breaker, now, Verdict::Failure);
    }
    breaker.reconfigure(settings(TIME)).unwrap();
    assert_eq!(slot(&breaker), 1);
    assert_eq!(breaker.counts(now).total, 0, "another kind starts empty");
    record(&breaker, now, Verdict::Failure);
    assert_eq!(breaker.counts(now).failures, 1);
    // Back to the first shape: its slot is taken again, cleared (a time window carries none).
    breaker
        .reconfigure(settings(WindowKind::Count(10)))
        .unwrap();
    assert_eq!(slot(&breaker), 0);
    assert_eq!(breaker.counts(now).total, 0);
    // And the time window's slot, cleared too.
    breaker.reconfigure(settings(TIME)).unwrap();
    assert_eq!(slot(&breaker), 1);
    assert_eq!(breaker.counts(now).total, 0);
}

#[test]
fn a_breaker_holds_at_most_eight_window_shapes() {
    let breaker = Breaker::new(settings(WindowKind::Count(1)));
    for n in 2..=8 {
        breaker.reconfigure(settings(WindowKind::Count(n))).unwrap();
    }
    assert_eq!(slot(&breaker), 7);
    let ninth = settings(WindowKind::Count(9));
    assert!(!breaker.can_take(&ninth));
    let error = breaker.reconfigure(ninth).unwrap_err();
    assert_eq!(error.field(), "count_window");
    assert_eq!(
        breaker
            .reconfigure_refused(settings(TIME))
            .unwrap_err()
            .field(),
        "time_window"
    );
    assert_eq!(slot(&breaker), 7, "nothing changed");
    // A shape held is still taken.
    assert!(breaker.can_take(&settings(WindowKind::Count(3))));
    breaker.reconfigure(settings(WindowKind::Count(3))).unwrap();
    assert_eq!(slot(&breaker), 2);
}

#[test]
fn states_and_reasons_have_their_snake_case_names() {
    let states = [
        (State::Closed, "closed"),
        (State::Open, "open"),
        (State::HalfOpen, "half_open"),
        (State::ForcedOpen, "forced_open"),
        (State::ForcedClosed, "forced_closed"),
        (State::Disabled, "disabled"),
        (State::MetricsOnly, "metrics_only"),
    ];
    for (state, name) in states {
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
    }
    let reasons = [
        (Reason::FailureRate, "failure_rate"),
        (Reason::SlowCallRate, "slow_call_rate"),
        (Reason::ConsecutiveFailures, "consecutive_failures"),
        (Reason::OpenTimeElapsed, "open_time_elapsed"),
        (Reason::ProbeFailed, "probe_failed"),
        (Reason::ProbesSucceeded, "probes_succeeded"),
        (Reason::HalfOpenTimeout, "half_open_timeout"),
        (Reason::Manual, "manual"),
    ];
    for (reason, name) in reasons {
        assert_eq!(reason.as_str(), name);
    }
}

/// In backpressure mode a rejection that became a wait is taken back from the count.
#[test]
fn a_rejection_that_became_a_wait_is_not_counted() {
    let breaker = Breaker::new(settings(WindowKind::Count(10)));
    breaker.set(State::Open, Duration::ZERO);
    assert!(matches!(
        breaker.admit(|| Duration::from_secs(1)).0,
        Admit::Reject { .. }
    ));
    assert_eq!(breaker.rejected(), 1);
    breaker.waited();
    assert_eq!(breaker.rejected(), 0);
}

/// After transitions (a generation past 0), an outcome of the current period goes into a window
/// brought by new settings, and one of an earlier period into none.
#[test]
fn an_outcome_of_the_period_goes_into_the_window_in_force() {
    let now = Duration::ZERO;
    let breaker = Breaker::new(settings(WindowKind::Count(10)));
    breaker.set(State::ForcedOpen, now);
    breaker.set(State::Closed, now);
    breaker.reconfigure(settings(WindowKind::Count(4))).unwrap();
    assert_eq!(slot(&breaker), 1);
    let Admit::Permit(earlier) = breaker.admit(|| now).0 else {
        panic!("closed");
    };
    record(&breaker, now, Verdict::Failure);
    assert_eq!(breaker.counts(now).failures, 1);
    // A new period: the permit taken before it records nothing.
    breaker.set(State::ForcedClosed, now);
    breaker.record(
        earlier,
        Report {
            verdict: Verdict::Failure,
            slow: false,
        },
        || now,
    );
    assert_eq!(breaker.counts(now).failures, 1);
}

/// A time window counts slow calls as well as failures, over its buckets.
#[test]
fn a_time_window_counts_slow_calls() {
    let breaker = Breaker::new(settings(TIME));
    for second in 0..3 {
        let at = Duration::from_secs(second);
        let Admit::Permit(permit) = breaker.admit(|| at).0 else {
            panic!("closed");
        };
        breaker.record(
            permit,
            Report {
                verdict: Verdict::Success,
                slow: true,
            },
            || at,
        );
    }
    let counts = breaker.counts(Duration::from_secs(2));
    assert_eq!((counts.total, counts.failures, counts.slow), (3, 0, 3));
}
