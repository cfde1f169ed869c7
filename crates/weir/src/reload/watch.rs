//! [`watch`]: a configuration file polled and reloaded when its text changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use weir_core::BoxError;

use super::Reload;

/// What the watcher's task and its handle share.
struct Shared {
    wake: Notify,
    /// Woken after every look at the file.
    done: Notify,
    checks: AtomicU64,
    applied: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A running [`watch`]: its counters, a way to check the file now, and the task (stopped when
/// the watcher is dropped).
pub struct Watcher {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Checks the file now instead of at the next poll (what a SIGHUP handler, or an admin
    /// endpoint, calls).
    pub fn check_now(&self) {
        self.shared.wake.notify_one();
    }

    /// Checks the file now and waits until it has been looked at (and applied, or refused);
    /// the number of files applied since the watcher started.
    pub async fn check(&self) -> u64 {
        let done = self.shared.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        self.check_now();
        done.await;
        self.applied()
    }

    /// How many times the file was looked at (each poll and each [`check_now`](Self::check_now)).
    #[must_use]
    pub fn checks(&self) -> u64 {
        self.shared.checks.load(Ordering::Relaxed)
    }

    /// Changed files applied.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.shared.applied.load(Ordering::Relaxed)
    }

    /// Changed files that were not applied: unreadable, not parsed, or refused by the reload
    /// (the running settings were kept).
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// The last failure's message (with its field), if any.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("checks", &self.checks())
            .field("applied", &self.applied())
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

/// The file as last seen: its contents.
struct Seen {
    text: String,
}

fn look(path: &Path) -> std::io::Result<Seen> {
    Ok(Seen {
        text: std::fs::read_to_string(path)?,
    })
}

/// Watches the configuration file at `path` and reloads `target` when it changes, on a task
/// spawned on the current tokio runtime (call it from within one).
///
/// **How a change is seen: by polling, every `every`** (and at once on
/// [`Watcher::check_now`]): the file's contents are read and compared with what was last applied
/// or refused (not its modification time, which a copy may keep and a `touch` changes alone), so
/// an editor's save, a `mv` of a new file into place and a Kubernetes ConfigMap's symlink swap
/// are all seen, on every platform, with no file-notification dependency; a file whose text did
/// not change is not reloaded, and a refused text is not tried again until it changes. The contents at the start are taken as the running configuration's. SIGHUP is left
/// to the application (`tokio::signal::unix` and [`Watcher::check_now`], as the gateway example
/// does), so this crate needs no signal handling.
///
/// `parse` turns the file's text into a configuration (`|text| toml::from_str(text)`, or any
/// serde format). A file that cannot be read or parsed, or that the reload refuses, keeps the
/// running settings: the error is logged at `warn` with its field (tracing target
/// `weir::reload`), counted in [`Watcher::failed`], and with the `metrics` feature counted as
/// `weir_config_reload_total{result="refused"}` (an applied one as `result="applied"`; a file
/// that could not be read or parsed as `result="unreadable"`).
pub fn watch<R, F, E>(path: impl Into<PathBuf>, target: R, every: Duration, parse: F) -> Watcher
where
    R: Reload,
    F: Fn(&str) -> Result<R::Config, E> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let path = path.into();
    let shared = Arc::new(Shared {
        wake: Notify::new(),
        done: Notify::new(),
        checks: AtomicU64::new(0),
        applied: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_error: Mutex::new(None),
    });
    let task = tokio::spawn(run(path, target, every, parse, Arc::clone(&shared)));
    Watcher { shared, task }
}

async fn run<R, F, E>(path: PathBuf, target: R, every: Duration, parse: F, shared: Arc<Shared>)
where
    R: Reload,
    F: Fn(&str) -> Result<R::Config, E> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let mut last = look(&path).ok();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.wake.notified() => {}
        }
        shared.checks.fetch_add(1, Ordering::Relaxed);
        check_once(&path, &target, &parse, &shared, &mut last);
        shared.done.notify_waiters();
    }
}

/// One look at the file: reloaded if its text changed since `last`.
fn check_once<R, F, E>(path: &Path, target: &R, parse: &F, shared: &Shared, last: &mut Option<Seen>)
where
    R: Reload,
    F: Fn(&str) -> Result<R::Config, E>,
    E: Into<BoxError>,
{
    let seen = match look(path) {
        Ok(seen) => seen,
        Err(e) => {
            fail(
                shared,
                path,
                &format!("cannot read the file: {e}"),
                "unreadable",
            );
            return;
        }
    };
    if last.as_ref().is_some_and(|l| l.text == seen.text) {
        *last = Some(seen);
        return;
    }
    let outcome = match parse(&seen.text) {
        Ok(config) => target
            .reload(&config)
            .map_err(|e| (e.to_string(), "refused")),
        Err(e) => Err((e.into().to_string(), "unreadable")),
    };
    match outcome {
        Ok(()) => {
            shared.applied.fetch_add(1, Ordering::Relaxed);
            tracing::info!(target: "weir::reload", path = %path.display(), "configuration reloaded");
        }
        Err((message, result)) => fail(shared, path, &message, result),
    }
    *last = Some(seen);
}

fn fail(shared: &Shared, path: &Path, message: &str, result: &'static str) {
    shared.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        target: "weir::reload",
        path = %path.display(),
        error = %message,
        "configuration not reloaded; the running settings are kept"
    );
    #[cfg(feature = "metrics")]
    if result == "unreadable" {
        metrics::counter!("weir_config_reload_total", "result" => result).increment(1);
    }
    let _ = result;
    *shared
        .last_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
}
