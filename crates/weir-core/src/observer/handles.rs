//! The [`Metrics`](super::Metrics) observer's cache of registered handles: a refusal looks its
//! counters up here, and registers them with the recorder (which builds a label `Vec` and, in a
//! Prometheus exporter, hashes it into its registry) only the first time.

use std::sync::{PoisonError, RwLock};

use metrics::{Counter, Histogram, SharedString};

use super::vocab::{Event, Fate, Fields};
use super::{
    ATTEMPT_DURATION_SECONDS, BACKOFF_DELAY_SECONDS, CALLS_TOTAL, EVENTS_TOTAL, QUEUE_WAIT_SECONDS,
    TRANSITIONS_TOTAL,
};
use crate::name::Name;

/// The handles one observer registered, for the recorder they were registered with.
///
/// One entry per distinct (layer, kind, fate, reason, transition): a layer emits a handful (a
/// breaker's kinds by its seven states' transitions, a retry's reasons), each `'static` and from
/// a bounded set; client keys are never part of it.
pub(crate) struct Handles {
    /// The recorder the handles belong to, by address (0: none yet). Another recorder (a test's
    /// local recorder, one installed after the first event) empties the cache.
    recorder: usize,
    counters: Vec<Counters>,
    histograms: Vec<Histograms>,
}

/// The counters of one kind of event of one layer.
struct Counters {
    layer: Name,
    kind: &'static str,
    fate: Option<Fate>,
    reason: Option<&'static str>,
    transition: Option<(&'static str, &'static str)>,
    events: Counter,
    calls: Option<Counter>,
    transitions: Option<Counter>,
}

/// A layer's histograms, each registered when first recorded (a family never recorded is not
/// exported).
struct Histograms {
    layer: Name,
    delay: Option<Histogram>,
    wait: Option<Histogram>,
    latency: Option<Histogram>,
}

/// The address of the recorder the `metrics` macros would use here and now.
fn current_recorder() -> usize {
    metrics::with_recorder(|recorder| std::ptr::from_ref(recorder).cast::<()>().addr())
}

impl Handles {
    pub(crate) const fn new() -> Self {
        Self {
            recorder: 0,
            counters: Vec::new(),
            histograms: Vec::new(),
        }
    }

    fn counters<Ev: Event + ?Sized>(&self, event: &Ev, fields: &Fields) -> Option<&Counters> {
        let layer = event.layer();
        let kind = event.kind();
        let transition = fields.from.zip(fields.to);
        self.counters.iter().find(|c| {
            c.kind == kind
                && c.fate == fields.fate
                && c.reason == fields.reason
                && c.transition == transition
                && c.layer == *layer
        })
    }

    fn histograms(&self, layer: &Name) -> Option<&Histograms> {
        self.histograms.iter().find(|h| h.layer == *layer)
    }
}

/// Counts `event` (with its `fields`) through the handles in `cache`, registering what is
/// missing.
pub(crate) fn count<Ev: Event + ?Sized>(cache: &RwLock<Handles>, event: &Ev, fields: &Fields) {
    let recorder = current_recorder();
    let durations = [fields.delay, fields.wait, fields.latency];
    let timed = durations.iter().any(Option::is_some);
    let mut counted = false;
    {
        let handles = cache.read().unwrap_or_else(PoisonError::into_inner);
        if handles.recorder == recorder
            && let Some(counters) = handles.counters(event, fields)
        {
            increment(counters);
            counted = true;
            if !timed {
                return;
            }
            if let Some(histograms) = handles.histograms(event.layer())
                && record(histograms, durations)
            {
                return;
            }
        }
    }
    // The first event of its kind (or the first for this recorder): register, then count. The
    // read lock was let go in between: another thread may have registered meanwhile, so look
    // again.
    let mut handles = cache.write().unwrap_or_else(PoisonError::into_inner);
    if handles.recorder != recorder {
        *handles = Handles::new();
        handles.recorder = recorder;
    }
    if !counted {
        match handles.counters(event, fields) {
            Some(counters) => increment(counters),
            None => {
                let counters = register_counters(event, fields);
                increment(&counters);
                handles.counters.push(counters);
            }
        }
    }
    if timed {
        let layer = event.layer();
        let index = match handles.histograms.iter().position(|h| h.layer == *layer) {
            Some(index) => index,
            None => {
                handles.histograms.push(Histograms {
                    layer: layer.clone(),
                    delay: None,
                    wait: None,
                    latency: None,
                });
                handles.histograms.len() - 1
            }
        };
        let histograms = &mut handles.histograms[index];
        let pattern = event.pattern();
        let names = [
            (BACKOFF_DELAY_SECONDS, fields.delay, &mut histograms.delay),
            (QUEUE_WAIT_SECONDS, fields.wait, &mut histograms.wait),
            (
                ATTEMPT_DURATION_SECONDS,
                fields.latency,
                &mut histograms.latency,
            ),
        ];
        for (name, duration, slot) in names {
            if let Some(duration) = duration {
                slot.get_or_insert_with(|| {
                    metrics::histogram!(name, "pattern" => pattern, "layer" => layer.to_shared_string())
                })
                .record(duration);
            }
        }
    }
}

fn increment(counters: &Counters) {
    counters.events.increment(1);
    if let Some(calls) = &counters.calls {
        calls.increment(1);
    }
    if let Some(transitions) = &counters.transitions {
        transitions.increment(1);
    }
}

/// Records each duration into its histogram; `false` (nothing recorded) if one is not
/// registered yet.
fn record(histograms: &Histograms, durations: [Option<std::time::Duration>; 3]) -> bool {
    let slots = [&histograms.delay, &histograms.wait, &histograms.latency];
    if durations
        .iter()
        .zip(slots)
        .any(|(duration, slot)| duration.is_some() && slot.is_none())
    {
        return false;
    }
    for (duration, slot) in durations.into_iter().zip(slots) {
        if let (Some(duration), Some(histogram)) = (duration, slot) {
            histogram.record(duration);
        }
    }
    true
}

fn register_counters<Ev: Event + ?Sized>(event: &Ev, fields: &Fields) -> Counters {
    let pattern = event.pattern();
    let layer: SharedString = event.layer().to_shared_string();
    let events = metrics::counter!(
        EVENTS_TOTAL,
        "pattern" => pattern,
        "layer" => layer.clone(),
        "event" => event.kind(),
    );
    let calls = fields.fate.map(|fate| {
        metrics::counter!(
            CALLS_TOTAL,
            "pattern" => pattern,
            "layer" => layer.clone(),
            "outcome" => fate.as_str(),
            "reason" => fields.reason.unwrap_or_else(|| event.kind()),
        )
    });
    let transitions = fields.from.zip(fields.to).map(|(from, to)| {
        metrics::counter!(
            TRANSITIONS_TOTAL,
            "pattern" => pattern,
            "layer" => layer.clone(),
            "from" => from,
            "to" => to,
        )
    });
    Counters {
        layer: event.layer().clone(),
        kind: event.kind(),
        fate: fields.fate,
        reason: fields.reason,
        transition: fields.from.zip(fields.to),
        events,
        calls,
        transitions,
    }
}
