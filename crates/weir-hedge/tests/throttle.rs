//! #21.2: gRFC A6's retry throttling applied to hedges by the layer's own budget
//! (`HedgeBudget::throttle`): failing attempts (primaries and hedges) take tokens, successes give
//! back a fraction of one, no hedge goes while the tokens are at or below half; a server's "do
//! not retry" stops the request's further hedges and takes a token; permanent failures and weir's
//! own rejections take none.

mod support;

use support::{Answer, Kind, Upstream, classify, ms};
use tower::{Layer, ServiceExt};
use weir_hedge::{HedgeBudget, HedgeLayer};

fn answer(attempt: usize) -> Answer {
    Answer {
        attempt,
        kind: Kind::Ok,
    }
}

fn failed(attempt: usize, kind: Kind) -> Answer {
    Answer { attempt, kind }
}

/// Failures take tokens until hedging stops; successes give them back until it resumes.
#[tokio::test(start_paused = true)]
async fn failing_attempts_throttle_hedges_and_successes_resume_them() {
    // 4 tokens, hedging while above 2; a success gives back half a token.
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(10))
        .budget(HedgeBudget::unlimited().throttle(4, 0.5))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let upstream = Upstream::new(vec![
        (ms(1), Kind::Transient), // 0: request 1's primary fails (3 tokens left)
        (ms(1), Kind::Transient), // 1: its hedge, sent at once, fails too (2 left)
        (ms(1), Kind::Transient), // 2: request 2's primary fails (1 left); no hedge
        (ms(50), Kind::Ok),       // 3: request 3, slow: not hedged; a success (1.5)
        (ms(1), Kind::Ok),        // 4: request 4 (2.0: still at half)
        (ms(1), Kind::Ok),        // 5: request 5 (2.5: above half)
        (ms(50), Kind::Ok),       // 6: request 6, slow: hedged after 10 ms
        (ms(1), Kind::Ok),        // 7: its hedge answers
    ]);
    let service = layer.layer(upstream.clone());

    let out = service.clone().oneshot(()).await;
    assert_eq!(
        out,
        Err(failed(0, Kind::Transient)),
        "the primary's failure"
    );
    assert_eq!((upstream.calls(), handle.hedges_sent()), (2, 1));

    let out = service.clone().oneshot(()).await;
    assert_eq!(out, Err(failed(2, Kind::Transient)));
    assert_eq!(upstream.calls(), 3, "throttled: no hedge after the failure");
    assert_eq!(handle.budget_exhausted(), 1);
    assert_eq!(handle.budget_available(), Some(0));

    assert_eq!(service.clone().oneshot(()).await, Ok(answer(3)));
    assert_eq!(
        upstream.calls(),
        4,
        "throttled: a slow request is not hedged"
    );
    assert_eq!(handle.budget_exhausted(), 2);

    assert_eq!(service.clone().oneshot(()).await, Ok(answer(4)));
    assert_eq!(service.clone().oneshot(()).await, Ok(answer(5)));
    assert_eq!(
        handle.budget_available(),
        None,
        "above half: the budget alone decides"
    );

    assert_eq!(service.oneshot(()).await, Ok(answer(7)));
    assert_eq!((upstream.calls(), handle.hedges_sent()), (8, 2));
    assert_eq!(handle.budget_exhausted(), 2);
}

/// Only transient failures (and "do not retry") take tokens: permanent failures are the
/// request's own, and an open circuit inside says nothing of the upstream.
#[tokio::test(start_paused = true)]
async fn permanent_failures_and_open_circuits_take_no_token() {
    // 2 tokens: one transient failure would stop hedging.
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(10))
        .budget(HedgeBudget::unlimited().throttle(2, 0.1))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let upstream = Upstream::new(vec![
        (ms(1), Kind::Fatal),       // 0: request 1: fatal, returned, no hedge
        (ms(1), Kind::Fatal),       // 1: request 2: the same
        (ms(1), Kind::CircuitOpen), // 2: request 3: refused inside; the hedge goes at once
        (ms(1), Kind::Ok),          // 3: and answers
        (ms(50), Kind::Ok),         // 4: request 4, slow: still hedged
        (ms(1), Kind::Ok),          // 5
    ]);
    let service = layer.layer(upstream.clone());
    assert_eq!(
        service.clone().oneshot(()).await,
        Err(failed(0, Kind::Fatal))
    );
    assert_eq!(
        service.clone().oneshot(()).await,
        Err(failed(1, Kind::Fatal))
    );
    assert_eq!(service.clone().oneshot(()).await, Ok(answer(3)));
    assert_eq!(service.oneshot(()).await, Ok(answer(5)));
    assert_eq!((upstream.calls(), handle.hedges_sent()), (6, 2));
    assert_eq!(handle.budget_exhausted(), 0);
}

/// A server's "do not retry" (a negative `grpc-retry-pushback-ms`) stops the request's further
/// hedges at once, and, as gRFC A6 counts it, takes a token: with the throttle at half after it,
/// the next slow request is not hedged either.
#[tokio::test(start_paused = true)]
async fn do_not_retry_stops_hedges_and_takes_a_token() {
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(10))
        .max_attempts(3)
        .budget(HedgeBudget::unlimited().throttle(2, 0.1))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let upstream = Upstream::new(vec![
        (ms(1), Kind::Pushback), // 0: request 1: no hedge follows, its failure is returned
        (ms(50), Kind::Ok),      // 1: request 2, slow: throttled, not hedged
    ]);
    let service = layer.layer(upstream.clone());
    assert_eq!(
        service.clone().oneshot(()).await,
        Err(failed(0, Kind::Pushback))
    );
    assert_eq!(upstream.calls(), 1);
    assert_eq!(
        handle.budget_exhausted(),
        0,
        "stopped by the server, not the budget"
    );
    assert_eq!(service.oneshot(()).await, Ok(answer(1)));
    assert_eq!((upstream.calls(), handle.hedges_sent()), (2, 0));
    assert_eq!(handle.budget_exhausted(), 1);
}

/// The throttle sits on top of a ratio budget: both must consent.
#[tokio::test(start_paused = true)]
async fn the_throttle_and_the_ratio_budget_both_bound_hedges() {
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(10))
        .budget(
            HedgeBudget::ratio(0.0)
                .min_per_second(0)
                .burst(1)
                .throttle(10, 1.0),
        )
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let slow = || Upstream::new(vec![(ms(50), Kind::Ok), (ms(1), Kind::Ok)]);
    let first = slow();
    assert_eq!(layer.layer(first.clone()).oneshot(()).await, Ok(answer(1)));
    let second = slow();
    assert_eq!(layer.layer(second.clone()).oneshot(()).await, Ok(answer(0)));
    assert_eq!((first.calls(), second.calls()), (2, 1));
    assert_eq!((handle.hedges_sent(), handle.budget_exhausted()), (1, 1));
}

/// `build()` checks the throttle as gRPC's `retryThrottling` is checked.
#[test]
fn a_broken_throttle_is_refused() {
    let field = |budget: HedgeBudget| {
        HedgeLayer::builder()
            .budget(budget)
            .build()
            .err()
            .map(|e| e.field().to_owned())
    };
    assert_eq!(
        field(HedgeBudget::default().throttle(0, 0.1)).as_deref(),
        Some("budget.max_tokens")
    );
    assert_eq!(
        field(HedgeBudget::unlimited().throttle(1001, 0.1)).as_deref(),
        Some("budget.max_tokens")
    );
    assert_eq!(
        field(HedgeBudget::default().throttle(10, 0.0)).as_deref(),
        Some("budget.token_ratio")
    );
    assert_eq!(
        field(HedgeBudget::default().throttle(10, f64::NAN)).as_deref(),
        Some("budget.token_ratio")
    );
    assert_eq!(field(HedgeBudget::default().throttle(1000, 0.001)), None);
}
