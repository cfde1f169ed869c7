//! The state every service and clone of one retry layer shares.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use weir_core::{Name, SharedRandom};

use crate::budget::SharedBudget;
use crate::settings::RetrySettings;
use crate::state::Policy;

/// What every service and clone of one layer shares: the configuration, the budget and the
/// [`Core`].
pub(crate) struct Shared<R, C, O, P, K> {
    pub(crate) name: Name,
    pub(crate) policy: Policy,
    pub(crate) replay: R,
    pub(crate) classify: C,
    pub(crate) observer: O,
    /// The layer's budget (and, keyed per server, the servers' budgets in it).
    pub(crate) budget: SharedBudget,
    /// Which budget a request draws on.
    pub(crate) scope: K,
    pub(crate) core: Arc<Core>,
    /// `call` reads the clock only when `max_duration` needs it.
    pub(crate) needs_clock: bool,
    pub(crate) protocol: PhantomData<fn() -> P>,
}

/// The counters and random source every service and clone of one layer shares, and its handle
/// reads.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) rng: SharedRandom,
    pub(crate) retries: AtomicU64,
    pub(crate) gave_up: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
}

/// The typed parts of a layer, as its builder (or `RetryLayer::new`) hands them over.
pub(crate) struct Parts<R, C, O, K> {
    pub(crate) replay: R,
    pub(crate) classify: C,
    pub(crate) observer: O,
    pub(crate) scope: K,
    /// A budget shared with other layers; the layer's own (from the settings) otherwise.
    pub(crate) budget: Option<SharedBudget>,
}

impl<R, C, O, P, K> Shared<R, C, O, P, K> {
    /// The running state of a layer with these (checked) settings; `attempts_cap` caps
    /// `max_attempts` (5 for the gRPC preset).
    pub(crate) fn new(
        settings: RetrySettings,
        attempts_cap: u32,
        parts: Parts<R, C, O, K>,
    ) -> Self {
        let core = Arc::new(Core {
            rng: settings
                .seed
                .map_or_else(SharedRandom::new, SharedRandom::seeded),
            retries: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
        });
        let budget = parts
            .budget
            .unwrap_or_else(|| SharedBudget::start(settings.budget));
        Self {
            name: settings.name,
            policy: Policy {
                max_attempts: settings.max_attempts.clamp(1, attempts_cap.max(1)),
                backoff: settings.backoff,
                max_duration: settings.max_duration,
                max_server_delay: settings.max_server_delay,
            },
            replay: parts.replay,
            classify: parts.classify,
            observer: parts.observer,
            budget,
            scope: parts.scope,
            core,
            needs_clock: settings.max_duration.is_some(),
            protocol: PhantomData,
        }
    }
}
