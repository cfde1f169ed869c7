//! Keys for per-client state: which rate-limit bucket, keyed breaker or bulkhead partition a
//! request belongs to.
//!
//! A [`KeyExtractor`] reads a request and returns its key, or `None` when the request has none;
//! what a keyed layer then does is its [`MissingKey`] setting. Ready-made extractors read the
//! peer address ([`PeerIp`], honouring `X-Forwarded-For` / `Forwarded` only through a configured
//! number of trusted proxies), a header ([`Header`]), an API key or bearer token ([`ApiKey`]),
//! axum's matched route (`Route`, with the `axum` feature), or the method and route
//! ([`MethodPath`]). Any `Fn(&Req) -> Option<K>` closure is an extractor too, and
//! [`KeyExtractorExt`] combines two of them ([`Pair`], [`Or`]).
//!
//! Extracting a key never allocates: keys are `Copy` values or clones of reference-counted bytes
//! the request already holds. Because such a clone keeps the request's buffer alive, a layer that
//! stores a key for longer than the request calls [`KeyExtractor::detach`] first.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use http::header::{AUTHORIZATION, FORWARDED, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Extensions, Method, Request};

/// Extracts the key that per-client state (a rate-limit bucket, a keyed breaker, a bulkhead
/// partition) is kept under.
///
/// Ready-made extractors cover the usual keys ([`PeerIp`], [`Header`], [`ApiKey`], `Route`,
/// [`MethodPath`], [`Global`]); any `Fn(&Req) -> Option<K>` closure is an extractor too, and
/// [`KeyExtractorExt`] combines two of them.
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

    /// The key of this request, or `None` when the request has none (see [`MissingKey`]).
    fn extract(&self, req: &Req) -> Option<Self::Key>;

    /// Prepares a key to be stored beyond the request, for example as a new entry of a keyed
    /// layer's state map.
    ///
    /// A key cloned out of a request may share that request's buffer: a [`HeaderValue`] that
    /// hyper parsed is a slice of the connection's read buffer, and holding it keeps the whole
    /// buffer (kilobytes) alive. `detach` copies such a key into an allocation of its own, so
    /// keyed layers call it once, when they first store a key, never on the lookup path. The
    /// default returns the key unchanged, which is right for keys that borrow nothing (an
    /// `IpAddr`, `()`, an `Arc<str>`).
    #[inline]
    fn detach(&self, key: Self::Key) -> Self::Key {
        key
    }

    /// Whether every request gets the same key, as with [`Global`]: a keyed layer may then keep
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
    /// use weir_core::{MissingKey, Resolved};
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

/// The header [`PeerIp`] reads the forwarding chain from when it trusts proxies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default): each entry an IPv4 or IPv6
    /// address, optionally with a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`: the `for=`
    /// parameter of each element (case-insensitive, quoted or not). An element without `for=`
    /// still counts as a hop.
    Forwarded,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => X_FORWARDED_FOR,
            Self::Forwarded => FORWARDED,
        }
    }

    /// The address one hop of the chain names, if it names a parseable one.
    fn parse_hop(self, entry: &[u8]) -> Option<IpAddr> {
        match self {
            Self::XForwardedFor => parse_node(entry),
            Self::Forwarded => parse_node(forwarded_for(entry)?),
        }
    }
}

/// The client's IP address: the peer of the connection, or the address a trusted reverse proxy
/// recorded in `X-Forwarded-For` / `Forwarded`. Key: [`IpAddr`].
///
/// The peer address comes from a [`SocketAddr`] request extension (what a hyper server inserts
/// per connection) or, with the `axum` feature, from axum's `ConnectInfo<SocketAddr>` (serve
/// with `into_make_service_with_connect_info::<SocketAddr>()`). IPv4-mapped IPv6 addresses
/// (`::ffff:203.0.113.7`, what a dual-stack socket reports for an IPv4 client) become IPv4, so
/// one client is one key.
///
/// # Trusted proxies
///
/// [`PeerIp::new()`] trusts no proxy and ignores forwarding headers completely: anyone can write
/// them. Behind `n` reverse proxies that each append the address they received the request from
/// to `X-Forwarded-For` (or to `Forwarded`, see [`forwarded_header`](Self::forwarded_header)),
/// use [`trusted_proxies(n)`](Self::trusted_proxies). Take the forwarded addresses in order (all
/// header lines joined, empty entries skipped), followed by the peer address: the client is the
/// `n`-th hop counted from the right (the peer is the 0-th). Entries further left were written
/// by the client and are never used, so a spoofed `X-Forwarded-For: 6.6.6.6` changes nothing.
/// When the chain is shorter than `n` (some proxies did not append), the leftmost hop is used:
/// every entry present was written by a trusted proxy.
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use http::Request;
/// use weir_core::{KeyExtractor, PeerIp};
///
/// // The client wrote the first entry; our load balancer (the peer) appended the second.
/// let mut req = Request::builder()
///     .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert("10.0.0.1:50000".parse::<SocketAddr>().unwrap());
///
/// let client = PeerIp::new().trusted_proxies(1).extract(&req);
/// assert_eq!(client, Some("203.0.113.7".parse::<IpAddr>().unwrap()));
/// assert_eq!(PeerIp::new().extract(&req), Some("10.0.0.1".parse().unwrap()));
/// ```
///
/// The count is only right if every request reaches this server through all `n` proxies: if
/// clients can bypass the outer ones, block that path (a firewall, a private network).
///
/// The key is missing (`None`) when the chosen hop cannot be parsed (garbage, `unknown`, an
/// obfuscated `_identifier`, a non-IP `Forwarded` node), when a `Forwarded` element has no
/// `for=`, and when the peer address is needed but the request carries none. It never falls
/// back to another hop. A request without a peer address (a Unix socket) is still read through
/// its forwarding header as if the peer were there.
///
/// Reading the chain allocates nothing and stops after `n + 1` hops, scanning from the right,
/// so its cost is bounded by `n` and the header size, whatever the client sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerIp {
    trusted_proxies: usize,
    header: ForwardedHeader,
}

impl PeerIp {
    /// The peer address of the connection; forwarding headers are ignored.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            trusted_proxies: 0,
            header: ForwardedHeader::XForwardedFor,
        }
    }

    /// There are `n` reverse proxies in front of this server, each appending to the forwarding
    /// header; `0` (the default) ignores the header.
    #[must_use]
    pub const fn trusted_proxies(mut self, n: usize) -> Self {
        self.trusted_proxies = n;
        self
    }

    /// Which header the trusted proxies append to: `X-Forwarded-For` (the default) or RFC 7239
    /// `Forwarded`.
    #[must_use]
    pub const fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The `trusted_proxies`-th hop from the right of `forwarded entries ++ [peer]`, clamped to
    /// the leftmost hop.
    fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if self.trusted_proxies == 0 {
            return peer;
        }
        // The peer is hop 0; walk the header lines and their entries from the right. Commas
        // split entries even inside quotes: only a client writes a quoted comma, and treating it
        // as a separator only adds hops on the client's (left) side, whereas honouring quotes
        // would let an unterminated quote swallow the entries our proxies appended after it.
        let mut position = 0;
        let mut leftmost = None;
        for line in headers.get_all(self.header.name()).iter().rev() {
            for entry in line.as_bytes().rsplit(|&b| b == b',') {
                let entry = entry.trim_ascii();
                if entry.is_empty() {
                    continue;
                }
                position += 1;
                if position == self.trusted_proxies {
                    return self.header.parse_hop(entry);
                }
                leftmost = Some(entry);
            }
        }
        match leftmost {
            Some(entry) => self.header.parse_hop(entry),
            None => peer,
        }
    }
}

impl<B> KeyExtractor<Request<B>> for PeerIp {
    type Key = IpAddr;

    fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = peer_addr(req.extensions()).map(|addr| addr.ip().to_canonical());
        self.client(peer, req.headers())
    }
}

/// The connection's peer address, from a `SocketAddr` or axum `ConnectInfo` extension.
fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    None
}

/// The value of the `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &[u8]) -> Option<&[u8]> {
    element.split(|&b| b == b';').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = pair.split_at(eq);
        name.trim_ascii()
            .eq_ignore_ascii_case(b"for")
            .then(|| value.get(1..).unwrap_or_default())
    })
}

/// The longest node worth parsing: `"[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"`.
const MAX_NODE_LEN: usize = 64;

/// An IP address from `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`, optionally double-quoted; IPv4-mapped IPv6 becomes IPv4.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    let mut node = node.trim_ascii();
    if let [b'"', inner @ .., b'"'] = node {
        node = inner;
    }
    if node.len() > MAX_NODE_LEN {
        return None;
    }
    let node = std::str::from_utf8(node).ok()?;
    let ip = if let Some(bracketed) = node.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = node.parse::<IpAddr>() {
        ip
    } else {
        let (v4, port) = node.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

/// A port number, or an RFC 7239 obfuscated port (`_abc`).
fn is_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        Some(obfuscated) => {
            !obfuscated.is_empty()
                && obfuscated
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => {
            (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok()
        }
    }
}

/// The value of one header. Key: [`HeaderValue`].
///
/// The first line counts when the header appears more than once. The key is missing when the
/// header is absent or empty (only whitespace). The key space is whatever clients send: keep
/// keyed state bounded (every weir keyed layer does) and prefer a header your own gateway sets.
///
/// ```
/// use http::{HeaderName, Request};
/// use weir_core::{Header, KeyExtractor};
///
/// let tenant = Header::new(HeaderName::from_static("x-tenant"));
/// let req = Request::builder().header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(tenant.extract(&req).unwrap(), "acme");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    name: HeaderName,
}

impl Header {
    /// Keys requests by the value of the header `name`.
    #[must_use]
    pub const fn new(name: HeaderName) -> Self {
        Self { name }
    }

    /// The header read.
    #[must_use]
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

impl<B> KeyExtractor<Request<B>> for Header {
    type Key = HeaderValue;

    fn extract(&self, req: &Request<B>) -> Option<HeaderValue> {
        req.headers()
            .get(&self.name)
            .filter(|value| !value.as_bytes().trim_ascii().is_empty())
            .cloned()
    }

    fn detach(&self, key: HeaderValue) -> HeaderValue {
        copy_header_value(&key, key.as_bytes()).unwrap_or(key)
    }
}

/// `bytes` (part of `value`) in a buffer of their own, as sensitive as `value`.
fn copy_header_value(value: &HeaderValue, bytes: &[u8]) -> Option<HeaderValue> {
    let mut copy = HeaderValue::from_bytes(bytes).ok()?;
    copy.set_sensitive(value.is_sensitive());
    Some(copy)
}

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The API key a client sends. Key: [`ApiKeyToken`].
///
/// [`ApiKey::new()`] reads the `x-api-key` header and, when it is absent or empty, the token of
/// `Authorization: Bearer <token>` (the scheme is case-insensitive, whitespace around the token
/// is ignored). [`ApiKey::bearer()`] reads only the bearer token,
/// [`header_name`](Self::header_name) changes the header, and
/// [`without_bearer`](Self::without_bearer) turns the bearer fallback off. The same key sent
/// either way is the same key.
///
/// The key space is whatever clients send: a limiter in front of authentication keys on
/// invented tokens too, so keep keyed state bounded (every weir keyed layer does) or key after
/// authentication.
///
/// ```
/// use http::Request;
/// use weir_core::{ApiKey, KeyExtractor};
///
/// let by_key = ApiKey::new();
/// let header = Request::builder().header("x-api-key", "k-123").body(()).unwrap();
/// let bearer = Request::builder().header("authorization", "bearer k-123").body(()).unwrap();
/// assert_eq!(by_key.extract(&header).unwrap().as_bytes(), b"k-123");
/// assert_eq!(by_key.extract(&header), by_key.extract(&bearer));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    header: Option<HeaderName>,
    bearer: bool,
}

impl ApiKey {
    /// The `x-api-key` header, else the `Authorization: Bearer` token.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            header: Some(X_API_KEY),
            bearer: true,
        }
    }

    /// Only the `Authorization: Bearer` token.
    #[must_use]
    pub const fn bearer() -> Self {
        Self {
            header: None,
            bearer: true,
        }
    }

    /// Reads the API key from the header `name` instead of `x-api-key` (the bearer fallback, if
    /// on, still applies).
    #[must_use]
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Ignores `Authorization: Bearer`; only the API key header counts.
    #[must_use]
    pub fn without_bearer(mut self) -> Self {
        self.bearer = false;
        self
    }
}

impl Default for ApiKey {
    /// [`ApiKey::new()`].
    fn default() -> Self {
        Self::new()
    }
}

impl<B> KeyExtractor<Request<B>> for ApiKey {
    type Key = ApiKeyToken;

    fn extract(&self, req: &Request<B>) -> Option<ApiKeyToken> {
        let headers = req.headers();
        if let Some(value) = self.header.as_ref().and_then(|name| headers.get(name)) {
            let range = trimmed(value.as_bytes(), 0..value.len());
            if !range.is_empty() {
                return Some(ApiKeyToken::new(value.clone(), range));
            }
        }
        if !self.bearer {
            return None;
        }
        let value = headers.get(AUTHORIZATION)?;
        let range = bearer_token(value.as_bytes())?;
        Some(ApiKeyToken::new(value.clone(), range))
    }

    fn detach(&self, key: ApiKeyToken) -> ApiKeyToken {
        key.detached()
    }
}

/// `range` of `bytes` without its leading and trailing whitespace.
fn trimmed(bytes: &[u8], range: Range<usize>) -> Range<usize> {
    let slice = bytes.get(range.clone()).unwrap_or_default();
    let lead = slice.len() - slice.trim_ascii_start().len();
    let trail = slice.len() - slice.trim_ascii_end().len();
    if lead == slice.len() {
        return range.start..range.start;
    }
    range.start + lead..range.end - trail
}

/// Where the token of `Bearer <token>` lies in `value`.
fn bearer_token(value: &[u8]) -> Option<Range<usize>> {
    let all = trimmed(value, 0..value.len());
    let rest = value.get(all.clone())?;
    let space = rest.iter().position(|&b| b == b' ' || b == b'\t')?;
    if !rest[..space].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = trimmed(value, all.start + space..all.end);
    (!token.is_empty()).then_some(token)
}

/// An API key or bearer token, the key of [`ApiKey`].
///
/// It shares the request's header bytes (a clone is a reference-count increment) and compares
/// and hashes as the token alone, so `x-api-key: k` and `Authorization: Bearer k` are one key.
/// `Debug` shows only the token's length: the token is a credential and keys end up in logs;
/// read it with [`as_bytes`](Self::as_bytes) when you mean to.
#[derive(Clone)]
pub struct ApiKeyToken {
    value: HeaderValue,
    token: Range<usize>,
}

impl ApiKeyToken {
    fn new(value: HeaderValue, token: Range<usize>) -> Self {
        Self { value, token }
    }

    /// The token's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.value
            .as_bytes()
            .get(self.token.clone())
            .unwrap_or_default()
    }

    /// The token as text, or `None` when it is not UTF-8.
    #[must_use]
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The same token in a buffer of its own (see [`KeyExtractor::detach`]).
    fn detached(self) -> Self {
        match copy_header_value(&self.value, self.as_bytes()) {
            Some(value) => {
                let token = 0..value.len();
                Self { value, token }
            }
            None => self,
        }
    }
}

impl From<HeaderValue> for ApiKeyToken {
    /// The whole value, without surrounding whitespace, as a token: to name a key, for example
    /// when asking a keyed layer's handle about one client.
    fn from(value: HeaderValue) -> Self {
        let token = trimmed(value.as_bytes(), 0..value.len());
        Self::new(value, token)
    }
}

impl PartialEq for ApiKeyToken {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ApiKeyToken {}

impl Hash for ApiKeyToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("len", &self.as_bytes().len())
            .finish_non_exhaustive()
    }
}

/// A route: axum's matched route template (`/users/{id}`), or the request's raw path. The key
/// of `Route` and part of [`MethodPath`]'s.
///
/// Compares and hashes as its text ([`as_str`](Self::as_str)); a raw path excludes the query.
/// A clone is a reference-count increment.
#[derive(Clone)]
pub struct RouteKey(RouteRepr);

#[derive(Clone)]
enum RouteRepr {
    Static(&'static str),
    /// The request's path and query; the key is the path.
    Raw(PathAndQuery),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
}

impl RouteKey {
    /// A route named by a string literal: to name a key, for example when asking a keyed
    /// layer's handle about one route (`RouteKey::from_static("/users/{id}")` equals the key of
    /// every request axum matched to that route).
    #[must_use]
    pub const fn from_static(route: &'static str) -> Self {
        Self(RouteRepr::Static(route))
    }

    /// The route template or path.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            RouteRepr::Static(route) => route,
            RouteRepr::Raw(path) => path.path(),
            #[cfg(feature = "axum")]
            RouteRepr::Matched(matched) => matched.as_str(),
        }
    }

    /// The route of `req`: axum's matched route when there is one, else the raw path.
    fn of<B>(req: &Request<B>) -> Self {
        #[cfg(feature = "axum")]
        if let Some(matched) = req.extensions().get::<axum::extract::MatchedPath>() {
            return Self(RouteRepr::Matched(matched.clone()));
        }
        match req.uri().path_and_query() {
            Some(path) => Self(RouteRepr::Raw(path.clone())),
            None => Self::from_static(""),
        }
    }

    /// The same route in a buffer of its own (see [`KeyExtractor::detach`]).
    fn detached(self) -> Self {
        match &self.0 {
            RouteRepr::Raw(path) => match PathAndQuery::try_from(path.path()) {
                Ok(path) => Self(RouteRepr::Raw(path)),
                Err(_) => self,
            },
            _ => self,
        }
    }
}

impl PartialEq for RouteKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteKey {}

impl Hash for RouteKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RouteKey").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// axum's matched route template, such as `/users/{id}`. Key: [`RouteKey`].
///
/// axum records the matched route before it calls the route's service, so the key is there in
/// handlers and in layers added with `Router::layer` or `Router::route_layer`; it is missing in
/// a layer wrapped around the whole router (before routing) and for requests no route matched.
/// Every request to `/users/1`, `/users/2`, ... has the one key `/users/{id}`.
#[cfg(feature = "axum")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Route;

#[cfg(feature = "axum")]
impl<B> KeyExtractor<Request<B>> for Route {
    type Key = RouteKey;

    fn extract(&self, req: &Request<B>) -> Option<RouteKey> {
        let matched = req.extensions().get::<axum::extract::MatchedPath>()?;
        Some(RouteKey(RouteRepr::Matched(matched.clone())))
    }
}

/// The request's method and route. Key: `(Method, RouteKey)`; never missing.
///
/// The route is axum's matched route template when there is one (with the `axum` feature, see
/// `Route`) and the raw URI path otherwise (the query is not part of the key). A raw path makes
/// the key space as large as the URL space, chosen by clients: every weir keyed layer bounds its
/// state and evicts idle keys, but prefer route templates where you have them.
///
/// A clone of a standard method is free; an extension method longer than 15 bytes is copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MethodPath;

impl<B> KeyExtractor<Request<B>> for MethodPath {
    type Key = (Method, RouteKey);

    fn extract(&self, req: &Request<B>) -> Option<(Method, RouteKey)> {
        Some((req.method().clone(), RouteKey::of(req)))
    }

    fn detach(&self, (method, route): (Method, RouteKey)) -> (Method, RouteKey) {
        (method, route.detached())
    }
}

/// The authority (`host[:port]`) a request is sent to, for client-side keyed layers: one
/// circuit breaker or bulkhead per upstream. Key: [`http::uri::Authority`].
///
/// Read from the request URI (absolute-form, as hyper's and tonic's clients send it), else from
/// the `Host` header; missing when neither parses. From the URI the key shares the request's
/// bytes (no allocation); from `Host` it is a small copy.
///
/// ```
/// use http::Request;
/// use weir_core::{Authority, KeyExtractor};
///
/// let req = Request::get("http://inventory:8080/items/7").body(()).unwrap();
/// assert_eq!(Authority.extract(&req).unwrap(), "inventory:8080");
/// let req = Request::get("/items/7").header("host", "inventory").body(()).unwrap();
/// assert_eq!(Authority.extract(&req).unwrap(), "inventory");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Authority;

impl<B> KeyExtractor<Request<B>> for Authority {
    type Key = http::uri::Authority;

    fn extract(&self, req: &Request<B>) -> Option<http::uri::Authority> {
        if let Some(authority) = req.uri().authority() {
            return Some(authority.clone());
        }
        let host = req.headers().get(http::header::HOST)?;
        http::uri::Authority::try_from(host.as_bytes()).ok()
    }

    fn detach(&self, key: http::uri::Authority) -> http::uri::Authority {
        http::uri::Authority::try_from(key.as_str().as_bytes()).unwrap_or(key)
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
/// [`Request<B>`]) and `.and` could not infer which one is meant; the result is an extractor
/// for the requests both halves extract from.
///
/// ```
/// use std::net::SocketAddr;
/// use http::{HeaderName, Method, Request};
/// use weir_core::{Header, KeyExtractor, KeyExtractorExt, MethodPath, OrKey, PeerIp};
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
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    /// A request from `peer` (if any) with the given header lines, in order.
    fn request(peer: Option<&str>, headers: &[(&'static str, &str)]) -> Request<()> {
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

    fn xff(n: usize) -> PeerIp {
        PeerIp::new().trusted_proxies(n)
    }

    fn fwd(n: usize) -> PeerIp {
        PeerIp::new()
            .trusted_proxies(n)
            .forwarded_header(ForwardedHeader::Forwarded)
    }

    #[test]
    fn one_trusted_proxy_keys_on_the_entry_it_appended_not_the_spoofed_one() {
        let req = request(
            Some("10.0.0.1:50000"),
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")],
        );
        let key = xff(1).extract(&req);
        assert_eq!(key, Some(ip("203.0.113.7")));
        assert_ne!(key, Some(ip("6.6.6.6")));
    }

    #[test]
    fn no_trusted_proxy_ignores_forwarding_headers() {
        let req = request(
            Some("198.51.100.9:443"),
            &[
                ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
                ("forwarded", "for=6.6.6.6"),
            ],
        );
        assert_eq!(PeerIp::new().extract(&req), Some(ip("198.51.100.9")));
        assert_eq!(fwd(0).extract(&req), Some(ip("198.51.100.9")));
    }

    #[test]
    fn two_trusted_proxies_skip_both_appended_entries() {
        // Client 203.0.113.7 -> CDN (appends the client) -> LB 10.0.0.1 (appends the CDN) -> us.
        let req = request(
            Some("10.0.0.1:50000"),
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 172.16.0.5")],
        );
        assert_eq!(xff(2).extract(&req), Some(ip("203.0.113.7")));
        assert_eq!(xff(1).extract(&req), Some(ip("172.16.0.5")));
        assert_eq!(xff(3).extract(&req), Some(ip("6.6.6.6")));
    }

    #[test]
    fn a_chain_shorter_than_the_trust_count_uses_its_leftmost_hop() {
        let req = request(
            Some("10.0.0.1:50000"),
            &[("x-forwarded-for", "203.0.113.7, 172.16.0.5")],
        );
        assert_eq!(xff(3).extract(&req), Some(ip("203.0.113.7")));
        assert_eq!(xff(10).extract(&req), Some(ip("203.0.113.7")));
        let direct = request(Some("10.0.0.1:50000"), &[]);
        assert_eq!(xff(2).extract(&direct), Some(ip("10.0.0.1")));
    }

    #[test]
    fn header_lines_are_joined_in_order_and_empty_entries_skipped() {
        let req = request(
            Some("10.0.0.1:50000"),
            &[
                ("x-forwarded-for", "6.6.6.6, 1.1.1.1"),
                ("x-forwarded-for", " ,203.0.113.7,, "),
                ("x-forwarded-for", "172.16.0.5"),
            ],
        );
        assert_eq!(xff(1).extract(&req), Some(ip("172.16.0.5")));
        assert_eq!(xff(2).extract(&req), Some(ip("203.0.113.7")));
        assert_eq!(xff(3).extract(&req), Some(ip("1.1.1.1")));
        assert_eq!(xff(4).extract(&req), Some(ip("6.6.6.6")));
    }

    #[test]
    fn x_forwarded_for_entries_with_ports_and_ipv6() {
        let cases = [
            ("203.0.113.7:51234", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("\"203.0.113.7\"", "203.0.113.7"),
        ];
        for (entry, expected) in cases {
            let header = format!("6.6.6.6, {entry}");
            let req = request(Some("10.0.0.1:1"), &[("x-forwarded-for", &header)]);
            assert_eq!(xff(1).extract(&req), Some(ip(expected)), "entry {entry}");
        }
    }

    #[test]
    fn forwarded_reads_for_in_any_case_quoted_ipv6_with_port() {
        let req = request(
            Some("10.0.0.1:1"),
            &[(
                "forwarded",
                "for=6.6.6.6;proto=http, proto=https;For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
            )],
        );
        assert_eq!(fwd(1).extract(&req), Some(ip("2001:db8:cafe::17")));
        assert_eq!(fwd(2).extract(&req), Some(ip("6.6.6.6")));

        let cases = [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("FOR = 198.51.100.17", "198.51.100.17"),
            ("for=\"203.0.113.7:8080\"", "203.0.113.7"),
            ("for=203.0.113.7:_hidden", "203.0.113.7"),
            ("for=\"[2001:db8::1]\"", "2001:db8::1"),
        ];
        for (element, expected) in cases {
            let header = format!("for=6.6.6.6, {element}");
            let req = request(Some("10.0.0.1:1"), &[("forwarded", &header)]);
            assert_eq!(
                fwd(1).extract(&req),
                Some(ip(expected)),
                "element {element}"
            );
        }
    }

    #[test]
    fn forwarded_unknown_obfuscated_or_missing_for_is_a_missing_key() {
        for element in [
            "for=unknown",
            "for=\"_hidden\"",
            "for=_SEVKISEK",
            "proto=https;by=10.0.0.1",
            "for=",
        ] {
            let header = format!("for=203.0.113.7, {element}");
            let req = request(Some("10.0.0.1:1"), &[("forwarded", &header)]);
            assert_eq!(fwd(1).extract(&req), None, "element {element}");
        }
    }

    #[test]
    fn each_mode_reads_only_its_own_header() {
        let req = request(
            Some("10.0.0.1:1"),
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("forwarded", "for=198.51.100.17"),
            ],
        );
        assert_eq!(xff(1).extract(&req), Some(ip("203.0.113.7")));
        assert_eq!(fwd(1).extract(&req), Some(ip("198.51.100.17")));
    }

    #[test]
    fn an_unparseable_chosen_hop_is_a_missing_key_never_another_hop() {
        for entry in [
            "not-an-ip",
            "203.0.113.7:99999",
            "203.0.113.7:",
            "[2001:db8::1",
            "[2001:db8::1]443",
            "1.2.3.4.5",
            "unknown",
            "[203.0.113.7]",
            "fe80::1%eth0",
        ] {
            let header = format!("6.6.6.6, {entry}");
            let req = request(Some("10.0.0.1:1"), &[("x-forwarded-for", &header)]);
            assert_eq!(xff(1).extract(&req), None, "entry {entry}");
        }
        let mut req = request(Some("10.0.0.1:1"), &[]);
        let not_utf8 = HeaderValue::from_bytes(b"6.6.6.6, \xff\xfe").expect("obs-text is valid");
        req.headers_mut().insert(X_FORWARDED_FOR, not_utf8);
        assert_eq!(xff(1).extract(&req), None);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_one_key_with_ipv4() {
        let v4 = Some(ip("203.0.113.7"));
        let mapped_peer = request(Some("[::ffff:203.0.113.7]:443"), &[]);
        assert_eq!(PeerIp::new().extract(&mapped_peer), v4);
        let mapped_xff = request(
            Some("10.0.0.1:1"),
            &[("x-forwarded-for", "::ffff:203.0.113.7")],
        );
        assert_eq!(xff(1).extract(&mapped_xff), v4);
        let mapped_fwd = request(
            Some("10.0.0.1:1"),
            &[("forwarded", "for=\"[::ffff:203.0.113.7]:80\"")],
        );
        assert_eq!(fwd(1).extract(&mapped_fwd), v4);
        // A real IPv6 client stays IPv6.
        let v6 = request(Some("[2001:db8::7]:443"), &[]);
        assert_eq!(PeerIp::new().extract(&v6), Some(ip("2001:db8::7")));
    }

    #[test]
    fn without_a_peer_address_the_header_is_read_at_the_same_position() {
        let none = request(None, &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(PeerIp::new().extract(&none), None);
        assert_eq!(xff(1).extract(&none), Some(ip("203.0.113.7")));
        assert_eq!(xff(1).extract(&request(None, &[])), None);
    }

    #[cfg(feature = "axum")]
    #[test]
    fn peer_from_axum_connect_info() {
        let mut req = Request::new(());
        let addr: SocketAddr = "203.0.113.7:4000".parse().expect("address");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        assert_eq!(PeerIp::new().extract(&req), Some(ip("203.0.113.7")));
    }

    #[test]
    fn header_present_absent_empty() {
        let tenant = Header::new(HeaderName::from_static("x-tenant"));
        let req = request(None, &[("x-tenant", "acme"), ("x-tenant", "other")]);
        assert_eq!(tenant.extract(&req), Some(HeaderValue::from_static("acme")));
        assert_eq!(tenant.extract(&request(None, &[])), None);
        assert_eq!(tenant.extract(&request(None, &[("x-tenant", "")])), None);
        assert_eq!(tenant.extract(&request(None, &[("x-tenant", "  ")])), None);
        assert_eq!(tenant.name(), "x-tenant");
    }

    #[test]
    fn api_key_header_then_bearer_fallback() {
        let api_key = ApiKey::new();
        let token = |req: &Request<()>| api_key.extract(req).map(|key| key.as_bytes().to_vec());

        let header = request(None, &[("x-api-key", " k-123 ")]);
        assert_eq!(token(&header), Some(b"k-123".to_vec()));
        let bearer = request(None, &[("authorization", "Bearer k-123")]);
        assert_eq!(token(&bearer), Some(b"k-123".to_vec()));
        assert_eq!(api_key.extract(&header), api_key.extract(&bearer));
        // The header wins over the bearer token; an empty header falls back.
        let both = request(
            None,
            &[("x-api-key", "k-1"), ("authorization", "Bearer k-2")],
        );
        assert_eq!(token(&both), Some(b"k-1".to_vec()));
        let empty = request(None, &[("x-api-key", ""), ("authorization", "Bearer k-2")]);
        assert_eq!(token(&empty), Some(b"k-2".to_vec()));
        assert_eq!(token(&request(None, &[])), None);
    }

    #[test]
    fn bearer_scheme_case_and_whitespace_do_not_change_the_key() {
        let bearer = ApiKey::bearer();
        let key = |value: &str| bearer.extract(&request(None, &[("authorization", value)]));
        let expected = key("Bearer abc.def");
        assert_eq!(
            expected.as_ref().map(ApiKeyToken::to_str),
            Some(Some("abc.def"))
        );
        for value in ["bearer abc.def", "BEARER   abc.def  ", " Bearer\tabc.def"] {
            assert_eq!(key(value), expected, "value {value:?}");
        }
        for value in [
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
            "Bearer",
            "Bearer   ",
            "Bearerabc",
            "",
        ] {
            assert_eq!(key(value), None, "value {value:?}");
        }
    }

    #[test]
    fn api_key_sources_are_configurable() {
        let req = request(
            None,
            &[("x-api-key", "k-1"), ("authorization", "Bearer k-2")],
        );
        let bytes = |key: Option<ApiKeyToken>| key.map(|key| key.as_bytes().to_vec());
        assert_eq!(bytes(ApiKey::bearer().extract(&req)), Some(b"k-2".to_vec()));
        let header_only = ApiKey::new().without_bearer();
        let bearer_only = request(None, &[("authorization", "Bearer k-2")]);
        assert_eq!(bytes(header_only.extract(&bearer_only)), None);
        let custom = ApiKey::new().header_name(HeaderName::from_static("x-client-key"));
        let custom_req = request(None, &[("x-client-key", "k-3"), ("x-api-key", "k-1")]);
        assert_eq!(bytes(custom.extract(&custom_req)), Some(b"k-3".to_vec()));
    }

    #[test]
    fn api_key_token_debug_hides_the_secret() {
        let req = request(None, &[("authorization", "Bearer s3cr3t-token")]);
        let key = ApiKey::new().extract(&req).expect("a bearer token");
        let debug = format!("{key:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("12"), "{debug}");
    }

    #[test]
    fn detached_keys_equal_the_originals() {
        let req = request(
            None,
            &[("x-tenant", "acme"), ("authorization", "Bearer k-2")],
        );
        let tenant = Header::new(HeaderName::from_static("x-tenant"));
        let key = tenant.extract(&req).expect("tenant");
        assert_eq!(
            KeyExtractor::<Request<()>>::detach(&tenant, key.clone()),
            key
        );

        let api_key = ApiKey::new();
        let token = api_key.extract(&req).expect("token");
        let detached = KeyExtractor::<Request<()>>::detach(&api_key, token.clone());
        assert_eq!(detached, token);
        assert_eq!(detached.as_bytes(), b"k-2");
        assert_eq!(ApiKeyToken::from(HeaderValue::from_static(" k-2")), token);

        let with_query: Request<()> = Request::get("/a/b?x=1").body(()).expect("request");
        let key = MethodPath.extract(&with_query).expect("method and path");
        let detached = KeyExtractor::<Request<()>>::detach(&MethodPath, key.clone());
        assert_eq!(detached, key);
        assert_eq!(detached.1.as_str(), "/a/b");
    }

    #[test]
    fn method_path_uses_the_raw_path_without_query() {
        let get = |uri: &str| Request::get(uri).body(()).expect("request");
        let key = MethodPath.extract(&get("/users/7?page=1")).expect("key");
        assert_eq!(key, (Method::GET, RouteKey::from_static("/users/7")));
        assert_eq!(
            MethodPath.extract(&get("/users/7?page=2")),
            Some(key.clone())
        );
        assert_ne!(MethodPath.extract(&get("/users/8")), Some(key.clone()));
        let post = Request::post("/users/7").body(()).expect("request");
        assert_ne!(MethodPath.extract(&post), Some(key));
        assert_eq!(RouteKey::from_static("/x").to_string(), "/x");
    }

    #[cfg(feature = "axum")]
    mod axum_routes {
        use std::sync::{Arc, Mutex};

        use axum::Router;
        use axum::body::Body;
        use axum::extract::Request as AxumRequest;
        use axum::middleware::{self, Next};
        use axum::routing::get;
        use tower::ServiceExt;

        use super::*;

        type Seen = Arc<Mutex<Vec<(Option<RouteKey>, Option<(Method, RouteKey)>)>>>;

        fn keys(req: &AxumRequest) -> (Option<RouteKey>, Option<(Method, RouteKey)>) {
            (Route.extract(req), MethodPath.extract(req))
        }

        async fn call(app: Router, uri: &str) {
            let req = Request::get(uri).body(Body::empty()).expect("request");
            app.oneshot(req).await.expect("infallible");
        }

        #[tokio::test]
        async fn handler_sees_the_route_template() {
            let seen = Seen::default();
            let record = seen.clone();
            let app = Router::new().route(
                "/users/{id}",
                get(move |req: AxumRequest| {
                    record.lock().expect("lock").push(keys(&req));
                    async { "ok" }
                }),
            );
            call(app.clone(), "/users/1").await;
            call(app, "/users/2?x=y").await;

            let template = RouteKey::from_static("/users/{id}");
            let expected = (Some(template.clone()), Some((Method::GET, template)));
            assert_eq!(
                *seen.lock().expect("lock"),
                vec![expected.clone(), expected]
            );
        }

        #[tokio::test]
        async fn router_layer_sees_the_template_and_unmatched_requests_fall_back() {
            let seen = Seen::default();
            let record = seen.clone();
            let app = Router::new()
                .route("/orders/{id}", get(|| async { "ok" }))
                .layer(middleware::from_fn(move |req: AxumRequest, next: Next| {
                    record.lock().expect("lock").push(keys(&req));
                    next.run(req)
                }));
            call(app.clone(), "/orders/9").await;
            call(app, "/missing/9").await;

            let template = RouteKey::from_static("/orders/{id}");
            let raw = RouteKey::from_static("/missing/9");
            let seen = seen.lock().expect("lock");
            assert_eq!(
                *seen,
                vec![
                    (Some(template.clone()), Some((Method::GET, template))),
                    (None, Some((Method::GET, raw))),
                ]
            );
        }

        #[test]
        fn route_is_missing_without_axum_routing() {
            assert_eq!(
                Route.extract(&Request::get("/users/1").body(()).expect("req")),
                None
            );
        }
    }

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

    /// Bytes a header value may hold, biased towards the ones the parsers care about.
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        let fragment = prop_oneof![
            Just(b",".to_vec()),
            Just(b";".to_vec()),
            Just(b"\"".to_vec()),
            Just(b" ".to_vec()),
            Just(b"for=".to_vec()),
            Just(b"FoR =".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b":".to_vec()),
            Just(b"unknown".to_vec()),
            Just(b"_x".to_vec()),
            any::<u32>().prop_map(|v4| Ipv4Addr::from(v4).to_string().into_bytes()),
            any::<u128>().prop_map(|v6| Ipv6Addr::from(v6).to_string().into_bytes()),
            any::<u16>().prop_map(|port| port.to_string().into_bytes()),
            prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff].prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(fragment, 0..16).prop_map(|parts| parts.concat())
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|v4| IpAddr::V4(Ipv4Addr::from(v4))),
            any::<u128>().prop_map(|v6| IpAddr::V6(Ipv6Addr::from(v6))),
        ]
    }

    fn header_kind() -> impl Strategy<Value = ForwardedHeader> {
        prop_oneof![
            Just(ForwardedHeader::XForwardedFor),
            Just(ForwardedHeader::Forwarded)
        ]
    }

    fn request_with(peer: IpAddr, header: ForwardedHeader, lines: &[Vec<u8>]) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut().insert(SocketAddr::new(peer, 4000));
        for line in lines {
            let value = HeaderValue::from_bytes(line).expect("valid header bytes");
            req.headers_mut().append(header.name(), value);
        }
        req
    }

    /// How a proxy writes one hop, in one of the forms seen in the wild.
    fn render_hop(ip: IpAddr, header: ForwardedHeader, style: u8) -> String {
        let node = match (ip, style % 3) {
            (IpAddr::V4(v4), 0) => v4.to_string(),
            (IpAddr::V4(v4), 1) => format!("{v4}:4711"),
            (IpAddr::V4(v4), _) => format!("{}", v4.to_ipv6_mapped()),
            (IpAddr::V6(v6), 0) => v6.to_string(),
            (IpAddr::V6(v6), _) => format!("[{v6}]:4711"),
        };
        match header {
            ForwardedHeader::XForwardedFor => node,
            ForwardedHeader::Forwarded if style.is_multiple_of(2) => {
                format!("for=\"{node}\";proto=https")
            }
            ForwardedHeader::Forwarded => format!("proto=https;For=\"{node}\""),
        }
    }

    proptest! {
        /// Arbitrary bytes never panic, and the key is exactly the model's hop
        /// `hops[len - 1 - n]` (clamped to 0), so always one of the rightmost `n + 1` hops.
        #[test]
        fn peer_ip_picks_a_trusted_position_on_any_bytes(
            lines in proptest::collection::vec(header_bytes(), 0..4),
            peer in any_ip(),
            n in 0usize..5,
            header in header_kind(),
        ) {
            let req = request_with(peer, header, &lines);
            let key = PeerIp::new().trusted_proxies(n).forwarded_header(header).extract(&req);

            let mut hops: Vec<Option<IpAddr>> = Vec::new();
            if n > 0 {
                for line in &lines {
                    for entry in line.split(|&b| b == b',') {
                        let entry = entry.trim_ascii();
                        if !entry.is_empty() {
                            hops.push(header.parse_hop(entry));
                        }
                    }
                }
            }
            hops.push(Some(peer.to_canonical()));
            let rightmost = &hops[hops.len().saturating_sub(n + 1)..];
            prop_assert!(key.is_none() || rightmost.contains(&key));
            prop_assert_eq!(key, hops[(hops.len() - 1).saturating_sub(n)]);
        }

        /// Whatever the client writes into the header, `n` appending proxies in front of us
        /// make the key the client's real address.
        #[test]
        fn spoofed_header_never_changes_the_client(
            spoof in proptest::option::of(header_bytes()),
            client in any_ip(),
            proxies in proptest::collection::vec((any_ip(), any::<u8>(), any::<bool>()), 1..5),
            header in header_kind(),
        ) {
            let mut lines: Vec<Vec<u8>> = spoof.into_iter().collect();
            // Proxy i appends whoever connected to it: the client, then proxy i - 1.
            let mut from = client;
            for &(proxy, style, new_line) in &proxies {
                let hop = render_hop(from, header, style);
                match lines.last_mut() {
                    Some(line) if !new_line => line.extend_from_slice(format!(", {hop}").as_bytes()),
                    _ => lines.push(hop.into_bytes()),
                }
                from = proxy;
            }
            let req = request_with(from, header, &lines);
            let key = PeerIp::new()
                .trusted_proxies(proxies.len())
                .forwarded_header(header)
                .extract(&req);
            prop_assert_eq!(key, Some(client.to_canonical()));
        }

        /// Every form a proxy writes a hop in parses back to the address.
        #[test]
        fn parse_node_round_trips_rendered_hops(client in any_ip(), style in any::<u8>()) {
            let hop = render_hop(client, ForwardedHeader::XForwardedFor, style);
            prop_assert_eq!(parse_node(hop.as_bytes()), Some(client.to_canonical()));
        }
    }
}
