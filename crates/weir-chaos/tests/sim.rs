//! The simulator (`weir_chaos::sim`, feature `sim`): reproducible, fast in virtual time, and its
//! upstream model, arrivals and report do what they say.
#![cfg(feature = "sim")]

use std::time::Duration;

use tower_layer::Layer;
use weir_chaos::Latency;
use weir_chaos::sim::{Arrivals, Outcome, Report, Simulation, Upstream};
use weir_circuit_breaker::CircuitBreakerLayer;
use weir_core::classify::HttpStatus;
use weir_retry::{RetryBudget, RetryLayer};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A minute of Poisson arrivals to an upstream with some errors and a 10 s outage at 20 s.
fn minute(seed: u64) -> Simulation {
    Simulation::new(secs(60))
        .arrivals(Arrivals::poisson(40.0))
        .upstream(
            Upstream::new(Latency::exponential(ms(20)))
                .error_rate(0.02)
                .outage(secs(20), secs(10)),
        )
        .seed(seed)
}

/// Retries of 503s, three at most, seeded jitter, with `budget`.
fn retried(budget: RetryBudget) -> RetryLayer<weir_retry::HttpReplay, HttpStatus> {
    RetryLayer::http()
        .max_retries(3)
        .budget(budget)
        .seed(11)
        .build()
        .expect("valid retry")
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let sim = minute(7);
    let first = sim.run(|upstream| retried(RetryBudget::default()).layer(upstream));
    let second = sim.run(|upstream| retried(RetryBudget::default()).layer(upstream));
    assert_eq!(first, second);
    assert_eq!(first.csv(), second.csv());
    assert_eq!(first.svg("run"), second.svg("run"));
    assert!(first.requests() > 2_000, "{}", first.requests());
}

#[test]
fn another_seed_gives_another_report() {
    let a = minute(7).run(|upstream| upstream);
    let b = minute(8).run(|upstream| upstream);
    assert_ne!(a, b);
    assert_ne!(a.requests(), b.requests());
}

#[test]
fn one_simulated_hour_runs() {
    let report = Simulation::new(secs(3_600))
        .arrivals(Arrivals::poisson(10.0))
        .upstream(Upstream::new(Latency::exponential(ms(30))).error_rate(0.01))
        .seed(3)
        .run(|upstream| upstream);
    assert_eq!(report.ticks().len(), 3_600);
    // 36 000 expected; Poisson wanders by a few hundred.
    assert!(
        (35_000..37_000).contains(&report.requests()),
        "{}",
        report.requests()
    );
    assert_eq!(report.total(Outcome::Unfinished), 0);
    assert_eq!(report.upstream_calls(), report.requests());
    let failures = report.total(Outcome::UpstreamFailure);
    assert!((250..470).contains(&failures), "{failures} of 1 % errors");
}

#[test]
fn an_outage_fails_requests_only_inside_its_window() {
    let report = Simulation::new(secs(60))
        .arrivals(Arrivals::steady(10.0))
        .upstream(Upstream::new(Latency::fixed(ms(10))).outage(secs(20), secs(10)))
        .run(|upstream| upstream);
    assert_eq!(report.requests(), 600);
    for tick in report.ticks() {
        let inside = (secs(20)..secs(30)).contains(&tick.start);
        if inside {
            assert_eq!(tick.count(Outcome::UpstreamFailure), 10, "{tick:?}");
            assert_eq!(tick.count(Outcome::Success), 0, "{tick:?}");
            assert_eq!(tick.p50, ms(1), "an outage answers at once");
        } else {
            assert_eq!(tick.count(Outcome::UpstreamFailure), 0, "{tick:?}");
            assert_eq!(tick.count(Outcome::Success), 10, "{tick:?}");
        }
    }
    assert_eq!(report.total(Outcome::UpstreamFailure), 100);
}

#[test]
fn capacity_raises_latency_beyond_its_concurrency() {
    // 100 requests a second of 100 ms each: about 10 in flight.
    let sim = |upstream: Upstream| {
        Simulation::new(secs(30))
            .arrivals(Arrivals::steady(100.0))
            .upstream(upstream)
            .run(|upstream| upstream)
    };
    let roomy = sim(Upstream::new(Latency::fixed(ms(100))).capacity(50));
    let tight = sim(Upstream::new(Latency::fixed(ms(100))).capacity(4));
    assert_eq!(
        roomy.latency(0.5),
        Some(ms(100)),
        "below capacity: the model's latency"
    );
    assert_eq!(roomy.latency(1.0), Some(ms(100)));
    let tight_p50 = tight.latency(0.5).expect("p50");
    assert!(tight_p50 > ms(150), "over capacity: {tight_p50:?}");
    assert!(tight.max_upstream_in_flight() > roomy.max_upstream_in_flight());
}

/// Upstream calls in the ticks of `from..to`, and the requests sent in them.
fn load_in(report: &Report, from: Duration, to: Duration) -> (u64, u64) {
    report
        .ticks()
        .iter()
        .filter(|t| (from..to).contains(&t.start))
        .fold((0, 0), |(calls, requests), t| {
            (calls + t.upstream_calls, requests + t.requests())
        })
}

#[test]
fn retries_amplify_an_outage_and_a_budget_amplifies_less() {
    let sim = Simulation::new(secs(60))
        .arrivals(Arrivals::steady(50.0))
        .upstream(Upstream::new(Latency::fixed(ms(10))).outage(secs(20), secs(20)))
        .seed(5);
    let none = sim.run(|upstream| upstream);
    let unbudgeted = sim.run(|upstream| retried(RetryBudget::unlimited()).layer(upstream));
    let budgeted = sim.run(|upstream| retried(RetryBudget::default()).layer(upstream));

    let (calls, requests) = load_in(&none, secs(25), secs(35));
    assert_eq!(calls, requests, "no retries: one call per request");
    let (calls, requests) = load_in(&unbudgeted, secs(25), secs(35));
    // Every request tried four times in the outage (calls are counted when made, requests
    // when sent: the edges of the span shift a few).
    let ratio = calls as f64 / requests as f64;
    assert!(
        (ratio - 4.0).abs() < 0.05,
        "{calls} calls for {requests} requests"
    );
    let (budgeted_calls, budgeted_requests) = load_in(&budgeted, secs(25), secs(35));
    assert_eq!(budgeted_requests, requests);
    assert!(
        budgeted_calls < 2 * budgeted_requests,
        "the budget holds retries to a fraction: {budgeted_calls} calls for {budgeted_requests}"
    );
    assert!(budgeted_calls > budgeted_requests, "but allows some");
    assert!(unbudgeted.amplification() > budgeted.amplification());
    assert!((none.amplification() - 1.0).abs() < 1e-9);
    // Outside the outage, retries change nothing.
    assert_eq!(
        load_in(&unbudgeted, secs(0), secs(20)),
        load_in(&none, secs(0), secs(20))
    );
}

#[test]
fn a_retry_storm_resends_failures_only() {
    let sim = |upstream: Upstream| {
        Simulation::new(secs(60))
            .arrivals(Arrivals::retry_storm(20.0, 2, ms(500)))
            .upstream(upstream)
            .seed(9)
            .run(|upstream| upstream)
    };
    let calm = sim(Upstream::new(Latency::fixed(ms(10))));
    assert_eq!(calm.resent(), 0);
    let storm = sim(Upstream::new(Latency::fixed(ms(10))).outage(secs(20), secs(20)));
    let first_sends = storm.requests() - storm.resent();
    assert_eq!(
        first_sends,
        calm.requests(),
        "the same seed: the same first sends"
    );
    // Every first send in the outage fails and is sent twice more (those in its last second
    // partly succeed on the way).
    assert!(storm.resent() > 600, "{}", storm.resent());
    let (in_outage, _) = load_in(&storm, secs(25), secs(35));
    let (before, _) = load_in(&storm, secs(5), secs(15));
    assert!(
        in_outage > 2 * before,
        "the storm: {in_outage} calls against {before}"
    );
}

#[test]
fn the_observer_reports_breaker_transitions_in_the_outage() {
    let sim = Simulation::new(secs(60))
        .arrivals(Arrivals::steady(50.0))
        .upstream(Upstream::new(Latency::fixed(ms(5))).outage(secs(20), secs(10)));
    let report = sim.run_observed(|upstream, observer| {
        CircuitBreakerLayer::builder()
            .classifier(HttpStatus::new())
            .open_duration(secs(2))
            .seed(1)
            .observer(observer)
            .build()
            .expect("valid breaker")
            .layer(upstream)
    });
    let transitions = report.transitions();
    assert!(transitions.len() >= 3, "{transitions:?}");
    assert!(transitions[0].at >= secs(20) && transitions[0].at < secs(30));
    assert!(
        transitions[0].detail.contains("to: Open"),
        "{:?}",
        transitions[0]
    );
    let last = transitions.last().expect("a last change");
    assert!(last.detail.contains("to: Closed"), "{last:?}");
    assert!(last.at >= secs(30));
    assert_eq!(transitions[0].pattern, "circuit_breaker");
    let per_tick: u64 = report.ticks().iter().map(|t| t.state_changes).sum();
    assert_eq!(per_tick, transitions.len() as u64);
    assert!(report.total(Outcome::CircuitOpen) > 0);
    assert_eq!(
        report.event_count("circuit_breaker", "state_change"),
        transitions.len() as u64
    );
    assert!(report.table(6).contains("circuit_breaker"));
    // Without the observer: nothing.
    let blind = sim.run(|upstream| upstream);
    assert!(blind.transitions().is_empty() && blind.events().is_empty());
}

#[test]
fn the_csv_and_the_svg_are_well_formed() {
    let report = minute(1).run(|upstream| retried(RetryBudget::default()).layer(upstream));
    let csv = report.csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    assert_eq!(header[0], "start_s");
    for outcome in Outcome::ALL {
        assert!(header.contains(&outcome.as_str()), "{header:?}");
    }
    let rows: Vec<Vec<f64>> = lines
        .map(|line| {
            line.split(',')
                .map(|cell| {
                    cell.parse::<f64>()
                        .unwrap_or_else(|_| panic!("a number: {cell:?}"))
                })
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), report.ticks().len());
    let success = header
        .iter()
        .position(|h| *h == "success")
        .expect("success");
    let calls = header
        .iter()
        .position(|h| *h == "upstream_calls")
        .expect("calls");
    for (row, tick) in rows.iter().zip(report.ticks()) {
        assert_eq!(row.len(), header.len());
        assert!((row[0] - tick.start.as_secs_f64()).abs() < 1e-9);
        assert!((row[success] - tick.count(Outcome::Success) as f64).abs() < 1e-9);
        assert!((row[calls] - tick.upstream_calls as f64).abs() < 1e-9);
    }

    let svg = report.svg("retries <& outage>");
    assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("retries &lt;&amp; outage&gt;"),
        "the title is escaped"
    );
    for series in [
        "requests",
        "success",
        "failed",
        "upstream calls",
        "p50 ms",
        "p99 ms",
    ] {
        assert!(svg.contains(&format!(">{series}</text>")), "{series}");
    }
    assert_eq!(svg.matches("<polyline").count(), 6);
    // One point per tick in each line.
    let points = svg
        .split("points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("points");
    assert_eq!(points.split(' ').count(), report.ticks().len());
    assert_eq!(svg.matches('<').count(), svg.matches('>').count());
}
