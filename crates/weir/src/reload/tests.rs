//! What a refused or unreadable file leaves behind: a `warn` event of target `weir::reload`
//! naming the field, and (feature `metrics`) `weir_config_reload_total{result}`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::ServerConfig;

/// Keeps the `error` field of every `warn` event of target `weir::reload`.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct ErrorField<'a>(&'a mut Option<String>);

impl Visit for ErrorField<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "error" {
            *self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if meta.target() == "weir::reload" && *meta.level() == Level::WARN {
            let mut error = None;
            event.record(&mut ErrorField(&mut error));
            self.0
                .lock()
                .expect("not poisoned")
                .push(error.unwrap_or_default());
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn config(text: &str) -> ServerConfig {
    toml::from_str(text).expect("parses")
}

/// A refused file and an unparsable one are each logged at `warn` with the error, the refused
/// one naming its field; the running settings are kept.
#[tokio::test(start_paused = true)]
async fn a_refused_file_is_logged_at_warn_with_its_field() {
    let warnings = Warnings::default();
    let _default = tracing::subscriber::set_default(warnings.clone());
    let dir = std::env::temp_dir().join(format!("weir-reload-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("server.toml");
    let text = |rate: u32| format!("[rate_limit]\nquota = {{ rate = {rate}, per = \"1s\" }}\n");
    std::fs::write(&path, text(10)).expect("written");
    let (_stack, reloader) = config(&text(10)).build_reloadable().expect("valid");
    let watcher = super::watch(
        &path,
        reloader.clone(),
        Duration::from_secs(60),
        |t: &str| toml::from_str::<ServerConfig>(t),
    );
    assert_eq!(watcher.check().await, 0);
    std::fs::write(&path, text(0)).expect("written");
    watcher.check().await;
    std::fs::write(&path, "[rate_limit\n").expect("written");
    watcher.check().await;
    let seen = warnings.0.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("rate_limit.quota.rate"), "{seen:?}");
    assert!(!seen[1].is_empty(), "the parser's error: {seen:?}");
    assert_eq!((watcher.failed(), reloader.refused()), (2, 1));
    assert_eq!(reloader.running(), config(&text(10)));
    drop(watcher);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "metrics")]
mod metric {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::config;

    /// Counts `weir_config_reload_total` by its `result` label.
    #[derive(Clone, Default)]
    struct Results(Arc<Mutex<BTreeMap<String, u64>>>);

    struct Slot(Results, String);

    impl CounterFn for Slot {
        fn increment(&self, value: u64) {
            *self
                .0
                .0
                .lock()
                .expect("not poisoned")
                .entry(self.1.clone())
                .or_default() += value;
        }
        fn absolute(&self, _: u64) {}
    }

    impl Recorder for Results {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            if key.name() != "weir_config_reload_total" {
                return Counter::noop();
            }
            let result = key
                .labels()
                .find(|l| l.key() == "result")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            Counter::from_arc(Arc::new(Slot(self.clone(), result)))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn every_reload_is_counted_by_its_result() {
        let results = Results::default();
        metrics::with_local_recorder(&results, || {
            let rate = |r: u32| {
                config(&format!(
                    "[rate_limit]\nquota = {{ rate = {r}, per = \"1s\" }}"
                ))
            };
            let (_stack, reloader) = rate(10).build_reloadable().expect("valid");
            reloader.reload(&rate(20)).expect("applies");
            reloader.reload(&rate(0)).expect_err("zero");
            reloader.reload(&rate(0)).expect_err("zero");
        });
        let counts = results.0.lock().expect("not poisoned").clone();
        assert_eq!(counts.get("applied"), Some(&1), "{counts:?}");
        assert_eq!(counts.get("refused"), Some(&2), "{counts:?}");
    }
}
