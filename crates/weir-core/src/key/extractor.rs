//! The `KeyExtractor` trait (at the crate root) and its closure impl.

use std::fmt;
use std::hash::Hash;

/// Extracts the key that per-client state (a rate-limit bucket, a keyed breaker, a bulkhead
/// partition) is kept under.
///
/// Ready-made extractors cover the usual keys ([`PeerIp`](crate::key::PeerIp), [`Header`](crate::key::Header), [`ApiKey`](crate::key::ApiKey), `Route`,
/// [`MethodPath`](crate::key::MethodPath), [`Global`](crate::key::Global)); any `Fn(&Req) -> Option<K>` closure is an extractor too, and
/// [`KeyExtractorExt`](crate::key::KeyExtractorExt) combines two of them.
///
/// ```
/// use http::Request;
/// use weir_core::KeyExtractor;
///
/// // One bucket per tenant, read from a header the gateway sets.
/// let tenant = |req: &Request<()>| req.headers().get("x-tenant").cloned();
///
/// let req = Request::builder().header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(tenant.extract(&req).unwrap(), "acme");
/// assert_eq!(tenant.extract(&Request::new(())), None);
/// ```
pub trait KeyExtractor<Req> {
    /// The key. Owned, cheap to clone, hashable.
    type Key: Clone + Eq + Hash + Send + Sync + fmt::Debug + 'static;

    /// The key of this request, or `None` when the request has none (see [`MissingKey`](crate::key::MissingKey)).
    fn extract(&self, req: &Req) -> Option<Self::Key>;

    /// Prepares a key to be stored beyond the request, for example as a new entry of a keyed
    /// layer's state map.
    ///
    /// A key cloned out of a request may share that request's buffer: a [`HeaderValue`](http::HeaderValue) that
    /// hyper parsed is a slice of the connection's read buffer, and holding it keeps the whole
    /// buffer (kilobytes) alive. `detach` copies such a key into an allocation of its own, so
    /// keyed layers call it once, when they first store a key, never on the lookup path. The
    /// default returns the key unchanged, which is right for keys that borrow nothing (an
    /// `IpAddr`, `()`, an `Arc<str>`).
    #[inline]
    fn detach(&self, key: Self::Key) -> Self::Key {
        key
    }

    /// Whether every request gets the same key, as with [`Global`](crate::key::Global): a keyed layer may then keep
    /// that key's state as its one key-less state, with no map to look the key up in (the rate
    /// limiter does). The default is `false`, always correct, only slower for an extractor that
    /// is in fact global.
    #[inline]
    fn is_global(&self) -> bool {
        false
    }
}

impl<F, Req, K> KeyExtractor<Req> for F
where
    F: Fn(&Req) -> Option<K>,
    K: Clone + Eq + Hash + Send + Sync + fmt::Debug + 'static,
{
    type Key = K;

    #[inline]
    fn extract(&self, req: &Req) -> Option<K> {
        self(req)
    }
}
