//! [`RateLimitBuilder`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use weir_core::inspect::Registry;
use weir_core::{
    ConfigError, Name, Observer, key::MissingKey, keyed::KeyedConfig, wire::HeaderStyle,
};

use crate::event::Event;
use crate::handle::RateLimitHandle;
use crate::layer::RateLimitLayer;
use crate::live::Tables;
use crate::protocol::{AnyProtocol, Http};
use crate::quota::Quota;
use crate::settings::PATTERN;
use crate::shared::{Limiter, Mode};
use crate::state::{Algorithm, Gcra};
use crate::store::{MemoryStore, Tier};
use crate::tier::{DefaultTier, UnitCost};
use crate::top::TopLimited;

impl RateLimitLayer {
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

/// Builds a [`RateLimitLayer`]; from [`RateLimitLayer::builder`] or a preset
/// ([`RateLimitLayer::per_second`], ...).
///
/// Type parameters change as you set them: `X` the key extractor ([`key`](Self::key)), `A` the
/// algorithm ([`algorithm`](Self::algorithm)), `T` the tier resolver ([`tier_of`](Self::tier_of)),
/// `C` the cost ([`cost`](Self::cost)), `O` the observer ([`observer`](Self::observer)), `P`
/// HTTP awareness ([`http`](Self::http)).
#[derive(Clone, Debug)]
#[must_use]
pub struct RateLimitBuilder<
    X = weir_core::key::Global,
    A = Gcra,
    T = DefaultTier,
    C = UnitCost,
    O = (),
    P = AnyProtocol,
> {
    pub(crate) name: Name,
    pub(crate) quotas: Vec<Quota>,
    pub(crate) tiers: Vec<(Name, Vec<Quota>)>,
    pub(crate) extractor: X,
    pub(crate) algorithm: A,
    pub(crate) tier_of: T,
    pub(crate) cost: C,
    pub(crate) observer: O,
    pub(crate) protocol: P,
    pub(crate) mode: Mode,
    pub(crate) missing: MissingKey,
    pub(crate) keyed: KeyedConfig,
    /// A preset given 0 (`per_second(0)`, ...): refused by `build`.
    pub(crate) zero: Option<&'static str>,
    /// Where `build` registers the handle ([`registry`](Self::registry)).
    pub(crate) registry: Option<Registry>,
}

impl RateLimitBuilder {
    pub(crate) fn new() -> Self {
        Self {
            name: Name::new("rate_limit"),
            quotas: Vec::new(),
            tiers: Vec::new(),
            extractor: weir_core::key::Global,
            algorithm: Gcra,
            tier_of: DefaultTier,
            cost: UnitCost,
            observer: (),
            protocol: AnyProtocol,
            mode: Mode::Reject,
            missing: MissingKey::Shared,
            keyed: KeyedConfig::new(),
            zero: None,
            registry: None,
        }
    }
}

impl<X, A, T, C, O, P> RateLimitBuilder<X, A, T, C, O, P> {
    /// Names the layer instance (in errors and events); `"rate_limit"` by default.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built by
    /// [`build`](Self::build) or [`build_with_handle`](Self::build_with_handle): its handle is
    /// registered under the layer's [`name`](Self::name) (`"rate_limit"` when given none). A
    /// name the registry already holds for a rate limit is a [`ConfigError`]
    /// ([`is_duplicate`](ConfigError::is_duplicate)). [`build_with_store`](Self::build_with_store)
    /// refuses a registry (a conflict); [`build_with_store_registered`](Self::build_with_store_registered)
    /// registers a limiter on a store that shows itself ([`InspectStore`](crate::InspectStore):
    /// weir-redis's `RedisStore`), without admin actions (its are async, `reset_async`, which a
    /// status page's action cannot wait for).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Adds a quota to the default tier. Several quotas *stack*: a request must pass all of them
    /// (`10/s` and `10 000/day`), and one refused by any is charged to none.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quotas.push(quota);
        self
    }

    /// Adds a named tier with its own stacked quotas, chosen per key by the resolver given to
    /// [`tier_of`](Self::tier_of). Keys the resolver does not place use the default tier (the
    /// [`quota`](Self::quota)s).
    pub fn tier(mut self, name: impl Into<Name>, quotas: impl IntoIterator<Item = Quota>) -> Self {
        self.tiers.push((name.into(), quotas.into_iter().collect()));
        self
    }

    /// Waits for room instead of refusing: a request that would be refused is admitted later if
    /// its turn comes within `max_wait` and before the request's [`weir_core::Deadline`] (read
    /// from HTTP requests with [`http`](Self::http)). The wait happens in the response future;
    /// dropping it gives the reserved room back. Only GCRA, the token bucket and the leaky
    /// bucket can reserve; the window algorithms still refuse at once.
    pub const fn wait(mut self, max_wait: Duration) -> Self {
        self.mode = Mode::Wait(max_wait);
        self
    }

    /// Shadow mode: decides and counts as usual and emits [`Event::Shadowed`](crate::Event) for
    /// every request it would have refused, but never refuses. To roll a limit out safely.
    pub const fn shadow(mut self) -> Self {
        self.mode = Mode::Shadow;
        self
    }

    /// What a request whose extractor finds no key gets ([`MissingKey::Shared`] by default: all
    /// key-less requests share one state). [`MissingKey::Reject`] refuses them with
    /// `weir_core::Error::missing_key()`: 401 through `ErrorResponseLayer` (`UNAUTHENTICATED`
    /// over gRPC), no `Retry-After`.
    pub const fn missing_key(mut self, missing: MissingKey) -> Self {
        self.missing = missing;
        self
    }

    /// The most keys stored at once (100 000 by default; 0 counts as 1). Once full, a new key
    /// first takes the room of a key whose buckets are full again, and otherwise is decided on
    /// one of its tier's `max_keys / 8` overflow states (between 1 and 16 384), chosen by a
    /// keyed hash of the key, each applying every quota of the tier: a flood of random keys
    /// costs collisions, never a looser limit or one shared lockout.
    pub const fn max_keys(mut self, max_keys: usize) -> Self {
        self.keyed = self.keyed.max_keys(max_keys);
        self
    }

    /// How long a key goes without requests before it may be evicted (10 minutes by default); a
    /// key is evicted only once its buckets are full again, so eviction never changes a decision.
    pub const fn idle_timeout(mut self, idle: Duration) -> Self {
        self.keyed = self.keyed.idle_timeout(idle);
        self
    }

    /// Limits per key, extracted by `extractor` (a weir-core [`KeyExtractor`](weir_core::KeyExtractor):
    /// `PeerIp`, `ApiKey`, `Header`, a closure, ...).
    pub fn key<X2>(self, extractor: X2) -> RateLimitBuilder<X2, A, T, C, O, P> {
        RateLimitBuilder {
            name: self.name,
            quotas: self.quotas,
            tiers: self.tiers,
            extractor,
            algorithm: self.algorithm,
            tier_of: self.tier_of,
            cost: self.cost,
            observer: self.observer,
            protocol: self.protocol,
            mode: self.mode,
            missing: self.missing,
            keyed: self.keyed,
            zero: self.zero,
            registry: self.registry,
        }
    }

    /// The algorithm ([`Gcra`] by default; [`TokenBucket`](crate::TokenBucket),
    /// [`LeakyBucket`](crate::LeakyBucket), [`FixedWindow`](crate::FixedWindow),
    /// [`SlidingLog`](crate::SlidingLog), [`SlidingWindow`](crate::SlidingWindow)).
    pub fn algorithm<A2>(self, algorithm: A2) -> RateLimitBuilder<X, A2, T, C, O, P> {
        RateLimitBuilder {
            name: self.name,
            quotas: self.quotas,
            tiers: self.tiers,
            extractor: self.extractor,
            algorithm,
            tier_of: self.tier_of,
            cost: self.cost,
            observer: self.observer,
            protocol: self.protocol,
            mode: self.mode,
            missing: self.missing,
            keyed: self.keyed,
            zero: self.zero,
            registry: self.registry,
        }
    }

    /// The tier of a key: a closure `|key: &K| -> Option<&'static str>` naming one of the
    /// [`tier`](Self::tier)s; `None` or an unknown name is the default tier. Called on every
    /// request, with the key.
    pub fn tier_of<T2>(self, tier_of: T2) -> RateLimitBuilder<X, A, T2, C, O, P> {
        RateLimitBuilder {
            name: self.name,
            quotas: self.quotas,
            tiers: self.tiers,
            extractor: self.extractor,
            algorithm: self.algorithm,
            tier_of,
            cost: self.cost,
            observer: self.observer,
            protocol: self.protocol,
            mode: self.mode,
            missing: self.missing,
            keyed: self.keyed,
            zero: self.zero,
            registry: self.registry,
        }
    }

    /// The cost of a request in quota units: a closure `|req: &Req| -> u32` (by route, by body
    /// size, ...); 1 by default. A cost of 0 passes without being counted.
    pub fn cost<C2>(self, cost: C2) -> RateLimitBuilder<X, A, T, C2, O, P> {
        RateLimitBuilder {
            name: self.name,
            quotas: self.quotas,
            tiers: self.tiers,
            extractor: self.extractor,
            algorithm: self.algorithm,
            tier_of: self.tier_of,
            cost,
            observer: self.observer,
            protocol: self.protocol,
            mode: self.mode,
            missing: self.missing,
            keyed: self.keyed,
            zero: self.zero,
            registry: self.registry,
        }
    }

    /// The observer of [`Event`](crate::Event)s (refusals, shadow refusals).
    pub fn observer<O2>(self, observer: O2) -> RateLimitBuilder<X, A, T, C, O2, P> {
        RateLimitBuilder {
            name: self.name,
            quotas: self.quotas,
            tiers: self.tiers,
            extractor: self.extractor,
            algorithm: self.algorithm,
            tier_of: self.tier_of,
            cost: self.cost,
            observer,
            protocol: self.protocol,
            mode: self.mode,
            missing: self.missing,
            keyed: self.keyed,
            zero: self.zero,
            registry: self.registry,
        }
    }

    /// For `http::Request` / `http::Response` services: writes the IETF `RateLimit` and
    /// `RateLimit-Policy` fields on admitted responses and reads the request's
    /// [`weir_core::Deadline`] in wait mode. Same as `response_headers(HeaderStyle::Ietf)`.
    pub fn http(self) -> RateLimitBuilder<X, A, T, C, O, Http> {
        self.response_headers(HeaderStyle::Ietf)
    }

    /// As [`http`](Self::http), with the given header style ([`HeaderStyle::None`] writes no
    /// field but still reads deadlines).
    pub fn response_headers(self, style: HeaderStyle) -> RateLimitBuilder<X, A, T, C, O, Http> {
        RateLimitBuilder {
            name: self.name,
            quotas: self.quotas,
            tiers: self.tiers,
            extractor: self.extractor,
            algorithm: self.algorithm,
            tier_of: self.tier_of,
            cost: self.cost,
            observer: self.observer,
            protocol: Http::new(style),
            mode: self.mode,
            missing: self.missing,
            keyed: self.keyed,
            zero: self.zero,
            registry: self.registry,
        }
    }

    /// A preset's quota of `n` per period: a zero `n` is recorded (and taken as 1 by the quota)
    /// so that `build` refuses it, naming the preset.
    pub(crate) fn preset(mut self, preset: &'static str, n: u32, quota: Quota) -> Self {
        if n == 0 && self.zero.is_none() {
            self.zero = Some(preset);
        }
        self.quota(quota)
    }

    fn tiers(&mut self) -> Result<Box<[Tier]>, ConfigError> {
        crate::settings::table(
            self.zero,
            std::mem::take(&mut self.quotas),
            std::mem::take(&mut self.tiers),
        )
    }

    /// Checks the configuration and builds the layer, with its in-memory state.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`]; with a [`registry`](Self::registry), a
    /// duplicate `name`.
    pub fn build(self) -> Result<RateLimitLayer<X, MemoryStore<A>, T, C, O, P>, ConfigError>
    where
        A: Algorithm,
        X: Send + Sync + 'static,
        T: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        self.build_with_handle().map(|(layer, _)| layer)
    }

    /// As [`build`](Self::build), with a [`RateLimitHandle`] on the shared state.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`].
    pub fn build_with_handle(
        mut self,
    ) -> Result<
        (
            RateLimitLayer<X, MemoryStore<A>, T, C, O, P>,
            RateLimitHandle<X, MemoryStore<A>, T, C, O, P>,
        ),
        ConfigError,
    >
    where
        A: Algorithm,
        X: Send + Sync + 'static,
        T: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        let tiers = self.tiers()?;
        let registry = self.registry.take();
        let store = MemoryStore::new(self.algorithm.clone(), self.keyed, &tiers[0]);
        let layer = self.finish(tiers, |name, observer| {
            // Evictions reach the layer's observer: the hook owns a clone of the name and of the
            // observer's `Arc`, and the event borrows them (nothing allocated per eviction).
            let (name, observer) = (name.clone(), Arc::clone(observer));
            store.on_evict(move || observer.on_event(&Event::Evicted { layer: &name }))
        });
        let handle = RateLimitHandle::new(Arc::clone(layer.limiter()));
        if let Some(registry) = &registry {
            registry.register_unique(Arc::new(handle.clone()))?;
        }
        Ok((layer, handle))
    }

    /// Builds the layer on another [`Store`](crate::Store) (the Redis store of `weir-redis`); the
    /// algorithm set here is not used.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`]; a [`registry`](Self::registry) is a
    /// conflict (see there).
    pub fn build_with_store<St>(
        mut self,
        store: St,
    ) -> Result<RateLimitLayer<X, St, T, C, O, P>, ConfigError> {
        if self.registry.is_some() {
            return Err(ConfigError::conflict(
                PATTERN,
                "registry",
                "registers layers built with the in-memory store (`build`, `build_with_handle`) \
                 or with a store that shows itself (`build_with_store_registered`)",
            ));
        }
        let tiers = self.tiers()?;
        Ok(self.finish(tiers, |_, _| store))
    }

    /// As [`build_with_store`](Self::build_with_store), for a store that shows itself on a
    /// status page ([`InspectStore`](crate::InspectStore): weir-redis's `RedisStore`): the
    /// layer's handle is registered in the [`registry`](Self::registry) given (a snapshot of
    /// its `rejected` counter and the store's own figures), and returned.
    ///
    /// # Errors
    ///
    /// The first broken rule, as a [`ConfigError`]; a duplicate `name` in the registry; no
    /// registry given (a missing `registry`: use `build_with_store` to build without one).
    pub fn build_with_store_registered<St>(
        mut self,
        store: St,
    ) -> Result<
        (
            RateLimitLayer<X, St, T, C, O, P>,
            RateLimitHandle<X, St, T, C, O, P>,
        ),
        ConfigError,
    >
    where
        St: crate::InspectStore,
        X: Send + Sync + 'static,
        T: Send + Sync + 'static,
        C: Send + Sync + 'static,
        O: Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        let Some(registry) = self.registry.take() else {
            return Err(ConfigError::missing(
                PATTERN,
                "registry",
                "`build_with_store_registered` registers the layer: give `registry` first",
            ));
        };
        let tiers = self.tiers()?;
        let layer = self.finish(tiers, |_, _| store);
        let handle = RateLimitHandle::new(Arc::clone(layer.limiter()));
        registry.register_unique(Arc::new(handle.clone()))?;
        Ok((layer, handle))
    }

    fn finish<St>(
        self,
        tiers: Box<[Tier]>,
        store: impl FnOnce(&Name, &Arc<O>) -> St,
    ) -> RateLimitLayer<X, St, T, C, O, P> {
        let observer = Arc::new(self.observer);
        let store = store(&self.name, &observer);
        RateLimitLayer::from_limiter(Arc::new(Limiter {
            name: self.name,
            store,
            extractor: self.extractor,
            tier_of: self.tier_of,
            tiers: Tables::new(tiers),
            cost: self.cost,
            observer,
            protocol: self.protocol,
            mode: self.mode,
            missing: self.missing,
            refused: AtomicU64::new(0),
            top: TopLimited::default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_every_rule() {
        let err = |b: RateLimitBuilder| b.build().err();
        let missing = err(RateLimitLayer::builder()).expect("no quota");
        assert!(missing.is_missing());
        assert_eq!(missing.field(), "quota");
        let zero = err(RateLimitLayer::per_second(0)).expect("zero");
        assert_eq!(zero, ConfigError::zero(PATTERN, "per_second", ""));
        assert_eq!(
            zero.to_string(),
            "rate limit: `per_second` must be at least 1"
        );
        let empty = err(RateLimitLayer::per_second(1).tier("gold", [])).expect("empty");
        assert!(empty.is_missing());
        assert_eq!(empty.field(), "tier");
        let twice = err(RateLimitLayer::per_second(1)
            .tier("gold", [Quota::per_second(2)])
            .tier("gold", [Quota::per_second(3)]))
        .expect("twice");
        assert!(twice.is_duplicate());
        assert!(twice.to_string().contains("`gold`"));
        assert!(RateLimitLayer::per_day(10_000).build().is_ok());
    }
}
