//! Observers: how a layer tells the world what it did, at no cost when nobody listens.

use std::fmt;

use crate::name::Name;

/// An event a weir layer emits: a rejection, a retry, a hedge, a state change.
///
/// Each pattern crate has its own `Event<'a>` type that borrows its data (no allocation to emit)
/// and implements this trait, so the observers written once here ([`Tracing`], [`Metrics`]) can
/// report any of them.
pub trait Event: fmt::Debug {
    /// The pattern that emitted it, in `snake_case`: `"rate_limit"`, `"circuit_breaker"`, ...
    fn pattern(&self) -> &'static str;

    /// What happened, in `snake_case`: `"rejected"`, `"retry"`, `"state_change"`, ...
    fn kind(&self) -> &'static str;

    /// The configured name of the layer instance that emitted it.
    fn layer(&self) -> &Name;

    /// How much it matters; [`Level::Info`] unless the event says otherwise.
    fn level(&self) -> Level {
        Level::Info
    }
}

/// How much an event matters, for loggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Routine detail (a retry scheduled).
    Debug,
    /// Worth knowing (a request rejected).
    Info,
    /// Worth acting on (a circuit opened, a backend unreachable).
    Warn,
}

/// Receives a layer's events.
///
/// Every weir layer takes an observer type parameter that defaults to `()`, whose `on_event` is an
/// inlined no-op, so an unobserved layer pays nothing. Closures taking `&Event` are observers, a
/// pair `(A, B)` calls both, and the [`Tracing`] and [`Metrics`] observers (behind the features of
/// the same names) report every event of every pattern the same way.
///
/// Events are emitted only on rejections, retries, hedges and state changes, never per admitted
/// request, and the observer runs inline on the request path: keep it quick.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weir_core::{Event, Name, Observer};
///
/// #[derive(Debug)]
/// struct Rejected<'a> { layer: &'a Name }
///
/// impl Event for Rejected<'_> {
///     fn pattern(&self) -> &'static str { "rate_limit" }
///     fn kind(&self) -> &'static str { "rejected" }
///     fn layer(&self) -> &Name { self.layer }
/// }
///
/// let rejections = AtomicUsize::new(0);
/// let observer = |_: &Rejected<'_>| {
///     rejections.fetch_add(1, Ordering::Relaxed);
/// };
/// let layer = Name::new("edge");
/// observer.on_event(&Rejected { layer: &layer });
/// ().on_event(&Rejected { layer: &layer }); // the default: nothing happens
/// assert_eq!(rejections.load(Ordering::Relaxed), 1);
/// ```
pub trait Observer<Ev: ?Sized> {
    /// Called with each event.
    fn on_event(&self, event: &Ev);
}

impl<Ev: ?Sized> Observer<Ev> for () {
    #[inline(always)]
    fn on_event(&self, _event: &Ev) {}
}

impl<F, Ev: ?Sized> Observer<Ev> for F
where
    F: Fn(&Ev),
{
    #[inline]
    fn on_event(&self, event: &Ev) {
        self(event);
    }
}

impl<A, B, Ev: ?Sized> Observer<Ev> for (A, B)
where
    A: Observer<Ev>,
    B: Observer<Ev>,
{
    #[inline]
    fn on_event(&self, event: &Ev) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

/// Logs every event through `tracing`, at the event's [`Level`], target `weir`, with the fields
/// `pattern`, `layer`, `event` and the event's `Debug` form as `detail`.
#[cfg(feature = "tracing")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracing;

#[cfg(feature = "tracing")]
impl<Ev: Event + ?Sized> Observer<Ev> for Tracing {
    fn on_event(&self, event: &Ev) {
        let (pattern, layer, kind) = (event.pattern(), event.layer().as_str(), event.kind());
        match event.level() {
            Level::Debug => {
                tracing::debug!(target: "weir", pattern, layer, event = kind, detail = ?event);
            }
            Level::Info => {
                tracing::info!(target: "weir", pattern, layer, event = kind, detail = ?event);
            }
            Level::Warn => {
                tracing::warn!(target: "weir", pattern, layer, event = kind, detail = ?event);
            }
        }
    }
}

/// Counts every event through the `metrics` facade: the counter `weir_events_total` with the
/// labels `pattern`, `layer` and `event`. Install any `metrics` recorder (a Prometheus exporter,
/// for example) to collect it.
#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics;

/// The name of the counter the [`Metrics`] observer increments.
#[cfg(feature = "metrics")]
pub const EVENTS_TOTAL: &str = "weir_events_total";

#[cfg(feature = "metrics")]
impl<Ev: Event + ?Sized> Observer<Ev> for Metrics {
    fn on_event(&self, event: &Ev) {
        metrics::counter!(
            EVENTS_TOTAL,
            "pattern" => event.pattern(),
            "layer" => event.layer().to_shared_string(),
            "event" => event.kind(),
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Debug)]
    struct Opened<'a> {
        layer: &'a Name,
    }

    impl Event for Opened<'_> {
        fn pattern(&self) -> &'static str {
            "circuit_breaker"
        }
        fn kind(&self) -> &'static str {
            "state_change"
        }
        fn layer(&self) -> &Name {
            self.layer
        }
        fn level(&self) -> Level {
            Level::Warn
        }
    }

    #[test]
    fn a_pair_calls_both_in_order() {
        let seen = RefCell::new(Vec::new());
        let first = |e: &Opened<'_>| seen.borrow_mut().push(format!("1:{}", e.layer()));
        let second = |e: &Opened<'_>| seen.borrow_mut().push(format!("2:{}", e.kind()));
        let name = Name::new("db");
        (first, second).on_event(&Opened { layer: &name });
        assert_eq!(*seen.borrow(), ["1:db", "2:state_change"]);
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn tracing_observer_accepts_any_event() {
        // No subscriber is installed: this proves it compiles for a borrowed event and does not
        // panic; what it logs is tracing's concern.
        let name = Name::new("db");
        Tracing.on_event(&Opened { layer: &name });
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn metrics_observer_counts_with_labels() {
        use std::sync::{Arc, Mutex};

        use metrics::{
            Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
            Unit,
        };

        #[derive(Default)]
        struct Seen(Mutex<Vec<(String, Vec<(String, String)>, u64)>>);

        struct Handle(Arc<Seen>, Key);

        impl CounterFn for Handle {
            fn increment(&self, value: u64) {
                let labels = self
                    .1
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                self.0.0.lock().expect("not poisoned").push((
                    self.1.name().to_owned(),
                    labels,
                    value,
                ));
            }
            fn absolute(&self, _value: u64) {}
        }

        struct Rec(Arc<Seen>);

        impl Recorder for Rec {
            fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
                Counter::from_arc(Arc::new(Handle(self.0.clone(), key.clone())))
            }
            fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
                Gauge::noop()
            }
            fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
                Histogram::noop()
            }
        }

        let seen = Arc::new(Seen::default());
        let name = Name::from(String::from("payments"));
        metrics::with_local_recorder(&Rec(seen.clone()), || {
            Metrics.on_event(&Opened { layer: &name });
        });
        let seen = seen.0.lock().expect("not poisoned");
        assert_eq!(seen.len(), 1);
        let (metric, labels, value) = &seen[0];
        assert_eq!(metric, EVENTS_TOTAL);
        assert_eq!(*value, 1);
        let label = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(label("pattern"), Some("circuit_breaker"));
        assert_eq!(label("layer"), Some("payments"));
        assert_eq!(label("event"), Some("state_change"));
    }
}
