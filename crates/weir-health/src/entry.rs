//! One registered check and its shared state: the cached report, the run in flight, the
//! hysteresis.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::check::DynCheck;
use crate::settings::CheckSettings;
use crate::state::Hysteresis;
use crate::status::{Health, Status};
use crate::tag::Tag;

/// One check's latest result, as probes see it.
#[derive(Clone, Debug)]
pub struct CheckReport {
    name: Cow<'static, str>,
    status: Status,
    health: Health,
    duration: Duration,
}

impl CheckReport {
    /// The check's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The status reported, after hysteresis: what counts for the probe.
    #[must_use]
    pub const fn status(&self) -> Status {
        self.status
    }

    /// What the latest run itself said (its status may differ from [`status`](Self::status)
    /// while a hysteresis threshold is not yet reached).
    #[must_use]
    pub const fn health(&self) -> &Health {
        &self.health
    }

    /// How long the latest run took.
    #[must_use]
    pub const fn duration(&self) -> Duration {
        self.duration
    }
}

/// One check as registered: its name, its tags and its settings.
pub(crate) struct Settings {
    pub(crate) name: Cow<'static, str>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) check: CheckSettings,
}

type Latest = watch::Receiver<Option<Arc<CheckReport>>>;

struct Slot {
    last: Option<(Arc<CheckReport>, Instant)>,
    running: Option<Latest>,
    hysteresis: Hysteresis,
}

impl Slot {
    fn fresh(&self, now: Instant) -> Option<Arc<CheckReport>> {
        match &self.last {
            Some((report, fresh_until)) if now < *fresh_until => Some(Arc::clone(report)),
            _ => None,
        }
    }
}

pub(crate) struct Entry {
    settings: Settings,
    check: Box<dyn DynCheck>,
    slot: Mutex<Slot>,
}

enum Next {
    Cached(Arc<CheckReport>),
    Wait(Latest),
    Run(watch::Sender<Option<Arc<CheckReport>>>),
}

impl Entry {
    pub(crate) fn new(settings: Settings, check: Box<dyn DynCheck>) -> Self {
        let hysteresis =
            Hysteresis::new(settings.check.unhealthy_after, settings.check.healthy_after);
        Self {
            settings,
            check,
            slot: Mutex::new(Slot {
                last: None,
                running: None,
                hysteresis,
            }),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.settings.name
    }

    pub(crate) fn has(&self, tag: &Tag) -> bool {
        self.settings.tags.contains(tag)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // The sections below never panic; a poisoned lock still holds consistent data.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached report while it is fresh at `now`; `None` when a probe must run the check (or
    /// wait for the run in flight). Takes the lock once, allocates nothing.
    pub(crate) fn cached(&self, now: Instant) -> Option<Arc<CheckReport>> {
        self.slot().fresh(now)
    }

    /// The check's report: the cached one while fresh, else the run in flight's, else a new
    /// run's. Every probe arriving during a run waits for that same run.
    pub(crate) async fn probe(&self) -> Arc<CheckReport> {
        loop {
            let next = {
                let mut slot = self.slot();
                let now = Instant::now();
                match (slot.fresh(now), &slot.running) {
                    (Some(report), _) => Next::Cached(report),
                    (None, Some(latest)) => Next::Wait(latest.clone()),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        slot.running = Some(rx);
                        Next::Run(tx)
                    }
                }
            };
            match next {
                Next::Cached(report) => return report,
                Next::Run(tx) => return self.run(tx).await,
                Next::Wait(mut latest) => {
                    if let Ok(report) = latest.wait_for(Option::is_some).await
                        && let Some(report) = report.as_ref()
                    {
                        return Arc::clone(report);
                    }
                    // The probe that ran the check was dropped mid-run: start over (one of the
                    // waiters becomes the runner).
                }
            }
        }
    }

    async fn run(&self, tx: watch::Sender<Option<Arc<CheckReport>>>) -> Arc<CheckReport> {
        let mut guard = RunGuard {
            entry: self,
            tx: Some(tx),
        };
        let started = Instant::now();
        let health = tokio::time::timeout(self.settings.check.timeout, self.check.run())
            .await
            .unwrap_or_else(|_| Health::unhealthy("timed out"));
        let finished = Instant::now();
        let report = {
            let mut slot = self.slot();
            let status = slot.hysteresis.observe(health.status());
            let report = Arc::new(CheckReport {
                name: self.settings.name.clone(),
                status,
                health,
                duration: finished - started,
            });
            slot.last = Some((
                Arc::clone(&report),
                finished + self.settings.check.cache_for,
            ));
            slot.running = None;
            report
        };
        if let Some(tx) = guard.tx.take() {
            tx.send_replace(Some(Arc::clone(&report)));
        }
        report
    }
}

/// Clears the run in flight when the probe running it is dropped before the end, so the
/// waiters start a new run instead of waiting forever.
/// The sender is dropped after `drop` has cleared the slot, so a woken waiter finds no run in
/// flight.
struct RunGuard<'a> {
    entry: &'a Entry,
    tx: Option<watch::Sender<Option<Arc<CheckReport>>>>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.entry.slot().running = None;
        }
    }
}
