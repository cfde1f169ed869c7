//! Gauges and totals from the handles of a [`Registry`], read on a scrape or an exporter's tick:
//! nothing on any request's path.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metrics::SharedString;

use crate::inspect::{Registry, Snapshot};

/// The states seen so far, per pattern: a one-hot gauge sets every one of them to 0 except the
/// layer's own. A handful of `'static` names (a breaker has seven), shared by every registry of
/// the process.
static SEEN_STATES: Mutex<Vec<(&'static str, &'static str)>> = Mutex::new(Vec::new());

/// Sets the metrics of every layer in `registry` once, through the `metrics` facade's recorder.
///
/// For each snapshot of `pattern`'s layer `layer`:
///
/// - each gauge `g`: the gauge `weir_<pattern>_<g>{layer}`;
/// - each counter `c`: the counter `weir_<pattern>_<c>_total{layer}` (`_total` is not doubled),
///   set to the handle's total ([`Counter::absolute`](metrics::Counter::absolute));
/// - a named state: `weir_<pattern>_state{layer, state}` one-hot (1 for the layer's state, 0 for
///   every other state this process has seen a layer of the pattern in) and
///   `weir_<pattern>_state_value{layer}`, the state's number (a breaker: closed 0, open 1, ...).
///
/// Call it from a scrape handler before rendering, or let [`export`] call it on a timer.
///
/// ```
/// use weir_core::inspect::{Inspect, Registry, Snapshot};
/// use weir_core::Name;
///
/// struct Breaker;
///
/// impl Inspect for Breaker {
///     fn snapshot(&self) -> Snapshot {
///         Snapshot::new("circuit_breaker", Name::new("db"))
///             .state("open", 1)
///             .counter("rejected", 3)
///     }
/// }
///
/// let registry = Registry::new();
/// registry.register(Breaker);
/// // With a recorder installed, this sets weir_circuit_breaker_state{layer="db",state="open"} 1,
/// // weir_circuit_breaker_state_value{layer="db"} 1 and weir_circuit_breaker_rejected_total 3.
/// weir_core::observer::record(&registry);
/// ```
pub fn record(registry: &Registry) {
    for snapshot in registry.snapshot() {
        record_one(&snapshot);
    }
}

/// Starts a task that calls [`record`] on `registry` every `every` (the first time at once),
/// for as long as the returned handle is not aborted and the runtime runs.
///
/// The task only reads the handles' atomics and sets gauges: a request never waits on it. With a
/// Prometheus exporter that renders on scrape, calling [`record`] in the scrape handler instead
/// gives fresher values and no task.
///
/// # Panics
///
/// Outside a Tokio runtime, or if `every` is zero.
#[allow(
    clippy::must_use_candidate,
    reason = "dropping the handle detaches the task, which keeps running: the one-line use"
)]
pub fn export(registry: &Registry, every: Duration) -> tokio::task::JoinHandle<()> {
    assert!(!every.is_zero(), "the export interval must not be zero");
    let registry = registry.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            record(&registry);
        }
    })
}

fn record_one(snapshot: &Snapshot) {
    let pattern = snapshot.pattern;
    let layer = snapshot.layer.to_shared_string();
    for &(gauge, value) in &snapshot.gauges {
        metrics::gauge!(format!("weir_{pattern}_{gauge}"), "layer" => layer.clone()).set(value);
    }
    for &(counter, value) in &snapshot.counters {
        let name = if counter.ends_with("_total") {
            format!("weir_{pattern}_{counter}")
        } else {
            format!("weir_{pattern}_{counter}_total")
        };
        metrics::counter!(name, "layer" => layer.clone()).absolute(value);
    }
    if let Some(state) = snapshot.state {
        let others = seen_states(pattern, state.name);
        let name = SharedString::from(format!("weir_{pattern}_state"));
        for other in others {
            metrics::gauge!(name.clone(), "layer" => layer.clone(), "state" => other).set(0.0);
        }
        metrics::gauge!(name, "layer" => layer.clone(), "state" => state.name).set(1.0);
        metrics::gauge!(format!("weir_{pattern}_state_value"), "layer" => layer)
            .set(f64::from(state.value));
    }
}

/// Notes that `pattern` has a state `current`; returns the other states seen for `pattern`.
fn seen_states(pattern: &'static str, current: &'static str) -> Vec<&'static str> {
    let mut seen = SEEN_STATES.lock().unwrap_or_else(PoisonError::into_inner);
    if !seen.contains(&(pattern, current)) {
        seen.push((pattern, current));
    }
    seen.iter()
        .filter(|&&(p, s)| p == pattern && s != current)
        .map(|&(_, s)| s)
        .collect()
}
