//! The registry: checks by name with tags, and the evaluation of a probe.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use weir_core::ConfigError;

use crate::check::HealthCheck;
use crate::entry::{CheckReport, Entry, Settings};
use crate::lifecycle::{Lifecycle, Phase};
use crate::settings::CheckSettings;
use crate::status::{Health, Status};
use crate::tag::Tag;

/// The one place that knows whether this process should get traffic: checks registered by
/// name and tag, and the process's [`Lifecycle`]. Clones share everything.
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    entries: RwLock<Vec<Arc<Entry>>>,
    lifecycle: Lifecycle,
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries();
        f.debug_struct("HealthRegistry")
            .field(
                "checks",
                &entries.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .field("phase", &self.inner.lifecycle.phase())
            .finish()
    }
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthRegistry {
    /// An empty registry whose lifecycle is already [`Phase::Serving`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_phase(Phase::Serving)
    }

    /// An empty registry whose lifecycle is [`Phase::Starting`]: readiness and startup fail
    /// until `registry.lifecycle().serving()`.
    #[must_use]
    pub fn starting() -> Self {
        Self::with_phase(Phase::Starting)
    }

    fn with_phase(phase: Phase) -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: RwLock::new(Vec::new()),
                lifecycle: Lifecycle::new(phase),
            }),
        }
    }

    /// The process's lifecycle: set it to serving when started, to draining when shutdown
    /// begins.
    #[must_use]
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// Starts registering `check` under `name`; finish with [`Registration::add`].
    pub fn register<C: HealthCheck>(
        &self,
        name: impl Into<Cow<'static, str>>,
        check: C,
    ) -> Registration<'_, C> {
        Registration {
            registry: self,
            check,
            settings: Settings {
                name: name.into(),
                tags: Vec::new(),
                check: CheckSettings::default(),
            },
        }
    }

    fn entries(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Entry>>> {
        // Registration never panics while holding the lock; the list stays consistent.
        self.inner
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs (or reads from cache) every check tagged `tag`, at once, and sums them up with the
    /// lifecycle's say: the worst status wins. No check at all is healthy.
    pub async fn evaluate(&self, tag: &Tag) -> Summary {
        let matching: Vec<Arc<Entry>> = self
            .entries()
            .iter()
            .filter(|e| e.has(tag))
            .cloned()
            .collect();
        let checks = join_all(matching.iter().map(|e| e.probe())).await;
        let lifecycle = self.inner.lifecycle.health_for(tag);
        let status = checks
            .iter()
            .map(|c| c.status())
            .chain(lifecycle.as_ref().map(Health::status))
            .max()
            .unwrap_or(Status::Healthy);
        Summary {
            status,
            lifecycle,
            checks,
        }
    }

    /// The probe of `tag` answered from cache alone, without waiting or allocating: while every
    /// check tagged `tag` has a fresh result, `each` gets its report, in registration order, and
    /// the answer is `true`; `false` as soon as one has none (then [`evaluate`](Self::evaluate)
    /// runs it, or waits for its run in flight), `each` having seen the reports before it.
    pub(crate) fn cached(&self, tag: &Tag, mut each: impl FnMut(&CheckReport)) -> bool {
        let now = Instant::now();
        for entry in self.entries().iter().filter(|e| e.has(tag)) {
            match entry.cached(now) {
                Some(report) => each(&report),
                None => return false,
            }
        }
        true
    }

    /// The overall status of the probe of `tag`, as [`evaluate`](Self::evaluate) would sum it
    /// up, from cache alone (no allocation); `None` when a check's result is not fresh.
    pub(crate) fn cached_status(&self, tag: &Tag) -> Option<Status> {
        let mut worst = self
            .inner
            .lifecycle
            .health_for(tag)
            .map_or(Status::Healthy, |health| health.status());
        self.cached(tag, |report| worst = worst.max(report.status()))
            .then_some(worst)
    }

    /// The overall status of the probe of `tag`: from cache alone while every check's result is
    /// fresh, else as [`evaluate`](Self::evaluate) finds it.
    #[cfg(feature = "tonic")]
    pub(crate) async fn status(&self, tag: &Tag) -> Status {
        match self.cached_status(tag) {
            Some(status) => status,
            None => self.evaluate(tag).await.status(),
        }
    }

    /// Runs (or reads from cache) the check named `name`; `None` when there is none.
    pub async fn check(&self, name: &str) -> Option<Arc<CheckReport>> {
        let entry = self.entries().iter().find(|e| e.name() == name).cloned()?;
        Some(entry.probe().await)
    }
}

/// A check being registered: from [`HealthRegistry::register`]. Give it at least one tag.
#[must_use = "a registration does nothing until `add`"]
pub struct Registration<'a, C> {
    registry: &'a HealthRegistry,
    check: C,
    settings: Settings,
}

impl<C> fmt::Debug for Registration<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.settings.name)
            .field("tags", &self.settings.tags)
            .finish_non_exhaustive()
    }
}

impl<C: HealthCheck> Registration<'_, C> {
    /// Adds a tag.
    pub fn tag(mut self, tag: Tag) -> Self {
        if !self.settings.tags.contains(&tag) {
            self.settings.tags.push(tag);
        }
        self
    }

    /// Tags it [`Tag::Live`].
    pub fn live(self) -> Self {
        self.tag(Tag::Live)
    }

    /// Tags it [`Tag::Ready`].
    pub fn ready(self) -> Self {
        self.tag(Tag::Ready)
    }

    /// Tags it [`Tag::Startup`].
    pub fn startup(self) -> Self {
        self.tag(Tag::Startup)
    }

    /// A run past `timeout` is abandoned and reads Unhealthy, "timed out" (default 5 s).
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.check.timeout = timeout;
        self
    }

    /// A result is reused for `period` after its run ended, however many probes arrive
    /// (default 1 s; zero: every probe not sharing a run in flight runs the check).
    pub const fn cache_for(mut self, period: Duration) -> Self {
        self.settings.check.cache_for = period;
        self
    }

    /// Unhealthy results in a row before the check reads Unhealthy (default 1).
    pub const fn unhealthy_after(mut self, failures: u32) -> Self {
        self.settings.check.unhealthy_after = failures;
        self
    }

    /// Results in a row that are not unhealthy before an unhealthy check reads good again
    /// (default 1).
    pub const fn healthy_after(mut self, successes: u32) -> Self {
        self.settings.check.healthy_after = successes;
        self
    }

    /// Every plain setting at once (from a configuration file): the timeout, the caching
    /// period and the thresholds set so far are replaced.
    pub const fn settings(mut self, settings: CheckSettings) -> Self {
        self.settings.check = settings;
        self
    }

    /// Registers the check.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the rule broken: an empty or taken name, no tag, a zero timeout
    /// or threshold.
    pub fn add(self) -> Result<(), ConfigError> {
        let s = &self.settings;
        if s.name.is_empty() {
            return Err(ConfigError::invalid("health", "name", "must not be empty"));
        }
        if s.tags.is_empty() {
            return Err(ConfigError::missing(
                "health",
                "tag",
                "at least one is required (`live`, `ready`, `startup` or `tag`)",
            ));
        }
        s.check.validate()?;
        let mut entries = self
            .registry
            .inner
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|e| e.name() == s.name) {
            return Err(ConfigError::duplicate(
                "health",
                "name",
                "is taken by a check already registered",
            ));
        }
        entries.push(Arc::new(Entry::new(self.settings, Box::new(self.check))));
        Ok(())
    }
}

/// The answer to one probe: the overall status and each check's report.
#[derive(Clone, Debug)]
pub struct Summary {
    status: Status,
    lifecycle: Option<Health>,
    checks: Vec<Arc<CheckReport>>,
}

impl Summary {
    /// The worst status among the checks and the lifecycle.
    #[must_use]
    pub const fn status(&self) -> Status {
        self.status
    }

    /// What the lifecycle said, when it has a say for this probe (readiness and startup).
    #[must_use]
    pub const fn lifecycle(&self) -> Option<&Health> {
        self.lifecycle.as_ref()
    }

    /// Every check's report, in registration order.
    #[must_use]
    pub fn checks(&self) -> &[Arc<CheckReport>] {
        &self.checks
    }
}
