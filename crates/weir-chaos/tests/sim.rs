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
fn a_slowdown_and_an_error_spike_change_only_their_windows() {
    let report = Simulation::new(secs(60))
        .arrivals(Arrivals::steady(20.0))
        .upstream(
            Upstream::new(Latency::fixed(ms(10)))
                .slowdown(secs(10), secs(10), 5.0)
                .error_spike(secs(30), secs(10), 1.0),
        )
        .run(|upstream| upstream);
    assert_eq!(report.requests(), 1_200);
    for tick in report.ticks() {
        let slow = (secs(10)..secs(20)).contains(&tick.start);
        let spike = (secs(30)..secs(40)).contains(&tick.start);
        let latency = if slow { ms(50) } else { ms(10) };
        assert_eq!((tick.p50, tick.p99), (latency, latency), "{tick:?}");
        let failed = if spike { 20 } else { 0 };
        assert_eq!(tick.count(Outcome::UpstreamFailure), failed, "{tick:?}");
        assert_eq!(tick.count(Outcome::Success), 20 - failed, "{tick:?}");
    }
}

#[test]
fn arrivals_come_at_their_rates() {
    let count = |arrivals: Arrivals| {
        Simulation::new(secs(60))
            .arrivals(arrivals)
            .seed(9)
            .run(|upstream| upstream)
    };
    // Steady: exactly its rate in every tick.
    let steady = count(Arrivals::steady(25.0));
    assert!(steady.ticks().iter().all(|t| t.requests() == 25));
    // Poisson: its rate on average (3 000 expected; a few standard deviations of 55).
    let poisson = count(Arrivals::poisson(50.0));
    assert!(
        (2_800..3_200).contains(&poisson.requests()),
        "{}",
        poisson.requests()
    );
    assert!(
        poisson.ticks().iter().any(|t| t.requests() != 50),
        "not steady"
    );
    // Bursts: 200 a second for 5 s every 20 s, 10 a second between.
    let bursts = count(Arrivals::bursts(10.0, 200.0, secs(20), secs(5)));
    let (inside, outside): (Vec<_>, Vec<_>) = bursts
        .ticks()
        .iter()
        .partition(|t| t.start.as_secs() % 20 < 5);
    let mean = |ticks: &[&weir_chaos::sim::Tick]| {
        ticks.iter().map(|t| t.requests()).sum::<u64>() as f64 / ticks.len() as f64
    };
    let (inside, outside) = (mean(&inside), mean(&outside));
    assert!((150.0..250.0).contains(&inside), "in a burst: {inside}");
    assert!((5.0..15.0).contains(&outside), "between: {outside}");
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
fn hedges_amplify_the_upstream_load_and_cut_the_tail() {
    // Exponential 20 ms calls: about e^-1.5 = 22 % are slower than the 30 ms hedge delay.
    let sim = Simulation::new(secs(60))
        .arrivals(Arrivals::steady(50.0))
        .upstream(Upstream::new(Latency::exponential(ms(20))))
        .seed(4);
    let hedged = |budget: weir_hedge::HedgeBudget| {
        sim.run_observed(|upstream, observer| {
            weir_hedge::HedgeLayer::http()
                .delay(ms(30))
                .max_attempts(2)
                .budget(budget)
                .observer(observer)
                .build()
                .expect("valid hedge")
                .layer(upstream)
        })
    };
    let bare = sim.run(|upstream| upstream);
    let free = hedged(weir_hedge::HedgeBudget::unlimited());
    assert_eq!(free.requests(), bare.requests());
    // Every hedge is one more upstream call than requests.
    let sent = free.event_count("hedge", "hedge_sent");
    assert_eq!(free.upstream_calls(), free.requests() + sent);
    let amplification = free.amplification();
    assert!((1.15..1.30).contains(&amplification), "x{amplification:.3}");
    let (hedged_p99, bare_p99) = (free.latency(0.99), bare.latency(0.99));
    assert!(hedged_p99 < bare_p99, "{hedged_p99:?} against {bare_p99:?}");
    // A 5 % budget holds the amplification near 1.05.
    let budgeted = hedged(weir_hedge::HedgeBudget::ratio(0.05));
    let held = budgeted.amplification();
    assert!(held < 1.10 && held > 1.0, "x{held:.3}");
    assert!(budgeted.event_count("hedge", "budget_exhausted") > 0);
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

/// The nearest-rank quantile `q` of sorted `waits`, as the report computes it.
fn nearest_rank(waits: &[Duration], q: f64) -> Duration {
    let rank = ((q * waits.len() as f64).ceil() as usize).clamp(1, waits.len());
    waits[rank - 1]
}

#[test]
fn queue_waits_are_what_the_bulkhead_reported() {
    // Bursts of 400 a second for 2 s every 10 s, to an upstream answering in 20 ms: ~8 calls
    // in flight during a burst, through a bulkhead of 4 with a queue of 16 and a 100 ms wait.
    let sim = Simulation::new(secs(30))
        .arrivals(Arrivals::bursts(20.0, 400.0, secs(10), secs(2)))
        .upstream(Upstream::new(Latency::exponential(ms(20))))
        .seed(5);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let run = || {
        let seen = std::sync::Arc::clone(&seen);
        sim.run_observed(move |upstream, observer| {
            // The bulkhead's own events, beside the simulator's observer.
            let own = move |event: &weir_bulkhead::Event<'_>| {
                let wait = match event {
                    weir_bulkhead::Event::Dequeued { waited, .. } => Some(*waited),
                    weir_bulkhead::Event::Rejected { waited, .. } => *waited,
                    _ => None,
                };
                if let Some(wait) = wait {
                    seen.lock().expect("not poisoned").push(wait);
                }
            };
            weir_bulkhead::BulkheadLayer::builder()
                .max_concurrent(4)
                .max_queue(16)
                .max_wait(ms(100))
                .observer((observer, own))
                .build()
                .expect("valid bulkhead")
                .layer(upstream)
        })
    };
    let report = run();
    let mut waits = std::mem::take(&mut *seen.lock().expect("not poisoned"));
    waits.sort_unstable();

    // The bursts queued, and the report has every wait the bulkhead reported, no other.
    assert!(waits.len() > 100, "{} waits", waits.len());
    assert_eq!(report.queued(), waits.len() as u64);
    let per_tick: u64 = report.ticks().iter().map(|t| t.queued).sum();
    assert_eq!(per_tick, report.queued());
    assert!(report.event_count("bulkhead", "dequeued") > 0);
    assert!(report.event_count("bulkhead", "dequeued") <= report.queued());
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        let expected = nearest_rank(&waits, q);
        assert_eq!(
            report.queue_wait(q),
            Some(Duration::from_micros(expected.as_micros() as u64)),
            "q {q}"
        );
    }
    assert!(report.queue_wait(0.99).expect("p99") > Duration::ZERO);
    assert!(
        report.queue_wait(1.0).expect("max") <= ms(100),
        "bounded by max_wait"
    );
    // Only the bursts' ticks (0-2 s, 10-12 s, 20-22 s, and a little after) queue.
    for tick in report.ticks() {
        let in_burst = tick.start.as_secs() % 10 < 3;
        assert!(in_burst || tick.queued == 0, "{tick:?}");
        assert!(
            tick.queued == 0 || tick.wait_p99 > Duration::ZERO,
            "{tick:?}"
        );
    }
    // In the table, the CSV and the SVG.
    let table = report.table(6);
    assert!(
        table.contains(&format!("queue waits {}", report.queued())),
        "{table}"
    );
    assert!(table.contains("wait_p99_ms"), "{table}");
    let csv = report.csv();
    let header: Vec<&str> = csv.lines().next().expect("a header").split(',').collect();
    let queued = header.iter().position(|h| *h == "queued").expect("queued");
    let csv_queued: f64 = csv
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .nth(queued)
                .expect("a cell")
                .parse::<f64>()
                .expect("a number")
        })
        .sum();
    assert!((csv_queued - report.queued() as f64).abs() < 1e-9);
    assert!(header.contains(&"wait_p99_ms"));
    let svg = report.svg("queued");
    assert!(svg.contains(">queue wait p99 ms</text>"));
    assert_eq!(svg.matches("<polyline").count(), 7);

    // Reproducible, waits included.
    assert_eq!(run(), report);
    // Without the observer, or without a queue: none.
    assert_eq!(sim.run(|upstream| upstream).queued(), 0);
    assert_eq!(
        sim.run(|upstream| upstream).queue_wait(0.99),
        Some(Duration::ZERO)
    );
}
