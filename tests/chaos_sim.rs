//! The simulator example's own comparison (`examples/chaos_sim.rs`), on a short horizon: the
//! retry storm of a naive client, and `ClientStack`'s budget and breaker holding it back.

use std::time::Duration;

use weir_chaos::sim::Outcome;

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/chaos_sim.rs"]
mod chaos_sim;

#[test]
fn the_client_stack_holds_back_the_retry_storm_of_an_outage() {
    let horizon = Duration::from_secs(60);
    let runs = chaos_sim::compare(horizon);
    let [none, retries, client] = [&runs[0], &runs[1], &runs[2]].map(|run| &run.report);
    assert_eq!(none.requests(), retries.requests(), "the same arrivals");
    assert_eq!(none.requests(), client.requests());

    // No resilience: one call per request, and the outage's requests fail.
    assert!((chaos_sim::outage_amplification(none, horizon) - 1.0).abs() < 1e-9);
    assert!(none.total(Outcome::UpstreamFailure) > 0);
    // Retries only: four calls per request during the outage.
    let storm = chaos_sim::outage_amplification(retries, horizon);
    assert!(storm > 3.9, "the retry storm: x{storm:.2}");
    // The full stack: fewer calls than requests during the outage (the breaker is open), and
    // it opened and closed again.
    let held = chaos_sim::outage_amplification(client, horizon);
    assert!(held < 1.0, "held back: x{held:.2}");
    assert!(client.total(Outcome::CircuitOpen) > 0);
    let transitions = client.transitions();
    assert!(transitions.len() >= 2, "{transitions:?}");
    assert!(
        transitions[0].detail.contains("to: Open"),
        "{:?}",
        transitions[0]
    );
    let last = transitions.last().expect("a last change");
    assert!(last.detail.contains("to: Closed"), "{last:?}");
    // After the outage every stack succeeds again.
    for report in [none, retries, client] {
        let tail = report.ticks().last().expect("ticks");
        assert_eq!(tail.count(Outcome::Success), tail.requests(), "{tail:?}");
    }

    let summary = chaos_sim::summary(&runs, horizon);
    assert_eq!(summary.lines().count(), 2 + 3, "{summary}");
    // Seeded throughout, the ClientStack included: a second comparison is the same.
    let again = chaos_sim::compare(horizon);
    assert_eq!(chaos_sim::summary(&again, horizon), summary);
    assert!(again.iter().zip(&runs).all(|(a, b)| a.report == b.report));
}

#[test]
fn the_queue_run_reports_the_bulkheads_waits() {
    let horizon = Duration::from_secs(60);
    let run = chaos_sim::queued(horizon);
    let report = &run.report;
    let dequeued = report.event_count("bulkhead", "dequeued");
    // The bursts queue: every dequeued request's wait is in the report (and those refused after
    // waiting past 250 ms).
    assert!(dequeued > 0, "{:?}", report.events());
    assert!(report.queued() >= dequeued);
    let wait_max = report.queue_wait(1.0).expect("the max");
    assert!(wait_max > Duration::ZERO);
    assert!(wait_max <= Duration::from_millis(250), "{wait_max:?}");
    // Most waits in the ticks of a burst (0-3 s and 30-33 s); between them, 50 a second of
    // 20 ms calls queue now and then behind the four permits.
    let (burst, calm) =
        report
            .ticks()
            .iter()
            .fold((0, 0), |(burst, calm), t| match t.start.as_secs() % 30 {
                0..3 => (burst + t.queued, calm),
                _ => (burst, calm + t.queued),
            });
    assert!(
        burst > 3 * calm,
        "{burst} waits in 6 s of bursts, {calm} in the other 54 s"
    );
    let summary = chaos_sim::queue_summary(&run);
    assert_eq!(summary.lines().count(), 3, "{summary}");
    assert!(
        summary.contains(&format!("| {} |", report.queued())),
        "{summary}"
    );
}
