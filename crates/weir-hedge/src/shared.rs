//! The state shared by every service and clone a layer makes (what the handle reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::{Name, Outcome};

use crate::settings::{HedgeSettings, MAX_ATTEMPTS};
use crate::state::{Budget, Latency};

/// Hedges at most: every attempt but the primary.
pub(crate) const MAX_HEDGES: usize = MAX_ATTEMPTS - 1;

/// When a hedge is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Trigger {
    /// After a fixed delay (zero: parallel mode).
    Fixed(Duration),
    /// After a percentile of recent latencies.
    Percentile,
}

/// The layer's fixed settings and its running state, behind one `Arc`.
#[derive(Debug)]
pub(crate) struct Shared<R, C, O> {
    pub(crate) name: Name,
    pub(crate) max_attempts: u8,
    pub(crate) trigger: Trigger,
    pub(crate) replay: R,
    pub(crate) classify: C,
    pub(crate) observer: O,
    pub(crate) core: Arc<Core>,
}

/// The running state: budget, latencies, counters. Shared with the handle.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) origin: Instant,
    pub(crate) budget: Budget,
    /// A retry budget shared with retry layers, drawn on instead of `budget` when set.
    pub(crate) shared_budget: Option<weir_retry::SharedBudget>,
    pub(crate) latency: Option<Latency>,
    pub(crate) hedges_sent: AtomicU64,
    pub(crate) hedges_won: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
}

impl Core {
    pub(crate) fn new(
        origin: Instant,
        budget: Budget,
        shared_budget: Option<weir_retry::SharedBudget>,
        latency: Option<Latency>,
    ) -> Self {
        Self {
            origin,
            budget,
            shared_budget,
            latency,
            hedges_sent: AtomicU64::new(0),
            hedges_won: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
        }
    }

    /// A request starts: the budget hedges draw on counts it.
    #[inline]
    pub(crate) fn deposit(&self) {
        match &self.shared_budget {
            None => self.budget.deposit(),
            Some(shared) => shared.deposit(),
        }
    }

    /// A hedge asks to start at `now`: `true` if the budget pays for it.
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        match &self.shared_budget {
            None => self.budget.withdraw(self.micros(now)),
            Some(shared) => shared.withdraw(),
        }
    }

    /// An attempt (the primary or a hedge) finished with `outcome`: a shared retry budget
    /// records it (gRFC A6's throttling: a failure takes a token, a success gives back part of
    /// one), as the upstream's health (a throttled failure is one caller's quota, not counted).
    /// A cancelled attempt has no outcome and records nothing; the hedge budget of the layer's
    /// own counts only requests and hedges.
    #[inline]
    pub(crate) fn record_outcome(&self, outcome: Outcome) {
        if let Some(shared) = &self.shared_budget {
            shared.record(&outcome.for_upstream());
        }
    }

    /// Whole hedges the budget allows now (`None` when unlimited).
    pub(crate) fn available(&self) -> Option<u64> {
        match &self.shared_budget {
            None => self.budget.available(),
            Some(shared) => shared.available(),
        }
    }

    /// Microseconds since the layer was built.
    #[inline]
    pub(crate) fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    /// Records a primary's latency (percentile trigger only).
    #[inline]
    pub(crate) fn record(&self, start: Instant, now: Instant) {
        if let Some(latency) = &self.latency {
            let took =
                u64::try_from(now.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX);
            latency.record(self.micros(now), took);
        }
    }

    /// Records a primary that answered on its first poll (latency zero, no clock reading, but
    /// for one in 64).
    #[inline]
    pub(crate) fn record_at_once(&self) {
        if let Some(latency) = &self.latency
            && !latency.record_at_once()
        {
            latency.record(self.micros(Instant::now()), 0);
        }
    }

    pub(crate) fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl<R, C, O> Shared<R, C, O> {
    /// The shared state of a layer with `settings` (checked or not: out-of-range values are
    /// brought within range here, so this never fails) and `budget`.
    pub(crate) fn new(
        name: Name,
        settings: &HedgeSettings,
        budget: Budget,
        shared_budget: Option<weir_retry::SharedBudget>,
        replay: R,
        classify: C,
        observer: O,
    ) -> Self {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let latency = settings.percentile.map(|spec| {
            Latency::new(
                micros(spec.window),
                spec.percentile,
                spec.min_samples.max(1),
                micros(spec.min_delay),
            )
        });
        let trigger = if latency.is_some() {
            Trigger::Percentile
        } else {
            Trigger::Fixed(settings.delay)
        };
        let max_attempts = settings.max_attempts.clamp(1, MAX_ATTEMPTS) as u8;
        Self {
            name,
            max_attempts,
            trigger,
            replay,
            classify,
            observer,
            core: Arc::new(Core::new(Instant::now(), budget, shared_budget, latency)),
        }
    }

    /// The delay before the next hedge; `None`: the trigger does not fire (the percentile
    /// trigger before it has enough samples).
    #[inline]
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.trigger {
            Trigger::Fixed(delay) => Some(delay),
            Trigger::Percentile => self
                .core
                .latency
                .as_ref()
                .and_then(Latency::delay_us)
                .map(Duration::from_micros),
        }
    }

    /// Whether latencies are recorded (the percentile trigger).
    #[inline]
    pub(crate) const fn records(&self) -> bool {
        matches!(self.trigger, Trigger::Percentile)
    }
}
