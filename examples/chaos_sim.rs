//! weir-chaos's simulator: three client stacks against the same outage, in virtual time.
//!
//! ```sh
//! cargo run --example chaos_sim          # three simulated minutes
//! cargo run --example chaos_sim -- 600   # another horizon, in seconds
//! ```
//!
//! The upstream answers in 20 ms on average (exponential), and fails every call at once (a
//! `503` after 1 ms) for the middle sixth of the run, from a third of it. Requests arrive at
//! 100 a second (Poisson). The same simulation, seeded, runs three stacks:
//!
//! - **none**: the upstream itself;
//! - **retries only**: `RetryLayer::http()` with three retries and no budget, the naive client
//!   that turns an outage into four times the load (the retry storm);
//! - **ClientStack**: `weir::ClientStack` per authority (budgeted retry, a circuit breaker, a
//!   bulkhead, timeouts): the budget holds retries to a fifth of the requests, and the breaker
//!   opens, so the upstream sees less than the requests during the outage, and probes after it.
//!
//! It prints each report's table and a summary, and writes each report's SVG chart and CSV into
//! a temporary directory (its path is printed).
//!
//! Then a fourth run shows queue waits (`ClientStack`'s bulkhead does not queue): bursts of
//! 400 requests a second for 3 s every 30 s over 50 a second, to the same upstream without its
//! outage, through a bulkhead of 4 calls with a queue of 32 and a 250 ms wait at most. The
//! bulkhead reports each wait to the simulator's observer; the report shows them per tick.

use std::fmt::Write as _;
use std::time::Duration;

use tower::Layer;
use weir::ClientStack;
use weir::bulkhead::BulkheadLayer;
use weir::retry::{RetryBudget, RetryLayer};
use weir_chaos::Latency;
use weir_chaos::sim::{Arrivals, Outcome, Report, Simulation, Upstream};

/// One stack's run.
pub(crate) struct Run {
    /// The stack's name.
    pub(crate) name: &'static str,
    /// What the simulation saw.
    pub(crate) report: Report,
}

/// When the outage starts and how long it lasts, for a run of `horizon`.
pub(crate) fn outage(horizon: Duration) -> (Duration, Duration) {
    (horizon / 3, horizon / 6)
}

/// The simulation every stack runs: `horizon` of Poisson arrivals at 100 a second, an upstream
/// answering in 20 ms on average with the outage of [`outage`], seed 2026.
pub(crate) fn simulation(horizon: Duration) -> Simulation {
    let (start, length) = outage(horizon);
    Simulation::new(horizon)
        .arrivals(Arrivals::poisson(100.0))
        .upstream(
            Upstream::new(Latency::exponential(Duration::from_millis(20))).outage(start, length),
        )
        .seed(2026)
}

/// Runs the three stacks against [`simulation`]`(horizon)`.
///
/// # Panics
///
/// When a stack's settings are refused (they are not).
pub(crate) fn compare(horizon: Duration) -> Vec<Run> {
    let sim = simulation(horizon);
    let none = sim.run(|upstream| upstream);
    let retries = sim.run(|upstream| {
        RetryLayer::http()
            .max_retries(3)
            .budget(RetryBudget::unlimited())
            .seed(7)
            .build()
            .expect("valid retry")
            .layer(upstream)
    });
    let client = sim.run_observed(|upstream, observer| {
        ClientStack::builder()
            .per_authority()
            .observer(observer)
            .seed(7)
            .build()
            .expect("valid client stack")
            .layer(upstream)
    });
    vec![
        Run {
            name: "none",
            report: none,
        },
        Run {
            name: "retries only",
            report: retries,
        },
        Run {
            name: "ClientStack",
            report: client,
        },
    ]
}

/// The queue run: `horizon` of bursts (400 a second for 3 s every 30 s, 50 a second between)
/// to an upstream answering in 20 ms on average, through a bulkhead of 4 with a queue of 32
/// and a 250 ms wait at most; seed 2026.
///
/// # Panics
///
/// When the bulkhead's settings are refused (they are not).
pub(crate) fn queued(horizon: Duration) -> Run {
    let sim = Simulation::new(horizon)
        .arrivals(Arrivals::bursts(
            50.0,
            400.0,
            Duration::from_secs(30),
            Duration::from_secs(3),
        ))
        .upstream(Upstream::new(Latency::exponential(Duration::from_millis(
            20,
        ))))
        .seed(2026);
    let report = sim.run_observed(|upstream, observer| {
        BulkheadLayer::builder()
            .max_concurrent(4)
            .max_queue(32)
            .max_wait(Duration::from_millis(250))
            .observer(observer)
            .build()
            .expect("valid bulkhead")
            .layer(upstream)
    });
    Run {
        name: "bulkhead queue",
        report,
    }
}

/// The queue run's summary: one Markdown row.
pub(crate) fn queue_summary(run: &Run) -> String {
    let r = &run.report;
    let ms = |q| r.queue_wait(q).unwrap_or_default().as_secs_f64() * 1e3;
    format!(
        "| requests | success | rejected | queued | wait p50 | wait p99 | wait max | latency p99 |\n|--:|--:|--:|--:|--:|--:|--:|--:|\n| {} | {:.1} % | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:?} |\n",
        r.requests(),
        100.0 * r.success_rate(),
        r.total(Outcome::Rejected),
        r.queued(),
        ms(0.5),
        ms(0.99),
        ms(1.0),
        r.latency(0.99).unwrap_or_default(),
    )
}

/// Upstream calls per request over the ticks of the outage.
pub(crate) fn outage_amplification(report: &Report, horizon: Duration) -> f64 {
    let (start, length) = outage(horizon);
    let (calls, requests) = report
        .ticks()
        .iter()
        .filter(|t| (start..start + length).contains(&t.start))
        .fold((0, 0), |(c, r), t| (c + t.upstream_calls, r + t.requests()));
    calls as f64 / requests.max(1) as f64
}

/// The summary: one Markdown row per stack.
pub(crate) fn summary(runs: &[Run], horizon: Duration) -> String {
    let mut out = String::from(
        "| stack | requests | success | upstream calls | per request | in the outage | p99 | breaker changes |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for run in runs {
        let r = &run.report;
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} % | {} | x{:.2} | x{:.2} | {:?} | {} |",
            run.name,
            r.requests(),
            100.0 * r.success_rate(),
            r.upstream_calls(),
            r.amplification(),
            outage_amplification(r, horizon),
            r.latency(0.99).unwrap_or_default(),
            r.transitions().len(),
        );
    }
    out
}

fn main() -> std::io::Result<()> {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let horizon = Duration::from_secs(seconds);
    let runs = compare(horizon);
    let dir = std::env::temp_dir().join("weir-chaos-sim");
    std::fs::create_dir_all(&dir)?;
    let write = |run: &Run, title: &str| -> std::io::Result<()> {
        println!("== {} ==\n{}", run.name, run.report.table(12));
        let file = run.name.replace(' ', "_").to_lowercase();
        std::fs::write(dir.join(format!("{file}.svg")), run.report.svg(title))?;
        std::fs::write(dir.join(format!("{file}.csv")), run.report.csv())
    };
    for run in &runs {
        let title = format!(
            "{}: {seconds} s, outage from {:?} for {:?}",
            run.name,
            outage(horizon).0,
            outage(horizon).1
        );
        write(run, &title)?;
    }
    let queue = queued(horizon);
    write(
        &queue,
        &format!("bulkhead of 4, queue of 32: {seconds} s, bursts of 400/s for 3 s every 30 s"),
    )?;
    println!("{}", summary(&runs, horizon));
    println!("{}", queue_summary(&queue));
    println!("charts and CSV in {}", dir.display());
    Ok(())
}
