//! Retry budgets: how many retries the whole layer may make, so an outage does not become a retry
//! storm. Lock-free: a few atomics, shared by every clone and every service the layer makes.

use std::any::Any;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;
use weir_core::{ConfigError, Outcome, keyed::KeyedConfig, keyed::KeyedMap};

#[cfg(test)]
mod apply_tests;
mod state;
#[cfg(test)]
mod tests;
mod word;

pub(crate) use self::state::BudgetState;
use self::state::RatioState;

/// The default budget's ratio: retries may be 20 % of the requests.
pub(crate) const DEFAULT_RATIO: f64 = 0.2;

/// How many retries a layer may make, across every request, clone and service it makes.
///
/// - [`RetryBudget::ratio`] (the default, `ratio(0.2)`): as Finagle's `RetryBudget` and Envoy's
///   retry budget, retries over the last `window` (10 s) may not exceed `ratio` × the requests
///   made in that window plus a floor of `min_per_second` × the window's seconds (10 per second),
///   so a quiet client can still retry and a busy one in an outage adds at most 20 % load. A
///   retry counts from the moment it is scheduled, so retries waiting in backoff count.
/// - [`RetryBudget::grpc_throttle`]: gRPC's `retryThrottling` (gRFC A6): a token count starts at
///   `max_tokens`; every failed attempt (retryable, or pushback "do not retry") takes 1, every
///   success gives back `token_ratio`; retrying is allowed while the count is above half of
///   `max_tokens`.
/// - [`RetryBudget::unlimited`]: only `max_attempts` bounds retries.
///
/// When the budget refuses a retry, the layer returns the failed attempt's own response or error
/// (never an error of its own) and emits [`Event::GaveUp`](crate::Event::GaveUp) with
/// [`GiveUp::Budget`](crate::GiveUp::Budget); [`RetryHandle`](crate::RetryHandle) counts it.
///
/// ```
/// use std::time::Duration;
/// use weir_retry::{RetryBudget, RetryLayer};
///
/// let layer = RetryLayer::builder()
///     .budget(RetryBudget::ratio(0.1).min_per_second(5).window(Duration::from_secs(30)))
///     .build()
///     .unwrap();
/// let grpc = RetryLayer::grpc().budget(RetryBudget::grpc_throttle(10, 0.1)).build().unwrap();
/// # let _ = (layer, grpc);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ratio {
        ratio: f64,
        min_per_second: u32,
        window: Duration,
    },
    Throttle {
        max_tokens: u32,
        token_ratio: f64,
    },
    Unlimited,
}

impl RetryBudget {
    /// Retries may be `ratio` of the requests over the window (plus the floor). `ratio` must be
    /// finite and within `0.0..=1000.0` (checked by `build()`).
    #[must_use]
    pub const fn ratio(ratio: f64) -> Self {
        Self {
            kind: Kind::Ratio {
                ratio,
                min_per_second: 10,
                window: Duration::from_secs(10),
            },
        }
    }

    /// The floor: this many retries per second are allowed whatever the traffic (10 unless set).
    /// Only for [`ratio`](Self::ratio) budgets.
    #[must_use]
    pub const fn min_per_second(mut self, n: u32) -> Self {
        if let Kind::Ratio { min_per_second, .. } = &mut self.kind {
            *min_per_second = n;
        }
        self
    }

    /// How far back requests and retries are remembered (10 s unless set; 1 s to 60 s, checked by
    /// `build()`). Only for [`ratio`](Self::ratio) budgets.
    #[must_use]
    pub const fn window(mut self, d: Duration) -> Self {
        if let Kind::Ratio { window, .. } = &mut self.kind {
            *window = d;
        }
        self
    }

    /// gRPC's `retryThrottling` (gRFC A6): `max_tokens` in `1..=1000`, `token_ratio` finite and
    /// above 0, kept to three decimal places (checked by `build()`).
    #[must_use]
    pub const fn grpc_throttle(max_tokens: u32, token_ratio: f64) -> Self {
        Self {
            kind: Kind::Throttle {
                max_tokens,
                token_ratio,
            },
        }
    }

    /// No budget: only `max_attempts` bounds retries.
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            kind: Kind::Unlimited,
        }
    }

    /// Checks the rules of the budget; the error names the field as the builder names it
    /// (`budget.ratio`, ...).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.kind {
            Kind::Ratio { ratio, window, .. } => {
                if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
                    return Err(ConfigError::out_of_range(
                        "retry",
                        "budget.ratio",
                        "must be finite and within 0..=1000",
                    ));
                }
                if window < Duration::from_secs(1) || window > Duration::from_secs(60) {
                    return Err(ConfigError::out_of_range(
                        "retry",
                        "budget.window",
                        "must be within 1 s..=60 s",
                    ));
                }
            }
            Kind::Throttle {
                max_tokens,
                token_ratio,
            } => {
                if !(1..=1000).contains(&max_tokens) {
                    return Err(ConfigError::out_of_range(
                        "retry",
                        "budget.max_tokens",
                        "must be within 1..=1000 (gRPC's retryThrottling)",
                    ));
                }
                if !(token_ratio.is_finite() && token_ratio > 0.0) {
                    return Err(ConfigError::out_of_range(
                        "retry",
                        "budget.token_ratio",
                        "must be finite and above 0 (gRPC's retryThrottling)",
                    ));
                }
            }
            Kind::Unlimited => {}
        }
        Ok(())
    }

    /// The running state, created once when the layer is built.
    pub(crate) fn start(&self, now: Instant) -> BudgetState {
        match self.kind {
            Kind::Ratio {
                ratio,
                min_per_second,
                window,
            } => BudgetState::Ratio(Box::new(RatioState::new(
                ratio,
                min_per_second,
                window,
                now,
            ))),
            Kind::Throttle {
                max_tokens,
                token_ratio,
            } => {
                let limits = self::state::pack_limits(max_tokens, token_ratio);
                BudgetState::Throttle {
                    limits: AtomicU64::new(limits),
                    tokens: AtomicU64::new(limits >> 32),
                }
            }
            Kind::Unlimited => BudgetState::Unlimited,
        }
    }
}

impl Default for RetryBudget {
    /// `RetryBudget::ratio(0.2)`: 20 % of the requests over 10 s, plus 10 retries per second.
    fn default() -> Self {
        Self::ratio(DEFAULT_RATIO)
    }
}

/// One retry budget that every clone shares: hand it to several layers (two retry layers, or a
/// retry layer and a `weir-hedge` layer with `HedgeBuilder::shared_budget`) and their retries
/// and hedges draw on one budget.
///
/// Made from a [`RetryBudget`] with [`SharedBudget::new`] (which checks it); given to a retry
/// layer with [`RetryBuilder::shared_budget`](crate::RetryBuilder::shared_budget). Each layer
/// counts the requests it sees: in a stack where hedges sit outside retry, a request is counted
/// once by the hedge layer and once per attempt by the retry layer, which a ratio budget
/// allows for. A layer that keys its budget per server
/// ([`RetryBuilder::budget_per_server`](crate::RetryBuilder::budget_per_server)) keeps the
/// servers' budgets here too, so layers sharing a `SharedBudget` share those as well.
///
/// ```
/// use weir_retry::{RetryBudget, RetryLayer, SharedBudget};
///
/// let budget = SharedBudget::new(RetryBudget::ratio(0.1))?;
/// let reads = RetryLayer::builder().shared_budget(budget.clone()).build()?;
/// let writes = RetryLayer::builder().shared_budget(budget.clone()).build()?;
/// // Both layers (and `budget`) see one budget: 10 retries per second over 10 s, plus 10 %.
/// assert_eq!(budget.available(), Some(100));
/// assert!(budget.withdraw());
/// assert_eq!(reads.handle().available(), Some(99));
/// # let _ = writes;
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SharedBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    /// The settings in force (read by `budget()` and when a server's budget is made).
    spec: ArcSwap<RetryBudget>,
    state: BudgetState,
    /// The budgets per server (per key), with their key type erased: made by the first
    /// request of a layer keyed per server.
    keyed: OnceLock<Box<dyn KeyedBudgets>>,
}

impl SharedBudget {
    /// A budget that clones share, as `budget` describes.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `budget` breaks one of its rules (see
    /// [`RetryBudget::validate`]).
    pub fn new(budget: RetryBudget) -> Result<Self, ConfigError> {
        budget.validate()?;
        Ok(Self::start(budget))
    }

    /// A running budget (the caller checked `spec`).
    pub(crate) fn start(spec: RetryBudget) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                spec: ArcSwap::from_pointee(spec),
                state: spec.start(Instant::now()),
                keyed: OnceLock::new(),
            }),
        }
    }

    /// The budget's settings.
    #[must_use]
    pub fn budget(&self) -> RetryBudget {
        **self.inner.spec.load()
    }

    /// Counts a request (a first call, not a retry or a hedge): what a ratio budget grows with.
    #[inline]
    pub fn deposit(&self) {
        self.inner.state.deposit_now();
    }

    /// Asks for one retry (or hedge); `true` spends it.
    #[must_use]
    pub fn withdraw(&self) -> bool {
        self.inner.state.withdraw(Instant::now())
    }

    /// Records an attempt's outcome (gRPC throttling counts successes and failures; a ratio
    /// budget counts nothing here). Pass [`Outcome::for_upstream`]'s: one caller's quota is
    /// not the upstream's failure.
    #[inline]
    pub fn record(&self, outcome: &Outcome) {
        self.inner.state.record(outcome);
    }

    /// Retries the budget would allow now (`None` when it is unlimited).
    #[must_use]
    pub fn available(&self) -> Option<u64> {
        self.inner.state.available(Instant::now())
    }

    /// How many servers (keys) have a budget of their own now, for layers keyed per server.
    #[must_use]
    pub fn servers(&self) -> usize {
        self.inner.keyed.get().map_or(0, |keyed| keyed.len())
    }

    pub(crate) fn state(&self) -> &BudgetState {
        &self.inner.state
    }

    /// The budgets per key of type `Key`, made on first use with `config` (bounded as it says);
    /// `None` when this budget is keyed with another key type already (a layer used with two
    /// request types whose keys differ: those requests use this budget).
    pub(crate) fn keyed<Key>(&self, config: KeyedConfig) -> Option<&KeyedMap<Key, Self>>
    where
        Key: Hash + Eq + Send + Sync + 'static,
    {
        let store = self.inner.keyed.get_or_init(|| {
            let overflow = Self::start(self.budget());
            Box::new(KeyedMap::<Key, Self>::new(config, overflow))
        });
        store.as_any().downcast_ref()
    }
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("budget", &self.budget())
            .field("available", &self.available())
            .field("servers", &self.servers())
            .finish()
    }
}

/// A map of budgets per key, its key type erased: the key type depends on the request type,
/// which the layer does not know until it is called.
trait KeyedBudgets: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn len(&self) -> usize;
    /// Visits every server's budget and the overflow one.
    fn visit(&self, f: &mut dyn FnMut(&SharedBudget));
}

impl<Key> KeyedBudgets for KeyedMap<Key, SharedBudget>
where
    Key: Hash + Eq + Send + Sync + 'static,
{
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len(&self) -> usize {
        Self::len(self)
    }

    fn visit(&self, f: &mut dyn FnMut(&SharedBudget)) {
        self.for_each(|_, budget| f(budget));
        f(self.overflow());
    }
}

/// New settings for a running budget.
impl SharedBudget {
    /// Checks that `budget` keeps its rules and can replace this budget's settings in place:
    /// the same kind (ratio, gRPC throttle, unlimited) and, for a ratio, the same window.
    ///
    /// # Errors
    ///
    /// [`RetryBudget::validate`]'s error, or a conflict naming `budget` (another kind) or
    /// `budget.window` (another window).
    pub fn check(&self, budget: &RetryBudget) -> Result<(), ConfigError> {
        budget.validate()?;
        match (self.budget().kind, budget.kind) {
            (Kind::Ratio { window: old, .. }, Kind::Ratio { window: new, .. }) if old != new => {
                Err(ConfigError::conflict(
                    "retry",
                    "budget.window",
                    format!(
                        "of a running budget stays {old:?} (its counts are kept per tenth of \
                         it): rebuild the layer to change it, got {new:?}"
                    ),
                ))
            }
            (Kind::Ratio { .. }, Kind::Ratio { .. })
            | (Kind::Throttle { .. }, Kind::Throttle { .. })
            | (Kind::Unlimited, Kind::Unlimited) => Ok(()),
            (old, new) => Err(ConfigError::conflict(
                "retry",
                "budget",
                format!(
                    "of a running layer keeps its kind ({}): rebuild the layer to make it {}",
                    kind_name(&old),
                    kind_name(&new)
                ),
            )),
        }
    }

    /// Applies new settings to this budget (and to every server's, for a layer keyed per
    /// server) at once, for every layer that shares it: a ratio budget's ratio and floor (the
    /// requests and retries counted so far are kept), a gRPC throttle's maximum and token
    /// ratio (its tokens carried over, clamped to the new maximum).
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check); nothing changes then.
    pub fn apply(&self, budget: RetryBudget) -> Result<(), ConfigError> {
        self.check(&budget)?;
        // The new settings first: a server's budget made from now on starts with them.
        self.inner.spec.store(Arc::new(budget));
        self.set(budget);
        if let Some(keyed) = self.inner.keyed.get() {
            keyed.visit(&mut |server| {
                server.inner.spec.store(Arc::new(budget));
                server.set(budget);
            });
        }
        Ok(())
    }

    /// Puts `budget`'s numbers in force in this budget's state (same kind: checked).
    fn set(&self, budget: RetryBudget) {
        match budget.kind {
            Kind::Ratio {
                ratio,
                min_per_second,
                window,
            } => self
                .inner
                .state
                .set_rates(self::state::pack_rates(ratio, min_per_second, window)),
            Kind::Throttle {
                max_tokens,
                token_ratio,
            } => self
                .inner
                .state
                .set_limits(self::state::pack_limits(max_tokens, token_ratio)),
            Kind::Unlimited => {}
        }
    }
}

/// A budget kind's name, as a configuration file writes it.
const fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Ratio { .. } => "ratio",
        Kind::Throttle { .. } => "grpc_throttle",
        Kind::Unlimited => "unlimited",
    }
}
