use std::cell::RefCell;
use std::time::Duration;

use super::vocab::{Fate, Fields, TraceId};
#[cfg(any(feature = "tracing", feature = "metrics"))]
use super::*;
use crate::{Event, Level, Name, Observer};

/// A test event whose fields are whatever the test says.
#[derive(Debug)]
struct Probe<'a> {
    layer: &'a Name,
    kind: &'static str,
    level: Level,
    fields: Fields,
}

impl Event for Probe<'_> {
    fn pattern(&self) -> &'static str {
        "circuit_breaker"
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn layer(&self) -> &Name {
        self.layer
    }
    fn level(&self) -> Level {
        self.level
    }
    fn fields(&self) -> Fields {
        self.fields
    }
}

fn probe<'a>(layer: &'a Name, kind: &'static str, fields: Fields) -> Probe<'a> {
    Probe {
        layer,
        kind,
        level: Level::Debug,
        fields,
    }
}

#[test]
fn a_pair_calls_both_in_order() {
    let seen = RefCell::new(Vec::new());
    let first = |e: &Probe<'_>| seen.borrow_mut().push(format!("1:{}", e.layer()));
    let second = |e: &Probe<'_>| seen.borrow_mut().push(format!("2:{}", e.kind()));
    let name = Name::new("db");
    (first, second).on_event(&probe(&name, "state_change", Fields::NONE));
    assert_eq!(*seen.borrow(), ["1:db", "2:state_change"]);
}

#[test]
fn an_event_has_no_fields_unless_it_says() {
    #[derive(Debug)]
    struct Bare<'a>(&'a Name);
    impl Event for Bare<'_> {
        fn pattern(&self) -> &'static str {
            "x"
        }
        fn kind(&self) -> &'static str {
            "y"
        }
        fn layer(&self) -> &Name {
            self.0
        }
    }
    let name = Name::new("db");
    assert_eq!(Bare(&name).fields(), Fields::NONE);
    assert_eq!(Fields::default(), Fields::NONE);
}

#[test]
fn trace_ids_are_read_from_valid_traceparents_only() {
    let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let id = TraceId::parse(valid).expect("valid");
    assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(id.to_bytes()[0], 0x4b);
    // A later version may append fields after a dash.
    let future = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
    assert_eq!(TraceId::parse(future), Some(id));
    for bad in [
        &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        b"",
        b"garbage",
    ] {
        assert_eq!(
            TraceId::parse(bad),
            None,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut headers = http::HeaderMap::new();
    assert_eq!(TraceId::from_headers(&headers), None);
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "),
    );
    assert_eq!(TraceId::from_headers(&headers), Some(id));
}

/// #19: only an observer that logs trace ids asks a layer to read them on every request (the
/// fallback's HTTP mode): `()` and closures do not, `Tracing` does, `Metrics` (no trace id
/// label) does not, and a pair does if either does.
#[test]
fn only_an_observer_that_logs_them_wants_trace_ids() {
    fn wants<O: for<'a> Observer<Probe<'a>>>(observer: &O) -> bool {
        observer.wants_trace_id()
    }
    let closure = |_: &Probe<'_>| {};
    assert!(!wants(&()));
    assert!(!wants(&closure));
    assert!(!wants(&((), closure)));
    #[cfg(feature = "tracing")]
    {
        assert!(wants(&Tracing));
        assert!(wants(&((), Tracing)));
        assert!(wants(&(Tracing, ())));
    }
    #[cfg(feature = "metrics")]
    assert!(!wants(&Metrics::default()));
}

#[cfg(feature = "metrics")]
mod metrics_observer {
    use super::super::capture::{Capture, Value};
    use super::*;
    use crate::inspect::{Inspect, Registry, Snapshot};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

    #[test]
    fn every_family_of_the_event_table_is_emitted_with_its_labels() {
        let capture = Capture::default();
        let name = Name::from(String::from("payments"));
        let retry = Fields::NONE
            .fate(Fate::Retried)
            .reason("transient")
            .attempt(1)
            .delay(Duration::from_millis(250))
            .latency(Duration::from_millis(40));
        let queued = Fields::NONE.wait(Duration::from_millis(10));
        let opened = Fields::NONE.transition("closed", "open");
        let timed_out = Fields::NONE.fate(Fate::TimedOut);
        let observer = Metrics;
        metrics::with_local_recorder(&capture, || {
            observer.on_event(&probe(&name, "retry", retry));
            observer.on_event(&probe(&name, "retry", retry));
            observer.on_event(&probe(&name, "queued", queued));
            observer.on_event(&probe(&name, "state_change", opened));
            observer.on_event(&probe(&name, "timed_out", timed_out));
        });
        let base = [("pattern", "circuit_breaker"), ("layer", "payments")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut labels = base.to_vec();
            labels.extend_from_slice(extra);
            labels
        };
        assert_eq!(
            capture.get(EVENTS_TOTAL, &with(&[("event", "retry")])),
            Some(Value::Counter(2))
        );
        assert_eq!(
            capture.get(
                CALLS_TOTAL,
                &with(&[("outcome", "retried"), ("reason", "transient")])
            ),
            Some(Value::Counter(2))
        );
        // No reason: the event's kind stands in, so the label set is the same for every event.
        assert_eq!(
            capture.get(
                CALLS_TOTAL,
                &with(&[("outcome", "timed_out"), ("reason", "timed_out")])
            ),
            Some(Value::Counter(1))
        );
        assert_eq!(
            capture.get(
                TRANSITIONS_TOTAL,
                &with(&[("from", "closed"), ("to", "open")])
            ),
            Some(Value::Counter(1))
        );
        assert_eq!(
            capture.get(BACKOFF_DELAY_SECONDS, &base),
            Some(Value::Histogram(vec![0.25, 0.25]))
        );
        assert_eq!(
            capture.get(ATTEMPT_DURATION_SECONDS, &base),
            Some(Value::Histogram(vec![0.04, 0.04]))
        );
        assert_eq!(
            capture.get(QUEUE_WAIT_SECONDS, &base),
            Some(Value::Histogram(vec![0.01]))
        );
        // An event without a fate is not a call's outcome.
        assert_eq!(
            capture.get(
                CALLS_TOTAL,
                &with(&[("outcome", "rejected"), ("reason", "queued")])
            ),
            None
        );
    }

    #[test]
    fn an_observer_registers_each_handle_once_and_counts_through_it() {
        let capture = Capture::default();
        let payments = Name::from(String::from("payments"));
        let orders = Name::new("orders");
        let rejected = Fields::NONE.fate(Fate::Rejected).reason("open");
        let retry = Fields::NONE
            .fate(Fate::Retried)
            .reason("transient")
            .delay(Duration::from_millis(250));
        let observer = Metrics;
        metrics::with_local_recorder(&capture, || {
            observer.on_event(&probe(&payments, "rejected", rejected));
            // events_total and calls_total.
            assert_eq!(capture.registrations(), 2);
            for _ in 0..9 {
                observer.on_event(&probe(&payments, "rejected", rejected));
            }
            assert_eq!(
                capture.registrations(),
                2,
                "nothing registered after the first"
            );
            // Another reason, another layer: their own handles, once.
            observer.on_event(&probe(&payments, "rejected", rejected.reason("half_open")));
            observer.on_event(&probe(&orders, "rejected", rejected));
            observer.on_event(&probe(&orders, "rejected", rejected));
            assert_eq!(capture.registrations(), 6);
            // A retry: two counters and its delay's histogram, then nothing more.
            observer.on_event(&probe(&payments, "retry", retry));
            assert_eq!(capture.registrations(), 9);
            observer.on_event(&probe(&payments, "retry", retry));
            assert_eq!(capture.registrations(), 9);
        });
        let labels = |layer: &'static str, event: &'static str| {
            vec![
                ("pattern", "circuit_breaker"),
                ("layer", layer),
                ("event", event),
            ]
        };
        assert_eq!(
            capture.get(EVENTS_TOTAL, &labels("payments", "rejected")),
            Some(Value::Counter(11))
        );
        assert_eq!(
            capture.get(EVENTS_TOTAL, &labels("orders", "rejected")),
            Some(Value::Counter(2))
        );
        assert_eq!(
            capture.get(
                CALLS_TOTAL,
                &[
                    ("pattern", "circuit_breaker"),
                    ("layer", "payments"),
                    ("outcome", "rejected"),
                    ("reason", "half_open")
                ]
            ),
            Some(Value::Counter(1))
        );
        assert_eq!(
            capture.get(
                BACKOFF_DELAY_SECONDS,
                &[("pattern", "circuit_breaker"), ("layer", "payments")]
            ),
            Some(Value::Histogram(vec![0.25, 0.25]))
        );

        // Another recorder: the handles of the first are not used for it.
        let other = Capture::default();
        metrics::with_local_recorder(&other, || {
            observer.on_event(&probe(&payments, "rejected", rejected));
        });
        assert_eq!(
            other.get(EVENTS_TOTAL, &labels("payments", "rejected")),
            Some(Value::Counter(1))
        );
        assert_eq!(
            capture.get(EVENTS_TOTAL, &labels("payments", "rejected")),
            Some(Value::Counter(11)),
            "the first recorder saw nothing of it"
        );
    }

    /// A breaker-like handle whose state and totals the test moves.
    #[derive(Default)]
    struct Breaker {
        state: AtomicU8,
        rejected: AtomicU64,
    }

    impl Inspect for Arc<Breaker> {
        fn snapshot(&self) -> Snapshot {
            let (name, value) = match self.state.load(Ordering::Relaxed) {
                0 => ("closed", 0),
                1 => ("open", 1),
                _ => ("half_open", 2),
            };
            Snapshot::new("circuit_breaker", Name::new("db"))
                .state(name, value)
                .gauge("failure_rate", 0.5)
                .counter("rejected", self.rejected.load(Ordering::Relaxed))
                .counter("calls_total", 9)
        }
    }

    #[test]
    fn record_sets_gauges_absolute_totals_and_a_one_hot_state() {
        let capture = Capture::default();
        let breaker = Arc::new(Breaker::default());
        let registry = Registry::new();
        registry.register(breaker.clone());
        let layer = [("layer", "db")];
        let state = |s| [("layer", "db"), ("state", s)];
        breaker.state.store(1, Ordering::Relaxed);
        breaker.rejected.store(7, Ordering::Relaxed);
        metrics::with_local_recorder(&capture, || record(&registry));
        assert_eq!(
            capture.get("weir_circuit_breaker_state", &state("open")),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_state_value", &layer),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_failure_rate", &layer),
            Some(Value::Gauge(0.5))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_rejected_total", &layer),
            Some(Value::Counter(7))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_calls_total", &layer),
            Some(Value::Counter(9))
        );
        assert!(
            !capture
                .names()
                .contains(&"weir_circuit_breaker_calls_total_total".to_owned())
        );

        // The breaker closes: the one-hot moves, the total is set, not added.
        breaker.state.store(0, Ordering::Relaxed);
        breaker.rejected.store(8, Ordering::Relaxed);
        metrics::with_local_recorder(&capture, || record(&registry));
        assert_eq!(
            capture.get("weir_circuit_breaker_state", &state("open")),
            Some(Value::Gauge(0.0))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_state", &state("closed")),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_state_value", &layer),
            Some(Value::Gauge(0.0))
        );
        assert_eq!(
            capture.get("weir_circuit_breaker_rejected_total", &layer),
            Some(Value::Counter(8))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn export_records_on_every_tick() {
        let capture = Capture::default();
        let _guard = metrics::set_default_local_recorder(&capture);
        let breaker = Arc::new(Breaker::default());
        let registry = Registry::new();
        registry.register(breaker.clone());
        let rejected = || capture.get("weir_circuit_breaker_rejected_total", &[("layer", "db")]);
        breaker.rejected.store(1, Ordering::Relaxed);
        let task = export(&registry, Duration::from_secs(10));
        tokio::task::yield_now().await;
        assert_eq!(
            rejected(),
            Some(Value::Counter(1)),
            "the first pass is at once"
        );
        breaker.rejected.store(5, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(5)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            rejected(),
            Some(Value::Counter(1)),
            "not before the interval"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        tokio::task::yield_now().await;
        assert_eq!(rejected(), Some(Value::Counter(5)));
        task.abort();
    }
}

#[cfg(feature = "tracing")]
mod tracing_observer {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Metadata, Subscriber};

    use super::*;

    #[derive(Debug, Default)]
    struct Line {
        level: String,
        target: String,
        fields: BTreeMap<String, String>,
        /// The span that was current when the event was emitted.
        span: Option<u64>,
    }

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    /// A subscriber that keeps every event's fields and the span it was emitted in.
    #[derive(Clone, Default)]
    struct Keep {
        lines: Arc<Mutex<Vec<Line>>>,
        entered: Arc<Mutex<Vec<u64>>>,
        next: Arc<Mutex<u64>>,
    }

    impl Subscriber for Keep {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            let mut next = self.next.lock().expect("not poisoned");
            *next += 1;
            Id::from_u64(*next)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut line = Line {
                level: event.metadata().level().to_string(),
                target: event.metadata().target().to_owned(),
                span: self.entered.lock().expect("not poisoned").last().copied(),
                ..Line::default()
            };
            event.record(&mut line);
            self.lines.lock().expect("not poisoned").push(line);
        }
        fn enter(&self, span: &Id) {
            self.entered
                .lock()
                .expect("not poisoned")
                .push(span.into_u64());
        }
        fn exit(&self, _: &Id) {
            self.entered.lock().expect("not poisoned").pop();
        }
    }

    #[test]
    fn events_carry_structured_fields_at_their_level_inside_the_callers_span() {
        let keep = Keep::default();
        let name = Name::new("edge");
        let id = TraceId::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        tracing::subscriber::with_default(keep.clone(), || {
            let request = tracing::info_span!("request");
            let _entered = request.enter();
            Tracing.on_event(&Probe {
                level: Level::Debug,
                ..probe(
                    &name,
                    "rejected",
                    Fields::NONE
                        .fate(Fate::Rejected)
                        .reason("open")
                        .retry_after(Some(Duration::from_secs(2)))
                        .trace_id(id),
                )
            });
            drop(_entered);
            Tracing.on_event(&Probe {
                level: Level::Info,
                ..probe(
                    &name,
                    "state_change",
                    Fields::NONE.transition("closed", "open"),
                )
            });
            Tracing.on_event(&Probe {
                level: Level::Warn,
                ..probe(
                    &name,
                    "retry",
                    Fields::NONE
                        .attempt(2)
                        .delay(Duration::from_millis(50))
                        .wait(Duration::from_millis(3))
                        .latency(Duration::from_millis(7))
                        .budget_left(Duration::ZERO)
                        .load_level("critical"),
                )
            });
        });
        let lines = keep.lines.lock().expect("not poisoned");
        assert_eq!(lines.len(), 3);
        let field = |i: usize, k: &str| lines[i].fields.get(k).map(String::as_str);

        assert_eq!(lines[0].level, "DEBUG");
        assert_eq!(lines[0].target, "weir");
        assert_eq!(lines[0].span, Some(1), "emitted inside the caller's span");
        assert_eq!(field(0, "pattern"), Some("circuit_breaker"));
        assert_eq!(field(0, "layer"), Some("edge"));
        assert_eq!(field(0, "event"), Some("rejected"));
        assert_eq!(field(0, "outcome"), Some("rejected"));
        assert_eq!(field(0, "reason"), Some("open"));
        assert_eq!(field(0, "retry_after"), Some("2s"));
        assert_eq!(
            field(0, "trace_id"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(field(0, "attempt"), None, "an unset field is not written");

        assert_eq!(lines[1].level, "INFO");
        assert_eq!(lines[1].span, None);
        assert_eq!(
            (field(1, "from"), field(1, "to")),
            (Some("closed"), Some("open"))
        );

        assert_eq!(lines[2].level, "WARN");
        assert_eq!(field(2, "attempt"), Some("2"));
        assert_eq!(field(2, "delay"), Some("50ms"));
        assert_eq!(field(2, "wait"), Some("3ms"));
        assert_eq!(field(2, "latency"), Some("7ms"));
        assert_eq!(field(2, "budget_left"), Some("0ns"));
        assert_eq!(field(2, "load_level"), Some("critical"));
        assert!(field(2, "detail").is_some_and(|d| d.starts_with("Probe")));
    }
}
