//! [`RateLimitLayer`] and the state its services share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;
use weir_core::{
    BoxError, Error, Global, HeaderStyle, KeyedConfig, MissingKey, Name, Observer, RateLimitInfo,
};

use crate::builder::RateLimitBuilder;
use crate::event::Event;
use crate::handle::RateLimitHandle;
use crate::protocol::AnyProtocol;
use crate::quota::Quota;
use crate::service::RateLimit;
use crate::state::Gcra;
use crate::store::{Decision, MemoryStore, Store, Tier};
use crate::tier::{DefaultTier, TierOf, UnitCost};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Reject,
    Wait(Duration),
    Shadow,
}

/// Everything a layer's services share: created once by `build()`, behind one `Arc`.
pub(crate) struct Limiter<X, St, T, C, O, P> {
    pub(crate) name: Name,
    pub(crate) store: St,
    pub(crate) extractor: X,
    pub(crate) tier_of: T,
    pub(crate) tiers: Box<[Tier]>,
    pub(crate) cost: C,
    /// Shared with the store's eviction hook.
    pub(crate) observer: Arc<O>,
    pub(crate) protocol: P,
    pub(crate) mode: Mode,
    pub(crate) missing: MissingKey,
}

/// A reserved wait: given back to the store if dropped before it is used.
pub(crate) struct Reservation(Option<Box<dyn FnOnce() + Send>>);

impl Reservation {
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel();
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reservation")
            .field(&self.0.is_some())
            .finish()
    }
}

/// What a request does after its decision.
pub(crate) enum Next {
    Call(Option<Box<RateLimitInfo>>),
    Wait(Duration, Option<Box<RateLimitInfo>>, Reservation),
    Reject(BoxError),
}

impl<X, St, T, C, O, P> Limiter<X, St, T, C, O, P> {
    pub(crate) fn tier_index<K>(&self, key: Option<&K>) -> usize
    where
        T: TierOf<K>,
    {
        let Some(name) = key.and_then(|k| self.tier_of.tier(k)) else {
            return 0;
        };
        self.tiers
            .iter()
            .position(|t| t.name() == name)
            .unwrap_or(0)
    }

    pub(crate) fn max_wait(&self, deadline: Option<Instant>, now: Instant) -> Duration {
        match self.mode {
            Mode::Wait(max) => deadline.map_or(max, |d| max.min(d.saturating_duration_since(now))),
            Mode::Reject | Mode::Shadow => Duration::ZERO,
        }
    }

    /// The state a response reports: the decision's policy, its units left (never more than
    /// the quota `RateLimit-Policy` advertises, even with a burst above the rate), every other
    /// quota of the tier listed after it, and the limiter's header style if it has one.
    fn info(&self, tier: usize, decision: &Decision, style: Option<HeaderStyle>) -> RateLimitInfo {
        let quota = self.quota(tier, decision);
        let q = u64::from(quota.rate());
        let mut info = RateLimitInfo::new(quota.name_ref().clone(), q, quota.period())
            .remaining(decision.remaining().min(q))
            .reset(decision.reset());
        for (i, other) in self.tiers[tier].quotas().iter().enumerate() {
            if i != decision.policy() {
                info = info.also_policy(
                    other.name_ref().clone(),
                    u64::from(other.rate()),
                    other.period(),
                );
            }
        }
        match style {
            Some(style) => info.style(style),
            None => info,
        }
    }

    fn quota(&self, tier: usize, decision: &Decision) -> &Quota {
        let quotas = self.tiers[tier].quotas();
        quotas.get(decision.policy()).unwrap_or(&quotas[0])
    }

    /// The refusal for a request without a key under [`MissingKey::Reject`]: not a rate limit
    /// (no `Retry-After`: waiting gives the request no key), `Error::missing_key` (401).
    pub(crate) fn missing_key_error(&self) -> BoxError {
        Error::missing_key().with_layer(self.name.clone()).into()
    }
}

impl<X, St, T, C, O, P> Limiter<X, St, T, C, O, P>
where
    O: for<'a> Observer<Event<'a>>,
{
    /// Turns a decision into what the request does next; emits the refusal events. Out of
    /// line: the service answers the plain happy path (admitted at once, no fields to write)
    /// itself.
    #[inline(never)]
    pub(crate) fn judge<K>(
        self: &Arc<Self>,
        decision: Decision,
        decided: Instant,
        key: Option<K>,
        tier: usize,
        cost: u32,
        style: Option<HeaderStyle>,
    ) -> Next
    where
        St: Store<K>,
        K: Send + 'static,
        X: Send + Sync + 'static,
        T: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        let headers = style.is_some_and(|s| s != HeaderStyle::None);
        if decision.is_admitted() && decision.is_immediate() && !headers {
            // The plain happy path: no quota to look up, nothing to report.
            return Next::Call(None);
        }
        let quota = self.quota(tier, &decision);
        if decision.is_admitted() {
            let info = headers.then(|| Box::new(self.info(tier, &decision, style)));
            if decision.is_immediate() {
                return Next::Call(info);
            }
            let this = Arc::clone(self);
            let end = decided + decision.reset();
            let reservation = Reservation(Some(Box::new(move || {
                let tier = &this.tiers[tier];
                this.store
                    .cancel_reserved(key.as_ref(), tier, cost, end, Instant::now());
            })));
            return Next::Wait(decision.wait(), info, reservation);
        }
        let shadow = self.mode == Mode::Shadow;
        let never = decision.is_never_admissible();
        let event = Event::new(
            shadow,
            &self.name,
            quota.name_ref(),
            self.tiers[tier].name(),
            if never {
                Duration::MAX
            } else {
                decision.retry_after()
            },
            cost,
        );
        self.observer.on_event(&event);
        if shadow {
            let info = headers.then(|| Box::new(self.info(tier, &decision, style)));
            return Next::Call(info);
        }
        // A cost the quota can never admit is not a 429 a client would retry forever.
        let error = if never {
            Error::never_admissible()
        } else {
            Error::rate_limited(decision.retry_after())
        };
        Next::Reject(
            error
                .with_layer(self.name.clone())
                .with_rate_limit(self.info(tier, &decision, style))
                .into(),
        )
    }
}

/// Limits the rate of requests: applies a [`RateLimit`] to a service.
///
/// Its state is created by [`build`](RateLimitBuilder::build) and shared by every service it
/// makes and every clone: one layer on two axum routes is one limit for both; per-route limits
/// come from one layer per route.
///
/// ```
/// use weir_rate_limit::{Quota, RateLimitLayer};
///
/// // 100 requests per second for everyone together.
/// let global = RateLimitLayer::per_second(100).build()?;
/// // The same, in one call that cannot fail.
/// let same = RateLimitLayer::new(Quota::per_second(100));
/// # let _ = (global, same);
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
pub struct RateLimitLayer<
    X = Global,
    St = MemoryStore,
    T = DefaultTier,
    C = UnitCost,
    O = (),
    P = AnyProtocol,
> {
    limiter: Arc<Limiter<X, St, T, C, O, P>>,
}

impl RateLimitLayer {
    /// A layer enforcing one quota for every request together (GCRA, reject mode). It cannot
    /// fail: a [`Quota`] is valid by construction (a zero rate or burst is raised to 1, a zero
    /// period to 1 ms: the rule of every `new` in weir).
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        let tiers: Box<[Tier]> = Box::new([Tier::new(Name::default(), vec![quota])]);
        let store = MemoryStore::new(Gcra, KeyedConfig::new(), &tiers[0]);
        Self::from_limiter(Arc::new(Limiter {
            name: Name::new("rate_limit"),
            store,
            extractor: Global,
            tier_of: DefaultTier,
            tiers,
            cost: UnitCost,
            observer: Arc::new(()),
            protocol: AnyProtocol,
            mode: Mode::Reject,
            missing: MissingKey::Shared,
        }))
    }

    /// A builder with no quota yet.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder::new()
    }

    /// A builder with `n` requests per second (burst `n`); `build` refuses 0.
    pub fn per_second(n: u32) -> RateLimitBuilder {
        Self::builder().preset("per_second", n, Quota::per_second(n))
    }

    /// A builder with `n` requests per minute (burst `n`); `build` refuses 0.
    pub fn per_minute(n: u32) -> RateLimitBuilder {
        Self::builder().preset("per_minute", n, Quota::per_minute(n))
    }

    /// A builder with `n` requests per hour (burst `n`); `build` refuses 0.
    pub fn per_hour(n: u32) -> RateLimitBuilder {
        Self::builder().preset("per_hour", n, Quota::per_hour(n))
    }

    /// A builder with `n` requests per day (burst `n`); `build` refuses 0.
    pub fn per_day(n: u32) -> RateLimitBuilder {
        Self::builder().preset("per_day", n, Quota::per_day(n))
    }
}

impl<X, St, T, C, O, P> RateLimitLayer<X, St, T, C, O, P> {
    pub(crate) const fn from_limiter(limiter: Arc<Limiter<X, St, T, C, O, P>>) -> Self {
        Self { limiter }
    }

    pub(crate) const fn limiter(&self) -> &Arc<Limiter<X, St, T, C, O, P>> {
        &self.limiter
    }

    /// The layer instance's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.limiter.name.as_str()
    }

    /// A handle on the state this layer and all its services share (the same as
    /// [`build_with_handle`](RateLimitBuilder::build_with_handle) gives).
    #[must_use]
    pub fn handle(&self) -> RateLimitHandle<X, St, T, C, O, P> {
        RateLimitHandle::new(Arc::clone(&self.limiter))
    }
}

impl<X, St, T, C, O, P> Clone for RateLimitLayer<X, St, T, C, O, P> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<X, St: fmt::Debug, T, C, O, P> fmt::Debug for RateLimitLayer<X, St, T, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("name", &self.limiter.name)
            .field("tiers", &self.limiter.tiers)
            .field("mode", &self.limiter.mode)
            .field("store", &self.limiter.store)
            .finish_non_exhaustive()
    }
}

impl<S, X, St, T, C, O, P> Layer<S> for RateLimitLayer<X, St, T, C, O, P> {
    type Service = RateLimit<S, X, St, T, C, O, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.limiter))
    }
}
