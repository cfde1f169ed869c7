//! Which retry budget a request draws on: the layer's one budget, or its server's (gRFC A6
//! keys retry throttling per server name).

use tokio::time::Instant;
use weir_core::{KeyExtractor, keyed::KeyedConfig};

use crate::budget::SharedBudget;

/// Which budget each request of a retry layer draws on; the `K` of [`RetryLayer`]. Sealed: `()`
/// (the default: the layer's one budget), [`PerKey`] (one budget per server name, from
/// [`RetryBuilder::budget_per_server`] or [`RetryBuilder::budget_per_key`]), or
/// `Option<PerKey<_>>` (either, as a configuration file says).
///
/// [`RetryLayer`]: crate::RetryLayer
/// [`RetryBuilder::budget_per_server`]: crate::RetryBuilder::budget_per_server
/// [`RetryBuilder::budget_per_key`]: crate::RetryBuilder::budget_per_key
pub trait BudgetScope<Req>: sealed::Sealed {
    /// What the response future holds: nothing, or its server's budget.
    #[doc(hidden)]
    type Held;

    /// The budget of `request`; `layer` is the layer's own.
    #[doc(hidden)]
    fn select(&self, request: &Req, layer: &SharedBudget) -> Self::Held;

    /// The budget a request holds, or the layer's.
    #[doc(hidden)]
    fn budget<'a>(held: &'a Self::Held, layer: &'a SharedBudget) -> &'a SharedBudget;
}

impl<Req> BudgetScope<Req> for () {
    type Held = ();

    #[inline(always)]
    fn select(&self, _request: &Req, _layer: &SharedBudget) {}

    #[inline(always)]
    fn budget<'a>(_held: &'a (), layer: &'a SharedBudget) -> &'a SharedBudget {
        layer
    }
}

/// One retry budget per server name, as gRFC A6 keys retry throttling: the key `K` extracts
/// (for [`RetryBuilder::budget_per_server`](crate::RetryBuilder::budget_per_server), the
/// request's authority, [`Authority`](weir_core::key::Authority): the URI's host and port, or the
/// `Host` header) names the server, and each server gets a budget of its own with the layer's
/// budget settings, so failures of one upstream exhaust its budget only.
///
/// The budgets sit in a bounded map ([`KeyedMap`](weir_core::keyed::KeyedMap)): at most
/// [`max_servers`](crate::RetryBuilder::max_servers) servers (1 000 unless set), a server idle
/// for 10 minutes forgotten (its next request starts a fresh budget). While the map is full, new
/// servers share one overflow budget, so a flood of new names costs a bounded amount of memory
/// and never touches the budgets of the servers already known. A request without a key (no
/// authority) uses the layer's own budget, which [`RetryHandle`](crate::RetryHandle) reads.
///
/// With tonic, a generated client made with `new(channel)` sends a URI with no authority (the
/// `Channel` adds its origin below the retry layer): make it with `with_origin(service,
/// "http://server:port".parse()?)` so the retry layer sees the server's name. (A retry layer per
/// `Channel` is one budget per server already.)
#[derive(Clone, Copy, Debug)]
pub struct PerKey<K> {
    extractor: K,
    config: KeyedConfig,
}

impl<K> PerKey<K> {
    pub(crate) const fn new(extractor: K, max_servers: usize) -> Self {
        Self {
            extractor,
            config: KeyedConfig::new().max_keys(max_servers),
        }
    }

    pub(crate) fn max_servers(mut self, max_servers: usize) -> Self {
        self.config = self.config.max_keys(max_servers);
        self
    }
}

impl<Req, K> BudgetScope<Req> for PerKey<K>
where
    K: KeyExtractor<Req>,
{
    type Held = Option<SharedBudget>;

    fn select(&self, request: &Req, layer: &SharedBudget) -> Option<SharedBudget> {
        let key = self.extractor.extract(request)?;
        let map = layer.keyed::<K::Key>(self.config)?;
        Some(map.with(
            key,
            Instant::now(),
            |key| {
                (
                    self.extractor.detach(key),
                    SharedBudget::start(layer.budget()),
                )
            },
            SharedBudget::clone,
        ))
    }

    #[inline]
    fn budget<'a>(held: &'a Option<SharedBudget>, layer: &'a SharedBudget) -> &'a SharedBudget {
        held.as_ref().unwrap_or(layer)
    }
}

/// One budget per key when `Some` (a configuration file's `budget_per_server`), the layer's one
/// budget when `None`.
impl<Req, K> BudgetScope<Req> for Option<PerKey<K>>
where
    K: KeyExtractor<Req>,
{
    type Held = Option<SharedBudget>;

    #[inline]
    fn select(&self, request: &Req, layer: &SharedBudget) -> Option<SharedBudget> {
        self.as_ref()?.select(request, layer)
    }

    #[inline]
    fn budget<'a>(held: &'a Option<SharedBudget>, layer: &'a SharedBudget) -> &'a SharedBudget {
        held.as_ref().unwrap_or(layer)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl<K> Sealed for super::PerKey<K> {}
    impl<K> Sealed for Option<super::PerKey<K>> {}
}
