//! The state every service and clone of one retry layer shares.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use weir_core::{Name, SharedRandom};

use crate::budget::SharedBudget;
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
