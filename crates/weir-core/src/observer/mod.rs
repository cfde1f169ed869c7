//! The observers written once for every pattern: [`Tracing`] logs each event through
//! `tracing` with structured fields, [`Metrics`](struct@Metrics) turns it into the counters and histograms of the
//! naming table (weir-core's README), and [`record`] / [`export`] turn the handles of a
//! [`Registry`](crate::inspect::Registry) into gauges, with no cost on any request. The traits
//! they implement, [`crate::Observer`], [`crate::Event`] and [`crate::Level`], are at the crate
//! root; [`Fields`], [`Fate`] and [`TraceId`] are what an event carries.
//!
//! # Metric names
//!
//! Prefix `weir_`; labels `pattern`, `layer` (the layer's [`Name`](crate::Name)) and, where a
//! family has one, a bounded `outcome`, `reason`, `from`/`to` or `state`. Client keys are never
//! labels: a keyed layer's keys would make one series each.
//!
//! | name | type | labels | from |
//! |---|---|---|---|
//! | `weir_events_total` | counter | `pattern`, `layer`, `event` | every event ([`Metrics`](struct@Metrics)) |
//! | `weir_calls_total` | counter | `pattern`, `layer`, `outcome`, `reason` | every event with a [`Fate`] ([`Metrics`](struct@Metrics)) |
//! | `weir_transitions_total` | counter | `pattern`, `layer`, `from`, `to` | every state change ([`Metrics`](struct@Metrics)) |
//! | `weir_backoff_delay_seconds` | histogram | `pattern`, `layer` | a retry's delay ([`Metrics`](struct@Metrics)) |
//! | `weir_queue_wait_seconds` | histogram | `pattern`, `layer` | an event's `wait` ([`Metrics`](struct@Metrics); the bulkhead's queued requests) |
//! | `weir_attempt_duration_seconds` | histogram | `pattern`, `layer` | an event's `latency` ([`Metrics`](struct@Metrics); retry's and hedge's attempts, when the observer [wants latencies](crate::Observer::wants_latency)) |
//! | `weir_<pattern>_<gauge>` | gauge | `layer` | each gauge of a registered handle's snapshot ([`record`]) |
//! | `weir_<pattern>_<counter>_total` | counter | `layer` | each counter of a snapshot, absolute ([`record`]) |
//! | `weir_<pattern>_state` | gauge | `layer`, `state` | one-hot: 1 for the state a layer is in, 0 for the others seen ([`record`]) |
//! | `weir_<pattern>_state_value` | gauge | `layer` | the state's number ([`record`]) |
//! | `weir_config_reload_total` | counter | `result` (`applied`, `refused`, `unreadable`) | each configuration file the `weir` crate's reloader and watcher saw change (#25) |
//!
//! # Tracing
//!
//! [`Tracing`] emits one event per weir event, target `weir`, at the event's [`Level`] (a
//! rejection `debug`, a transition `info`, a misconfiguration `warn`). The event is emitted where
//! the layer decided, inline, so it belongs to whatever span is current: the caller's request span
//! (tower-http's `TraceLayer`, a `#[tracing::instrument]`ed handler or client call) is its parent,
//! and a rejection shows up inside the caller's trace. Where the request carried a W3C
//! `traceparent` header and the layer read it (only when it emits an event about the request: a
//! rejection, a retry, a hedge, a fallback, an injected fault), its trace id is the field
//! `trace_id`.

#[cfg(feature = "metrics")]
mod export;
#[cfg(feature = "metrics")]
mod handles;
pub(crate) mod vocab;

#[cfg(feature = "metrics")]
pub use self::export::{export, record};
pub use self::vocab::{Fate, Fields, TraceId};

#[cfg(feature = "tracing")]
use self::vocab::Level;
#[cfg(any(feature = "tracing", feature = "metrics"))]
use self::vocab::{Event, Observer};

/// Logs every event through `tracing`, at the event's [`Level`], target `weir`.
///
/// Fields: `pattern`, `layer`, `event` (the kind), then each of the event's [`Fields`] that is
/// set: `outcome`, `reason`, `retry_after`, `wait`, `attempt`, `delay`, `latency`, `from`, `to`,
/// `budget_left`, `load_level`, `trace_id`; and the event's `Debug` form as `detail`. Durations
/// are written in their `Debug` form (`1.5s`). The event is emitted in the current span (see the
/// [module docs](self#tracing)).
#[cfg(feature = "tracing")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracing;

/// One `tracing` event at a constant level (a callsite's level is static), with every field.
#[cfg(feature = "tracing")]
macro_rules! trace_event {
    ($level:expr, $event:expr, $f:expr) => {{
        // `debug` and `display` below are tracing's `field::{debug, display}`, which its macro
        // brings into scope.
        let f: &Fields = $f;
        tracing::event!(
            target: "weir",
            $level,
            pattern = $event.pattern(),
            layer = $event.layer().as_str(),
            event = $event.kind(),
            outcome = f.fate.map(Fate::as_str),
            reason = f.reason,
            retry_after = f.retry_after.map(debug),
            wait = f.wait.map(debug),
            attempt = f.attempt,
            delay = f.delay.map(debug),
            latency = f.latency.map(debug),
            from = f.from,
            to = f.to,
            budget_left = f.budget_left.map(debug),
            load_level = f.load_level,
            trace_id = f.trace_id.map(display),
            detail = ?$event,
        )
    }};
}

#[cfg(feature = "tracing")]
impl<Ev: Event + ?Sized> Observer<Ev> for Tracing {
    fn on_event(&self, event: &Ev) {
        let fields = event.fields();
        match event.level() {
            Level::Debug => trace_event!(tracing::Level::DEBUG, event, &fields),
            Level::Info => trace_event!(tracing::Level::INFO, event, &fields),
            Level::Warn => trace_event!(tracing::Level::WARN, event, &fields),
        }
    }

    /// `true`: an attempt's latency is a field of its log line.
    fn wants_latency(&self) -> bool {
        true
    }

    /// `true`: the request's trace id is a field of its log line.
    fn wants_trace_id(&self) -> bool {
        true
    }
}

/// Turns every event into the counters and histograms of the naming table (see the
/// [module docs](self#metric-names)) through the `metrics` facade: `weir_events_total` for each
/// event, `weir_calls_total` for each one that decided a call's [`Fate`], `weir_transitions_total`
/// for each state change, and the histograms `weir_backoff_delay_seconds`,
/// `weir_queue_wait_seconds` and `weir_attempt_duration_seconds` for the durations an event
/// carries. Install any `metrics` recorder (a Prometheus exporter, for example) to collect them.
///
/// It runs only where a layer emits an event (rejections, retries, hedges, fallbacks, timeouts,
/// sheds, state changes), never on an admitted call: the admitted path costs the same with and
/// without it. Gauges come from the handles, through [`record`] or [`export`].
///
/// Each value keeps the handles it registered (per layer, kind of event, outcome, reason and
/// transition: a bounded set), so an event registers its counters with the recorder once and
/// later ones only look them up under a read lock and increment them. Handles belong to the
/// recorder they were registered with: when the current recorder changes (a local recorder, one
/// installed after the first event) the cache starts again. `Metrics` (the constant of the same
/// name) and `Metrics::default()` are a new, empty cache each; a clone starts empty too. Give
/// each layer its own (`.observer(Metrics)`), as the one-line use does.
#[cfg(feature = "metrics")]
pub struct Metrics {
    handles: std::sync::RwLock<handles::Handles>,
}

/// A [`Metrics`](struct@Metrics) observer with an empty cache: `.observer(Metrics)` reads as it did when
/// `Metrics` was a unit struct.
#[cfg(feature = "metrics")]
#[allow(
    non_upper_case_globals,
    reason = "the value of the type of the same name, as a unit struct's would be"
)]
#[allow(
    clippy::declare_interior_mutable_const,
    reason = "meant: each use is a new observer with its own empty cache"
)]
pub const Metrics: Metrics = Metrics {
    handles: std::sync::RwLock::new(handles::Handles::new()),
};

#[cfg(feature = "metrics")]
impl Default for Metrics {
    fn default() -> Self {
        Metrics
    }
}

#[cfg(feature = "metrics")]
impl Clone for Metrics {
    /// A new, empty cache (handles are registered again on the clone's first events).
    fn clone(&self) -> Self {
        Metrics
    }
}

#[cfg(feature = "metrics")]
impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// `weir_events_total{pattern, layer, event}`: every event.
#[cfg(feature = "metrics")]
pub const EVENTS_TOTAL: &str = "weir_events_total";
/// `weir_calls_total{pattern, layer, outcome, reason}`: every event that decided a call's
/// [`Fate`] (`reason` is the event's reason, or its kind when it has none).
#[cfg(feature = "metrics")]
pub const CALLS_TOTAL: &str = "weir_calls_total";
/// `weir_transitions_total{pattern, layer, from, to}`: every state change.
#[cfg(feature = "metrics")]
pub const TRANSITIONS_TOTAL: &str = "weir_transitions_total";
/// `weir_backoff_delay_seconds{pattern, layer}`: the delay before each retry.
#[cfg(feature = "metrics")]
pub const BACKOFF_DELAY_SECONDS: &str = "weir_backoff_delay_seconds";
/// `weir_queue_wait_seconds{pattern, layer}`: how long a queued request waited.
#[cfg(feature = "metrics")]
pub const QUEUE_WAIT_SECONDS: &str = "weir_queue_wait_seconds";
/// `weir_attempt_duration_seconds{pattern, layer}`: how long an attempt took, where the layer
/// measures it.
#[cfg(feature = "metrics")]
pub const ATTEMPT_DURATION_SECONDS: &str = "weir_attempt_duration_seconds";

#[cfg(feature = "metrics")]
impl<Ev: Event + ?Sized> Observer<Ev> for Metrics {
    fn on_event(&self, event: &Ev) {
        handles::count(&self.handles, event, &event.fields());
    }

    /// `true`: an attempt's latency feeds `weir_attempt_duration_seconds`.
    fn wants_latency(&self) -> bool {
        true
    }
}

#[cfg(all(test, feature = "metrics"))]
mod capture;
#[cfg(test)]
mod tests;
