//! Keys for per-client state: which rate-limit bucket, keyed breaker or bulkhead partition a
//! request belongs to.
//!
//! A [`KeyExtractor`] reads a request and returns its key, or `None` when the request has none;
//! what a keyed layer then does is its [`MissingKey`] setting. Ready-made extractors read the
//! peer address ([`PeerIp`], honouring `X-Forwarded-For` / `Forwarded` only from trusted proxies,
//! named by address or network), a header ([`Header`]), an API key or bearer token ([`ApiKey`]),
//! axum's matched route (`Route`, with the `axum` feature), or the method and route
//! ([`MethodPath`]). Any `Fn(&Req) -> Option<K>` closure is an extractor too, and
//! [`KeyExtractorExt`] combines two of them ([`Pair`], [`Or`]).
//!
//! Extracting a key never allocates: keys are `Copy` values or clones of reference-counted bytes
//! the request already holds. Because such a clone keeps the request's buffer alive, a layer that
//! stores a key for longer than the request calls [`KeyExtractor::detach`] first.

mod api_key;
mod cidr;
pub(crate) mod extractor;
mod peer;
mod route;
mod stable;

use std::hash::Hash;

use crate::KeyExtractor;

pub use self::api_key::{ApiKey, ApiKeyToken, DEFAULT_MAX_KEY_LEN, DIGESTED_KEY_LEN, Header};
#[cfg(feature = "serde")]
pub(crate) use self::api_key::{listed_token, listed_value};
pub use self::cidr::{Cidr, CidrError};
#[cfg(feature = "serde")]
pub(crate) use self::peer::Walk;
pub use self::peer::{ForwardedHeader, PeerIp};
#[cfg(feature = "axum")]
pub use self::route::Route;
pub use self::route::{Authority, MethodPath, RouteKey};
pub use self::stable::StableKey;

/// What a keyed layer does with a request whose extractor returns no key.
///
/// Every keyed layer (a keyed rate limiter, a keyed breaker, a partitioned bulkhead) takes this
/// setting and applies it through [`MissingKey::resolve`], so the behaviour is the same across
/// weir.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum MissingKey {
    /// The request skips the keyed check and goes to the inner service as if the layer were not
    /// there. Only safe when a client cannot drop its key to escape its limit (an unparseable
    /// `X-Forwarded-For`, a missing API key).
    Bypass,
    /// Every key-less request shares one state, as if they all had the same key (the default):
    /// clients without a key are limited together, and cannot escape the layer.
    #[default]
    Shared,
    /// The layer refuses the request with its own rejection error (documented by each layer),
    /// without calling the inner service.
    Reject,
}

impl MissingKey {
    /// What to do with a request whose extracted key is `key`.
    ///
    /// ```
    /// use weir_core::key::{MissingKey, Resolved};
    ///
    /// assert_eq!(MissingKey::Reject.resolve(Some("acme")), Resolved::Key("acme"));
    /// assert_eq!(MissingKey::Reject.resolve(None::<&str>), Resolved::Reject);
    /// assert_eq!(MissingKey::default().resolve(None::<&str>), Resolved::Shared);
    /// ```
    #[must_use]
    #[inline]
    pub fn resolve<K>(self, key: Option<K>) -> Resolved<K> {
        match (key, self) {
            (Some(key), _) => Resolved::Key(key),
            (None, Self::Shared) => Resolved::Shared,
            (None, Self::Bypass) => Resolved::Bypass,
            (None, Self::Reject) => Resolved::Reject,
        }
    }
}

/// What a keyed layer does with one request, from [`MissingKey::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolved<K> {
    /// Check the request against the state kept under this key.
    Key(K),
    /// The request has no key: check it against the one state shared by every key-less request.
    Shared,
    /// The request has no key: let it through unchecked.
    Bypass,
    /// The request has no key: refuse it.
    Reject,
}

/// One key, `()`, for every request: a single state shared by all clients.
///
/// Works on any request type, not only HTTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Global;

impl<Req> KeyExtractor<Req> for Global {
    type Key = ();

    #[inline]
    fn extract(&self, _req: &Req) -> Option<()> {
        Some(())
    }

    #[inline]
    fn is_global(&self) -> bool {
        true
    }
}

/// Two extractors' keys together: missing if either is missing. Key: `(A::Key, B::Key)`.
///
/// Built with [`KeyExtractorExt::and`]: `PeerIp::new().and(MethodPath)` keys each client on
/// each route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pair<A, B> {
    first: A,
    second: B,
}

impl<A, B> Pair<A, B> {
    /// Keys on `first`'s key and `second`'s together.
    #[must_use]
    pub const fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<Req, A, B> KeyExtractor<Req> for Pair<A, B>
where
    A: KeyExtractor<Req>,
    B: KeyExtractor<Req>,
{
    type Key = (A::Key, B::Key);

    #[inline]
    fn extract(&self, req: &Req) -> Option<Self::Key> {
        let first = self.first.extract(req)?;
        Some((first, self.second.extract(req)?))
    }

    fn detach(&self, (first, second): Self::Key) -> Self::Key {
        (self.first.detach(first), self.second.detach(second))
    }

    #[inline]
    fn is_global(&self) -> bool {
        self.first.is_global() && self.second.is_global()
    }
}

/// The first extractor's key, else the second's. Key: [`OrKey`].
///
/// Built with [`KeyExtractorExt::or`]: `ApiKey::new().or(PeerIp::new())` keys clients with an
/// API key by their key and the others by address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Or<A, B> {
    first: A,
    second: B,
}

impl<A, B> Or<A, B> {
    /// Keys on `first`'s key, or on `second`'s when `first` has none.
    #[must_use]
    pub const fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

/// The key of an [`Or`]: which extractor produced it, and its key. Equal keys from different
/// extractors are different keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrKey<A, B> {
    /// The first extractor's key.
    Left(A),
    /// The second extractor's key (the first had none).
    Right(B),
}

impl<Req, A, B> KeyExtractor<Req> for Or<A, B>
where
    A: KeyExtractor<Req>,
    B: KeyExtractor<Req>,
{
    type Key = OrKey<A::Key, B::Key>;

    #[inline]
    fn extract(&self, req: &Req) -> Option<Self::Key> {
        match self.first.extract(req) {
            Some(key) => Some(OrKey::Left(key)),
            None => self.second.extract(req).map(OrKey::Right),
        }
    }

    fn detach(&self, key: Self::Key) -> Self::Key {
        match key {
            OrKey::Left(key) => OrKey::Left(self.first.detach(key)),
            OrKey::Right(key) => OrKey::Right(self.second.detach(key)),
        }
    }

    /// A global first extractor always has a key: the second is never asked.
    #[inline]
    fn is_global(&self) -> bool {
        self.first.is_global()
    }
}

/// Combinators for key extractors: `.and(b)` ([`Pair`]) and `.or(b)` ([`Or`]).
///
/// Implemented for every type, because an extractor may serve many request types (every
/// [`Request<B>`](http::Request)) and `.and` could not infer which one is meant; the result is an extractor
/// for the requests both halves extract from.
///
/// ```
/// use std::net::SocketAddr;
/// use http::{HeaderName, Method, Request};
/// use weir_core::KeyExtractor;
/// use weir_core::key::{Header, KeyExtractorExt, MethodPath, OrKey, PeerIp};
///
/// let mut req = Request::post("/orders").body(()).unwrap();
/// req.extensions_mut().insert("203.0.113.7:4000".parse::<SocketAddr>().unwrap());
///
/// let (ip, (method, route)) = PeerIp::new().and(MethodPath).extract(&req).unwrap();
/// assert_eq!((ip.to_string(), method, route.as_str()), ("203.0.113.7".into(), Method::POST, "/orders"));
///
/// let tenant_or_ip = Header::new(HeaderName::from_static("x-tenant")).or(PeerIp::new());
/// assert!(matches!(tenant_or_ip.extract(&req), Some(OrKey::Right(_))));
/// ```
pub trait KeyExtractorExt: Sized {
    /// Keys on this extractor's key and `other`'s together; missing if either is missing.
    #[must_use]
    fn and<B>(self, other: B) -> Pair<Self, B> {
        Pair::new(self, other)
    }

    /// Keys on this extractor's key, or `other`'s when this one has none.
    #[must_use]
    fn or<B>(self, other: B) -> Or<Self, B> {
        Or::new(self, other)
    }
}

impl<T> KeyExtractorExt for T {}

#[cfg(test)]
mod test_util {
    use std::net::{IpAddr, SocketAddr};

    use http::Request;
    use http::header::{HeaderName, HeaderValue};

    pub(super) fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    /// A request from `peer` (if any) with the given header lines, in order.
    pub(super) fn request(peer: Option<&str>, headers: &[(&'static str, &str)]) -> Request<()> {
        let mut req = Request::new(());
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().expect("test socket address");
            req.extensions_mut().insert(addr);
        }
        for &(name, value) in headers {
            let value = HeaderValue::from_str(value).expect("test header value");
            req.headers_mut()
                .append(HeaderName::from_static(name), value);
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{ip, request};
    use std::fmt;

    use super::*;
    use http::{HeaderName, HeaderValue, Request};

    #[test]
    fn pair_needs_both_keys() {
        let tenant = Header::new(HeaderName::from_static("x-tenant"));
        let pair = PeerIp::new().and(tenant);
        let both = request(Some("203.0.113.7:1"), &[("x-tenant", "acme")]);
        assert_eq!(
            pair.extract(&both),
            Some((ip("203.0.113.7"), HeaderValue::from_static("acme")))
        );
        assert_eq!(pair.extract(&request(None, &[("x-tenant", "acme")])), None);
        assert_eq!(pair.extract(&request(Some("203.0.113.7:1"), &[])), None);
    }

    #[test]
    fn or_falls_back_and_keeps_the_sources_apart() {
        let a = Header::new(HeaderName::from_static("x-a"));
        let b = Header::new(HeaderName::from_static("x-b"));
        let either = a.or(b);
        let value = HeaderValue::from_static("same");
        let from_a = request(None, &[("x-a", "same"), ("x-b", "other")]);
        let from_b = request(None, &[("x-b", "same")]);
        assert_eq!(either.extract(&from_a), Some(OrKey::Left(value.clone())));
        assert_eq!(either.extract(&from_b), Some(OrKey::Right(value)));
        assert_ne!(either.extract(&from_a), either.extract(&from_b));
        assert_eq!(either.extract(&request(None, &[])), None);
    }

    #[test]
    fn only_extractors_giving_every_request_one_key_are_global() {
        fn global<X: KeyExtractor<Request<()>>>(x: &X) -> bool {
            x.is_global()
        }
        let tenant = || Header::new(HeaderName::from_static("x-tenant"));
        assert!(global(&Global));
        assert!(!global(&tenant()));
        assert!(!global(&|_: &Request<()>| Some(1u8)));
        // A global first extractor always answers; a global second one is a fallback only.
        assert!(global(&Global.or(tenant())));
        assert!(!global(&tenant().or(Global)));
        assert!(global(&Pair::new(Global, Global)));
        assert!(!global(&Pair::new(Global, tenant())));
    }

    #[test]
    fn closures_are_extractors_and_combine() {
        let shard = |req: &Request<()>| req.uri().path().len().checked_rem(4);
        let req = request(Some("203.0.113.7:1"), &[]);
        assert_eq!(shard.extract(&req), Some(1)); // "/" has length 1
        assert_eq!(
            shard.and(PeerIp::new()).extract(&req),
            Some((1, ip("203.0.113.7")))
        );
        assert_eq!(Global.extract(&req), Some(()));
        assert_eq!(Global.extract(&"any request type"), Some(()));
    }

    #[test]
    fn missing_key_resolution() {
        assert_eq!(MissingKey::default(), MissingKey::Shared);
        assert_eq!(MissingKey::Bypass.resolve(Some(7)), Resolved::Key(7));
        assert_eq!(MissingKey::Shared.resolve(None::<u8>), Resolved::Shared);
        assert_eq!(MissingKey::Bypass.resolve(None::<u8>), Resolved::Bypass);
        assert_eq!(MissingKey::Reject.resolve(None::<u8>), Resolved::Reject);
    }

    #[test]
    fn extractors_are_clone_debug_send_sync() {
        fn extractor<E: Clone + fmt::Debug + Send + Sync + KeyExtractor<Request<()>>>(_: &E) {}
        extractor(&Global);
        extractor(&PeerIp::new());
        extractor(&Header::new(HeaderName::from_static("x-a")));
        extractor(&ApiKey::new());
        extractor(&MethodPath);
        #[cfg(feature = "axum")]
        extractor(&Route);
        extractor(&PeerIp::new().and(MethodPath));
        extractor(&ApiKey::new().or(PeerIp::new()));
    }
}
