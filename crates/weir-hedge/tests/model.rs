//! A model of hedging, checked over random attempt latencies and outcomes (proptest, paused
//! time): the answer is the first acceptable (or fatal) one to finish, at most `max_attempts`
//! start, every loser is dropped before the answer is returned, and the budget is never
//! exceeded.

mod support;

use std::pin::pin;
use std::time::Duration;

use proptest::prelude::*;
use support::{Answer, Kind, Upstream, classify};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use weir_hedge::{HedgeBudget, HedgeLayer};

/// Time unit of the model, in ms. Attempt `i`'s latency is `UNIT x k + 2^i` ms: every finish
/// time then carries a distinct set of low bits (its own and its causes'), so no two attempts
/// finish, and no timer fires, at the same instant: the model needs no tie-breaking rule.
const UNIT: u64 = 64;

fn latency(i: usize, k: u64) -> Duration {
    Duration::from_millis(UNIT * k + (1 << i))
}

/// What the layer should do: the attempts' start times and the answer (with its time).
fn model(delay: u64, max: usize, plan: &[(Duration, Kind)]) -> (Vec<u64>, Answer, u64) {
    let delay = delay * UNIT;
    let lat = |i: usize| plan[i].0.as_millis() as u64;
    let mut starts = vec![0u64];
    let mut running = vec![0usize];
    let mut timer = (max > 1).then_some(delay);
    let mut primary_failure = None;
    loop {
        let (finish, who) = running
            .iter()
            .map(|&i| (starts[i] + lat(i), i))
            .min()
            .expect("something is running");
        if let Some(at) = timer
            && at < finish
            && starts.len() < max
        {
            starts.push(at);
            running.push(starts.len() - 1);
            timer = (starts.len() < max).then_some(at + delay);
            continue;
        }
        running.retain(|&i| i != who);
        let kind = plan[who].1;
        match kind {
            Kind::Ok | Kind::Fatal => return (starts, Answer { attempt: who, kind }, finish),
            _ => {
                if who == 0 {
                    primary_failure = Some(Answer { attempt: 0, kind });
                }
                if kind == Kind::Pushback {
                    // No more hedges: the attempts in flight run out.
                    if running.is_empty() {
                        return (starts, primary_failure.expect("the primary failed"), finish);
                    }
                    return finish_without_hedges(starts, running, plan, primary_failure);
                }
                if starts.len() < max {
                    starts.push(finish);
                    running.push(starts.len() - 1);
                    timer = (starts.len() < max).then_some(finish + delay);
                } else if running.is_empty() {
                    return (starts, primary_failure.expect("the primary failed"), finish);
                }
            }
        }
    }
}

/// After pushback: the attempts in flight run out; no new ones.
fn finish_without_hedges(
    starts: Vec<u64>,
    mut running: Vec<usize>,
    plan: &[(Duration, Kind)],
    mut primary_failure: Option<Answer>,
) -> (Vec<u64>, Answer, u64) {
    running.sort_by_key(|&i| starts[i] + plan[i].0.as_millis() as u64);
    let mut last = 0;
    for i in running {
        let finish = starts[i] + plan[i].0.as_millis() as u64;
        last = finish;
        match plan[i].1 {
            Kind::Ok | Kind::Fatal => {
                return (
                    starts,
                    Answer {
                        attempt: i,
                        kind: plan[i].1,
                    },
                    finish,
                );
            }
            kind => {
                if i == 0 {
                    primary_failure = Some(Answer { attempt: 0, kind });
                }
            }
        }
    }
    (starts, primary_failure.expect("the primary failed"), last)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => Just(Kind::Ok),
        3 => Just(Kind::Transient),
        1 => Just(Kind::Fatal),
        1 => Just(Kind::Pushback),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// #21.1: the layer does what the model says: the same attempts start at the same times,
    /// the same answer comes back at the same time, at most `max_attempts` start, and no
    /// attempt is still alive when the answer is returned.
    #[test]
    fn hedging_follows_the_model(
        delay in 0u64..4,
        max in 1usize..=5,
        plan in proptest::collection::vec((0u64..6, kind()), 5),
    ) {
        let plan: Vec<(Duration, Kind)> = plan
            .iter()
            .enumerate()
            .map(|(i, &(k, kind))| (latency(i, k), kind))
            .collect();
        let (starts, expected, at) = model(delay, max, &plan);
        runtime().block_on(async {
            let layer = HedgeLayer::builder()
                .delay(Duration::from_millis(delay * UNIT))
                .max_attempts(max)
                .budget(HedgeBudget::unlimited())
                .classify(classify)
                .build()
                .unwrap();
            let upstream = Upstream::new(plan.clone());
            let mut service = layer.layer(upstream.clone());
            let origin = Instant::now();
            let mut future = pin!(ServiceExt::<()>::ready(&mut service).await.unwrap().call(()));
            let out = (&mut future).await;
            let got = match out { Ok(a) | Err(a) => a };
            prop_assert_eq!(got, expected);
            prop_assert_eq!(origin.elapsed(), Duration::from_millis(at));
            prop_assert!(upstream.calls() <= max);
            let started: Vec<u64> = upstream
                .started_at(origin)
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect();
            prop_assert_eq!(started, starts);
            prop_assert_eq!(upstream.live(), 0, "a loser is still alive");
            Ok(())
        })?;
    }

    /// #21.2: over any sequence of requests, hedges never exceed what the budget allows
    /// (`burst + ratio x requests + min_per_second x seconds`).
    #[test]
    fn the_budget_is_never_exceeded(
        burst in 1u32..4,
        tenths in 0u32..5,
        requests in proptest::collection::vec((0u64..3, 0u64..200), 1..40),
    ) {
        let ratio = f64::from(tenths) / 10.0;
        runtime().block_on(async {
            let (layer, handle) = HedgeLayer::builder()
                .delay(Duration::from_millis(10))
                .max_attempts(3)
                .budget(HedgeBudget::ratio(ratio).min_per_second(1).burst(burst))
                .classify(classify)
                .build_with_handle()
                .unwrap();
            let origin = Instant::now();
            let mut hedges = 0;
            for (n, &(slow, gap)) in requests.iter().enumerate() {
                tokio::time::advance(Duration::from_millis(gap)).await;
                let upstream = Upstream::new(vec![
                    (Duration::from_millis(1 + 20 * slow), Kind::Ok),
                    (Duration::from_millis(30), Kind::Ok),
                    (Duration::from_millis(30), Kind::Ok),
                ]);
                layer.layer(upstream.clone()).oneshot(()).await.unwrap();
                hedges += upstream.calls() - 1;
                let seconds = origin.elapsed().as_secs_f64();
                let allowed = f64::from(burst) + ratio * (n + 1) as f64 + seconds;
                prop_assert!(hedges as f64 <= allowed + 1e-9, "{hedges} hedges, {allowed} allowed");
            }
            prop_assert_eq!(handle.hedges_sent(), hedges as u64);
            Ok(())
        })?;
    }
}
