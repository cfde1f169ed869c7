//! [`RateLimitHandle`]: a read handle on a layer's shared state.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weir_core::{BoxError, wire::RateLimitInfo};

use crate::shared::Limiter;
use crate::state::{Algorithm, Verdict};
use crate::store::{AdminStore, MemoryStore, Tier};
use crate::tier::TierOf;
use crate::top::Limited;

/// Reads the state a [`RateLimitLayer`](crate::RateLimitLayer) and all its services share; from
/// [`RateLimitLayer::handle`](crate::RateLimitLayer::handle) or
/// [`RateLimitBuilder::build_with_handle`](crate::RateLimitBuilder::build_with_handle).
pub struct RateLimitHandle<X, St, T, C, O, P> {
    pub(crate) limiter: Arc<Limiter<X, St, T, C, O, P>>,
}

impl<X, St, T, C, O, P> RateLimitHandle<X, St, T, C, O, P> {
    pub(crate) const fn new(limiter: Arc<Limiter<X, St, T, C, O, P>>) -> Self {
        Self { limiter }
    }

    /// The layer instance's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.limiter.name.as_str()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.limiter.store
    }
}

impl<X, St, T, C, O, P> RateLimitHandle<X, St, T, C, O, P> {
    /// The `n` keys refused most often (at most 16), most refused first: a space-saving
    /// estimate over every refusal since the layer was built (a shadowed request is not a
    /// refusal; a request without a key is not counted). Each [`Limited`] names the key by its
    /// `Debug` form, cut to 64 bytes.
    ///
    /// The table is written only on a refusal, never on an admitted request, and the refusal
    /// never waits for it: one that finds it busy (another thread writing, a reader here) goes
    /// uncounted. Keys are never metric labels; this is where an operator finds them.
    #[must_use]
    pub fn top_limited(&self, n: usize) -> Vec<Limited> {
        self.limiter.top.top(n)
    }
}

impl<X, A: Algorithm, T, C, O, P> RateLimitHandle<X, MemoryStore<A>, T, C, O, P> {
    /// Where window edges fall: the windows of a quota of period `p` (fixed window,
    /// sliding-window counter, the token bucket's refills) start at `window_origin() + k × p`,
    /// for every key alike (not at a key's first request). (On weir-redis's store, which has
    /// no such handle method, they start at the Unix epoch on the Redis server's clock:
    /// `handle.store().window_origin()`.)
    #[must_use]
    pub fn window_origin(&self) -> Instant {
        self.limiter.store.window_origin()
    }

    /// The state of one key now, one [`RateLimitInfo`] per quota of its tier (in the order
    /// they were added): units left for a request of one unit, time until fully restored.
    /// `key` is the key as the extractor produces it (a `String` and a `&str` are the same
    /// key). Nothing is charged or stored: a key that is not stored (never seen, evicted, or
    /// deciding on an overflow state while the map is full) reads as fresh.
    #[must_use]
    pub fn remaining<K: Hash>(&self, key: &K) -> Vec<RateLimitInfo>
    where
        T: TierOf<K>,
    {
        let lim = &self.limiter;
        let tier = &lim.tiers.current()[lim.tier_index(Some(key))];
        let verdicts = lim.store.peek_key(key, tier, Instant::now());
        infos(tier, verdicts)
    }

    /// Resets one key: its state is forgotten and its next request starts with every quota
    /// full (an admin endpoint's "reset this client"). Whether it had a state of its own.
    pub fn reset<K: Hash>(&self, key: &K) -> bool
    where
        T: TierOf<K>,
    {
        let lim = &self.limiter;
        let tier = &lim.tiers.current()[lim.tier_index(Some(key))];
        lim.store.forget(key, tier)
    }

    /// The number of keys with a state of their own (idle keys are evicted by the limiter).
    #[must_use]
    pub fn keys(&self) -> usize {
        self.limiter.store.keys()
    }

    /// How many idle keys the limiter has evicted since it was built (each also reported to the
    /// observer as [`Event::Evicted`](crate::Event::Evicted)).
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.limiter.store.evicted()
    }
}

/// What a status page reads (see `inspect.rs`).
impl<X, A: Algorithm, T, C, O, P> RateLimitHandle<X, MemoryStore<A>, T, C, O, P> {
    /// Units left now for a request of one unit in the state every request shares when the
    /// limiter has no key (or key-less requests share, keyed), the least over the default
    /// tier's quotas.
    pub(crate) fn shared_remaining(&self) -> u64 {
        let lim = &self.limiter;
        let verdicts = lim
            .store
            .peek_key(&(), &lim.tiers.current()[0], Instant::now());
        verdicts
            .iter()
            .map(|v| v.remaining() + u64::from(v.is_admitted()))
            .min()
            .unwrap_or(0)
    }

    /// Forgets the key written `text` (see `MemoryStore::forget_text`).
    pub(crate) fn reset_text(&self, text: &str) -> bool {
        self.limiter.store.forget_text(text)
    }

    /// Whether the limiter is global (the `Global` extractor: one state for every request).
    pub(crate) fn is_global(&self) -> bool
    where
        X: 'static,
    {
        (&self.limiter.extractor as &dyn std::any::Any).is::<weir_core::key::Global>()
    }
}

impl<X, St, T, C, O, P> RateLimitHandle<X, St, T, C, O, P> {
    /// Requests refused since the layer was built (in shadow mode, those that would have
    /// been); a request refused for want of a key is not counted.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.limiter
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The layer's name, as a [`Name`](weir_core::Name).
    pub(crate) fn layer_name(&self) -> &weir_core::Name {
        &self.limiter.name
    }
}

/// The admin calls of any [`AdminStore`]: the in-memory store (answered at once) and
/// weir-redis's `RedisStore` (one round trip to Redis, on the state every instance shares).
impl<X, St, T, C, O, P> RateLimitHandle<X, St, T, C, O, P> {
    /// [`remaining`](Self::remaining) for any [`AdminStore`]: one [`RateLimitInfo`] per quota
    /// of `key`'s tier (in the order they were added), the units left for a request of one
    /// unit and the time until fully restored. Nothing is charged or stored; a key with no
    /// state reads as fresh.
    ///
    /// With the Redis store it is one read-only script on the keys and hash tag the limiter
    /// uses, so it reads what every instance has spent. Where window edges fall depends on
    /// the store: [`MemoryStore::window_origin`] for the in-memory store, the Unix epoch on the
    /// Redis server's clock for the Redis store (a daily window starts at 00:00 UTC).
    ///
    /// # Errors
    ///
    /// The store's error when it cannot answer (for the Redis store: Redis unreachable, or no
    /// answer within the store's timeout). An admin call never goes to the store's failure
    /// policy: an outage is an error, never a made-up "fresh" answer.
    pub async fn remaining_async<K>(&self, key: &K) -> Result<Vec<RateLimitInfo>, BoxError>
    where
        T: TierOf<K>,
        St: AdminStore<K>,
    {
        let lim = &self.limiter;
        let tier = &lim.tiers.current()[lim.tier_index(Some(key))];
        let verdicts = lim.store.peek(key, tier).await?;
        Ok(infos(tier, verdicts))
    }

    /// [`reset`](Self::reset) for any [`AdminStore`]: forgets `key`'s state in every quota of
    /// its tier, so its next request starts with every quota full; whether it had a state.
    ///
    /// With the Redis store the keys are deleted in Redis, so every instance sees the reset at
    /// once (and this instance's local fallback state and lease of the key are dropped too; a
    /// lease another instance already took is spent there, at most one batch).
    ///
    /// # Errors
    ///
    /// As [`remaining_async`](Self::remaining_async): the store's error when it cannot answer,
    /// and then nothing is known to be reset.
    pub async fn reset_async<K>(&self, key: &K) -> Result<bool, BoxError>
    where
        T: TierOf<K>,
        St: AdminStore<K>,
    {
        let lim = &self.limiter;
        let tier = &lim.tiers.current()[lim.tier_index(Some(key))];
        lim.store.forget(key, tier).await
    }
}

/// One [`RateLimitInfo`] per quota of `tier` from the verdicts of a one-unit peek.
fn infos(tier: &Tier, verdicts: Vec<Verdict>) -> Vec<RateLimitInfo> {
    tier.quotas()
        .iter()
        .zip(verdicts)
        .map(|(quota, v)| {
            // A one-unit request admitted leaves one unit less than there is now.
            let left = v.remaining() + u64::from(v.is_admitted());
            RateLimitInfo::new(
                quota.name_ref().clone(),
                u64::from(quota.rate()),
                quota.period(),
            )
            .remaining(left)
            .reset(Duration::from_nanos(v.reset()))
        })
        .collect()
}

impl<X, St, T, C, O, P> Clone for RateLimitHandle<X, St, T, C, O, P> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<X, St, T, C, O, P> fmt::Debug for RateLimitHandle<X, St, T, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitHandle")
            .field("name", &self.limiter.name)
            .finish_non_exhaustive()
    }
}
