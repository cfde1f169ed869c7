//! The state every service and clone of one retry layer shares.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use weir_core::ConfigError;

use weir_core::lanes::{Lane, Lanes, Prototype};
use weir_core::{Name, backoff::SharedRandom};

use crate::budget::SharedBudget;
use crate::settings::RetrySettings;
use crate::state::Policy;

/// What every service and clone of one layer shares: the configuration, the budget and the
/// [`Core`].
pub(crate) struct Shared<R, C, O, P, K> {
    pub(crate) name: Name,
    pub(crate) replay: R,
    pub(crate) classify: C,
    pub(crate) observer: O,
    /// The layer's budget (and, keyed per server, the servers' budgets in it).
    pub(crate) budget: SharedBudget,
    /// Which budget a request draws on.
    pub(crate) scope: K,
    pub(crate) core: Arc<Core>,
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
    /// The policy versions, the one in force named by a word every call reads.
    pub(crate) policies: Policies,
    /// The settings in force (what the handle's `settings()` gives), held while new settings
    /// are applied so that applications do not interleave.
    pub(crate) settings: Mutex<RetrySettings>,
    /// Caps `max_attempts` (5 for the gRPC preset).
    pub(crate) attempts_cap: u32,
    /// The budget is the layer's own (not a [`SharedBudget`] given to the builder): new
    /// settings change it.
    pub(crate) own_budget: bool,
}

/// What the services made by one `RetryLayer::layer` call, their clones and their response
/// futures share: the layer's [`Shared`] state and a copy of the inner service that a retry
/// clones (`weir_core::lanes::Prototype`), reached through this thread's lane, so a call writes
/// one reference count no other thread writes (#18).
pub(crate) type Bound<S, R, C, O, P, K> = Lane<Prototype<Shared<R, C, O, P, K>, S>>;

/// The lanes to a [`Bound`], what a `Retry` service holds.
pub(crate) type BoundLanes<S, R, C, O, P, K> = Lanes<Prototype<Shared<R, C, O, P, K>, S>>;

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
            policies: Policies::new(policy(&settings, attempts_cap)),
            settings: Mutex::new(settings.clone()),
            attempts_cap,
            own_budget: parts.budget.is_none(),
        });
        let budget = parts
            .budget
            .unwrap_or_else(|| SharedBudget::start(settings.budget));
        Self {
            name: settings.name,
            replay: parts.replay,
            classify: parts.classify,
            observer: parts.observer,
            budget,
            scope: parts.scope,
            core,
            protocol: PhantomData,
        }
    }
}

/// The [`Policy`] of `settings`, `max_attempts` capped by `attempts_cap`.
fn policy(settings: &RetrySettings, attempts_cap: u32) -> Policy {
    Policy {
        max_attempts: settings.max_attempts.clamp(1, attempts_cap.max(1)),
        backoff: settings.backoff,
        max_duration: settings.max_duration,
        max_server_delay: settings.max_server_delay,
    }
}

/// Every policy version a layer has had, and the one in force.
///
/// A call reads one word ([`current`](Self::current)): the version in force (bits 1 and up) and
/// whether that version reads the clock (bit 0, a `max_duration`). Its future keeps the word and
/// looks its version up only when an attempt failed ([`get`](Self::get)), so a retry loop
/// finishes under the attempts and backoff it started with. Versions are never removed (a
/// request may hold any): a setting applied again reuses its version, so there are as many as
/// distinct policies applied, some 60 bytes each, at most [`MAX_VERSIONS`].
#[derive(Debug)]
pub(crate) struct Policies {
    /// 16 bits wide (below `MAX_VERSIONS << 1`) in a `u32`: loaded, it is the low half of the
    /// future's `Progress` word as it is, with no widening.
    word: AtomicU32,
    versions: ArcSwap<Vec<Policy>>,
}

impl Policies {
    fn new(first: Policy) -> Self {
        Self {
            word: AtomicU32::new(Self::word(0, &first)),
            versions: ArcSwap::from_pointee(vec![first]),
        }
    }

    /// The word of version `index` (below [`MAX_VERSIONS`]).
    fn word(index: usize, policy: &Policy) -> u32 {
        let index = u16::try_from(index).unwrap_or(u16::MAX >> 1);
        u32::from((index << 1) | u16::from(policy.max_duration.is_some()))
    }

    /// The word of the version in force: what a call keeps.
    #[inline]
    pub(crate) fn current(&self) -> u32 {
        // `Acquire`: the version list holding it was published before the word.
        self.word.load(Ordering::Acquire)
    }

    /// Whether the version of `word` reads the clock when a request starts.
    #[inline]
    pub(crate) const fn needs_clock(word: u32) -> bool {
        word & 1 != 0
    }

    /// The policy of the version `word` names.
    pub(crate) fn get(&self, word: u32) -> Policy {
        let versions = self.versions.load();
        let index = (word >> 1) as usize;
        versions
            .get(index)
            .or_else(|| versions.last())
            .copied()
            .unwrap_or(Policy {
                max_attempts: 1,
                backoff: weir_core::backoff::Backoff::constant(std::time::Duration::ZERO),
                max_duration: None,
                max_server_delay: std::time::Duration::ZERO,
            })
    }

    /// Puts `policy` in force (a version it had already, or a new one). Called with the
    /// settings' lock held.
    ///
    /// # Errors
    ///
    /// `max_attempts` when [`MAX_VERSIONS`] distinct policies were applied already.
    fn put(&self, policy: Policy) -> Result<(), ConfigError> {
        let versions = self.versions.load_full();
        let index = match versions.iter().position(|v| *v == policy) {
            Some(index) => index,
            None if versions.len() >= MAX_VERSIONS => {
                return Err(ConfigError::out_of_range(
                    "retry",
                    "max_attempts",
                    format!(
                        "a running layer keeps at most {MAX_VERSIONS} distinct policies \
                         (attempts, backoff, durations): apply one it had, or rebuild the layer"
                    ),
                ));
            }
            None => {
                let mut next = Vec::clone(&versions);
                next.push(policy);
                let index = next.len() - 1;
                self.versions.store(Arc::new(next));
                index
            }
        };
        self.word
            .store(Self::word(index, &policy), Ordering::Release);
        Ok(())
    }
}

/// The most policy versions a layer keeps (the word's 15 bits).
const MAX_VERSIONS: usize = 1 << 15;

impl Policies {
    /// Whether [`put`](Self::put) would take `policy`.
    fn check(&self, policy: &Policy) -> Result<(), ConfigError> {
        let versions = self.versions.load();
        if versions.len() >= MAX_VERSIONS && !versions.contains(policy) {
            return Err(ConfigError::out_of_range(
                "retry",
                "max_attempts",
                format!(
                    "a running layer keeps at most {MAX_VERSIONS} distinct policies \
                     (attempts, backoff, durations): apply one it had, or rebuild the layer"
                ),
            ));
        }
        Ok(())
    }
}

impl Core {
    /// The settings in force.
    pub(crate) fn settings(&self) -> RetrySettings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Validates `settings` by the builder's rules and applies them: a new policy version for
    /// requests that start from now on, and the layer's own budget changed in place (see
    /// [`SharedBudget::apply`]). The name and the seed stay the layer's.
    pub(crate) fn apply(
        &self,
        mut settings: RetrySettings,
        budget: &SharedBudget,
    ) -> Result<(), ConfigError> {
        settings.validate()?;
        let mut current = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        if self.own_budget {
            // Checked before anything changes: the budget refuses a change of kind or window.
            budget.check(&settings.budget)?;
        } else {
            // A budget given to the builder is shared with other layers: its settings are not
            // this layer's to change (`SharedBudget::apply` changes them for every holder).
            settings.budget = current.budget;
        }
        let policy = policy(&settings, self.attempts_cap);
        self.policies.check(&policy)?;
        if self.own_budget {
            budget.apply(settings.budget)?;
        }
        self.policies.put(policy)?;
        settings.name = current.name.clone();
        settings.seed = current.seed;
        *current = settings;
        Ok(())
    }
}
