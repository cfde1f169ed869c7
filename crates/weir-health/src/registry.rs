//! The registry: checks by name with tags, and the evaluation of a probe.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::join_all;

use crate::check::HealthCheck;
use crate::entry::{CheckReport, Entry, Settings};
use crate::lifecycle::{Lifecycle, Phase};
use crate::status::{Health, Status};
use crate::tag::Tag;

/// The default timeout of a check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default caching period of a check.
pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(1);

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
                timeout: DEFAULT_TIMEOUT,
                cache_for: DEFAULT_CACHE_FOR,
                unhealthy_after: 1,
                healthy_after: 1,
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
        self.settings.timeout = timeout;
        self
    }

    /// A result is reused for `period` after its run ended, however many probes arrive
    /// (default 1 s; zero: every probe not sharing a run in flight runs the check).
    pub const fn cache_for(mut self, period: Duration) -> Self {
        self.settings.cache_for = period;
        self
    }

    /// Unhealthy results in a row before the check reads Unhealthy (default 1).
    pub const fn unhealthy_after(mut self, failures: u32) -> Self {
        self.settings.unhealthy_after = failures;
        self
    }

    /// Results in a row that are not unhealthy before an unhealthy check reads good again
    /// (default 1).
    pub const fn healthy_after(mut self, successes: u32) -> Self {
        self.settings.healthy_after = successes;
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
            return Err(ConfigError::EmptyName);
        }
        if s.tags.is_empty() {
            return Err(ConfigError::NoTag);
        }
        if s.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if s.unhealthy_after == 0 {
            return Err(ConfigError::ZeroUnhealthyAfter);
        }
        if s.healthy_after == 0 {
            return Err(ConfigError::ZeroHealthyAfter);
        }
        let mut entries = self
            .registry
            .inner
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|e| e.name() == s.name) {
            return Err(ConfigError::DuplicateName);
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

/// A registration [`Registration::add`] refused; the message names the field and the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The name was empty.
    EmptyName,
    /// A check of that name is already registered.
    DuplicateName,
    /// No tag was given.
    NoTag,
    /// `timeout` was zero.
    ZeroTimeout,
    /// `unhealthy_after` was zero.
    ZeroUnhealthyAfter,
    /// `healthy_after` was zero.
    ZeroHealthyAfter,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyName => "health: a check's `name` must not be empty",
            Self::DuplicateName => "health: a check's `name` must be unique in its registry",
            Self::NoTag => {
                "health: a check needs at least one `tag` (live, ready, startup or custom)"
            }
            Self::ZeroTimeout => "health: a check's `timeout` must be more than zero",
            Self::ZeroUnhealthyAfter => "health: `unhealthy_after` must be at least 1",
            Self::ZeroHealthyAfter => "health: `healthy_after` must be at least 1",
        })
    }
}

impl StdError for ConfigError {}
