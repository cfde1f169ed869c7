//! Per-request inputs: the tier of a key and the cost of a request.

/// Chooses a key's tier by name (see [`RateLimitBuilder::tier`](crate::RateLimitBuilder::tier)).
///
/// Implemented by closures `Fn(&K) -> Option<&'static str>`; `None`, or a name no tier has,
/// means the default tier.
pub trait TierOf<K>: Send + Sync + 'static {
    /// The name of `key`'s tier, or `None` for the default tier.
    fn tier(&self, key: &K) -> Option<&str>;
}

/// Every key in the default tier (the default resolver).
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultTier;

impl<K> TierOf<K> for DefaultTier {
    #[inline(always)]
    fn tier(&self, _key: &K) -> Option<&str> {
        None
    }
}

impl<K, F> TierOf<K> for F
where
    F: Fn(&K) -> Option<&'static str> + Send + Sync + 'static,
{
    #[inline]
    fn tier(&self, key: &K) -> Option<&str> {
        self(key)
    }
}

/// The cost of a request in quota units (see [`RateLimitBuilder::cost`](crate::RateLimitBuilder::cost)).
///
/// Implemented by closures `Fn(&Req) -> u32`.
pub trait Cost<Req>: Send + Sync + 'static {
    /// Units `req` costs; 0 lets it pass uncounted.
    fn cost(&self, req: &Req) -> u32;
}

/// Every request costs 1 unit (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct UnitCost;

impl<Req> Cost<Req> for UnitCost {
    #[inline(always)]
    fn cost(&self, _req: &Req) -> u32 {
        1
    }
}

impl<Req, F> Cost<Req> for F
where
    F: Fn(&Req) -> u32 + Send + Sync + 'static,
{
    #[inline]
    fn cost(&self, req: &Req) -> u32 {
        self(req)
    }
}
