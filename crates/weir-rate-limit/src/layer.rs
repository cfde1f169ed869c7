//! [`RateLimitLayer`]: `new`, `handle()`, `impl Layer`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tower_layer::Layer;
use weir_core::{Name, key::Global, key::MissingKey, keyed::KeyedConfig};

use crate::handle::RateLimitHandle;
use crate::protocol::AnyProtocol;
use crate::quota::Quota;
use crate::service::RateLimit;
use crate::shared::{Limiter, Mode};
use crate::state::Gcra;
use crate::store::{MemoryStore, Tier};
use crate::tier::{DefaultTier, UnitCost};
use crate::top::TopLimited;

/// Limits the rate of requests: applies a [`RateLimit`] to a service.
///
/// Its state is created by [`build`](crate::RateLimitBuilder::build) and shared by every service it
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
            tiers: crate::live::Tables::new(tiers),
            cost: UnitCost,
            observer: Arc::new(()),
            protocol: AnyProtocol,
            mode: Mode::Reject,
            missing: MissingKey::Shared,
            refused: AtomicU64::new(0),
            top: TopLimited::default(),
        }))
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
    /// [`build_with_handle`](crate::RateLimitBuilder::build_with_handle) gives).
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
