//! The state shared by every service and clone a layer makes (what the handle reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weir_core::lanes::Prototype;
use weir_core::{Name, Outcome, wire::ServerHint};

use crate::settings::{HedgeSettings, MAX_ATTEMPTS};
use crate::state::{Budget, Latency, Throttle};

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

/// What one service (one `layer()` call) and its clones share with their response futures: the
/// layer's state, and a copy of the inner service as it was given to the layer, cloned for a
/// request only when it sends its first hedge (so a request that sends none clones nothing;
/// `weir_core::lanes::Prototype`, locked once per request that hedges, never on the immediate
/// path).
pub(crate) type Local<S, R, C, O> = Prototype<Shared<R, C, O>, S>;

/// The running state: budget, latencies, counters. Shared with the handle.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) origin: Instant,
    pub(crate) budget: Budget,
    /// gRFC A6's retry throttling on top of `budget` (`HedgeBudget::throttle`).
    pub(crate) throttle: Option<Throttle>,
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
        throttle: Option<Throttle>,
        shared_budget: Option<weir_retry::SharedBudget>,
        latency: Option<Latency>,
    ) -> Self {
        Self {
            origin,
            budget,
            throttle,
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

    /// A hedge asks to start at `now`: `true` if the budget pays for it (and the throttle, if
    /// any, is above half: it is asked first, so a throttled hedge spends nothing).
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        match &self.shared_budget {
            None => {
                self.throttle.as_ref().is_none_or(Throttle::allows)
                    && self.budget.withdraw(self.micros(now))
            }
            Some(shared) => shared.withdraw(),
        }
    }

    /// An attempt (the primary or a hedge) finished with `outcome`: the budget that throttles
    /// records it (gRFC A6's throttling: a failure takes a token, a success gives back part of
    /// one), as the upstream's health: [`Outcome::for_upstream`]'s, so a throttled failure (one
    /// caller's quota) is not counted. A failure counts if it is transient or carries the
    /// server's "do not retry" (as A6 and weir-retry count it); a permanent one does not. A
    /// shared retry budget records it with its own rules; the layer's own budget only with
    /// `HedgeBudget::throttle`. A cancelled attempt has no outcome and records nothing.
    #[inline]
    pub(crate) fn record_outcome(&self, outcome: Outcome) {
        if let Some(shared) = &self.shared_budget {
            shared.record(&outcome.for_upstream());
        } else if let Some(throttle) = &self.throttle {
            match outcome.for_upstream() {
                Outcome::Success => throttle.success(),
                Outcome::Failure(failure)
                    if failure.is_transient()
                        || matches!(failure.hint(), Some(ServerHint::DoNotRetry)) =>
                {
                    throttle.failure();
                }
                Outcome::Failure(_) | Outcome::Ignored => {}
            }
        }
    }

    /// Whole hedges the budget allows now (`None` when unlimited; `Some(0)` while the throttle
    /// is at or below half).
    pub(crate) fn available(&self) -> Option<u64> {
        match &self.shared_budget {
            None if self.throttle.as_ref().is_some_and(|t| !t.allows()) => Some(0),
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

    /// Records a primary that answered on its first poll (percentile trigger only; nothing
    /// otherwise): latency zero, a relaxed load and store, no clock reading (but for one in 64
    /// of a stripe, so the window rotates). `stripe`: the caller's lane (see
    /// `weir_core::lanes`), whose stripe of the count it adds to.
    #[inline]
    pub(crate) fn record_at_once(&self, stripe: usize) {
        if let Some(latency) = &self.latency {
            latency.record_at_once(stripe, || self.micros(Instant::now()));
        }
    }

    pub(crate) fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl<R, C, O> Shared<R, C, O> {
    /// The shared state of a layer with `settings` (checked or not: out-of-range values are
    /// brought within range here, so this never fails), `budget` and `throttle`.
    pub(crate) fn new(
        name: Name,
        settings: &HedgeSettings,
        (budget, throttle): (Budget, Option<Throttle>),
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
            core: Arc::new(Core::new(
                Instant::now(),
                budget,
                throttle,
                shared_budget,
                latency,
            )),
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
