//! Test support: a `metrics` recorder that keeps every value it is given, by name and labels.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// A metric's identity: its name and its labels, sorted.
pub(crate) type Id = (String, Vec<(String, String)>);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<BTreeMap<Id, Value>>>, Arc<AtomicUsize>);

struct Slot(Capture, Id);

fn id(key: &Key) -> Id {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

impl Capture {
    fn update(&self, id: &Id, f: impl FnOnce(Option<Value>) -> Value) {
        let mut map = self.0.lock().expect("not poisoned");
        let old = map.remove(id);
        map.insert(id.clone(), f(old));
    }

    /// The value of `name` with exactly these labels.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
        let mut labels: Vec<_> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.0
            .lock()
            .expect("not poisoned")
            .get(&(name.to_owned(), labels))
            .cloned()
    }

    /// How many times a handle was registered (`counter!`, `gauge!`, `histogram!`).
    pub(crate) fn registrations(&self) -> usize {
        self.1.load(Ordering::Relaxed)
    }

    /// Every metric name seen.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self
            .0
            .lock()
            .expect("not poisoned")
            .keys()
            .map(|(n, _)| n.clone())
            .collect();
        names.dedup();
        names
    }
}

impl CounterFn for Slot {
    fn increment(&self, value: u64) {
        self.0.update(&self.1, |old| match old {
            Some(Value::Counter(n)) => Value::Counter(n + value),
            _ => Value::Counter(value),
        });
    }
    fn absolute(&self, value: u64) {
        self.0.update(&self.1, |_| Value::Counter(value));
    }
}

impl GaugeFn for Slot {
    fn increment(&self, value: f64) {
        self.0.update(&self.1, |old| match old {
            Some(Value::Gauge(n)) => Value::Gauge(n + value),
            _ => Value::Gauge(value),
        });
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.0.update(&self.1, |_| Value::Gauge(value));
    }
}

impl HistogramFn for Slot {
    fn record(&self, value: f64) {
        self.0.update(&self.1, |old| match old {
            Some(Value::Histogram(mut all)) => {
                all.push(value);
                Value::Histogram(all)
            }
            _ => Value::Histogram(vec![value]),
        });
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.1.fetch_add(1, Ordering::Relaxed);
        Counter::from_arc(Arc::new(Slot(self.clone(), id(key))))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.1.fetch_add(1, Ordering::Relaxed);
        Gauge::from_arc(Arc::new(Slot(self.clone(), id(key))))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.1.fetch_add(1, Ordering::Relaxed);
        Histogram::from_arc(Arc::new(Slot(self.clone(), id(key))))
    }
}
