//! The observers written once for every pattern: [`Tracing`] logs each event through
//! `tracing`, [`Metrics`] counts it through the `metrics` facade. The traits they implement,
//! [`crate::Observer`], [`crate::Event`] and [`crate::Level`], are at the
//! crate root.

pub(crate) mod vocab;

#[cfg(feature = "tracing")]
use self::vocab::Level;
#[cfg(any(feature = "tracing", feature = "metrics"))]
use self::vocab::{Event, Observer};

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

    #[cfg(any(feature = "tracing", feature = "metrics"))]
    use super::*;
    use crate::{Event, Level, Name, Observer};

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
