//! [`PeerIp`]: the client's address, from the connection or from the forwarding headers of
//! trusted proxies, and [`Cidr`], the networks it trusts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{FORWARDED, HeaderMap, HeaderName};
use http::{Extensions, Request};

use crate::KeyExtractor;
use crate::wire::X_FORWARDED_FOR;

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

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address (`10.0.0.7`,
/// the same as `/32` or `/128`): the proxies [`PeerIp::trust`] trusts.
///
/// Parsed with [`FromStr`] (and, with the `serde` feature, read from a configuration file as
/// such a string). Bits set past the prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`, as nginx
/// and `ipnet`'s `trunc` read it). An IPv4-mapped IPv6 network of prefix 96 or more
/// (`::ffff:10.0.0.0/104`) is the IPv4 network it maps (`10.0.0.0/8`). An IPv6 network also
/// contains the IPv4 addresses whose mapped form it contains, so `::/0` is every address.
///
/// ```
/// use weir_core::key::Cidr;
///
/// let private: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(private.contains("10.20.30.40".parse().unwrap()));
/// assert!(!private.contains("11.0.0.1".parse().unwrap()));
/// assert_eq!("10.1.2.3/8".parse::<Cidr>().unwrap(), private);
/// assert!("10.0.0.0/33".parse::<Cidr>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with a prefix of `prefix` bits (at most 32 for IPv4, 128 for IPv6).
    ///
    /// # Errors
    ///
    /// A prefix longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let (addr, prefix) = match addr {
            IpAddr::V4(_) if prefix > 32 => return Err(CidrError::Prefix { v4: true }),
            IpAddr::V6(_) if prefix > 128 => return Err(CidrError::Prefix { v4: false }),
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Ok(Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The network of the one address `addr`.
    #[must_use]
    pub fn host(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// The network's first address (the bits past the prefix are zero).
    #[must_use]
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, in bits.
    #[must_use]
    pub const fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network. An IPv4-mapped IPv6 `ip` is read as the IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                mask_v6(u128::from(ip.to_ipv6_mapped()), self.prefix) == u128::from(net)
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix` or a lone address; no whitespace, no zone (`%eth0`).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Address)?;
        match prefix {
            None => Ok(Self::host(addr)),
            Some(prefix) => {
                let digits_only = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
                let prefix = prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|_| digits_only)
                    .ok_or(CidrError::Prefix { v4: addr.is_ipv4() })?;
                Self::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        text.parse()
            .map_err(|err| serde::de::Error::custom(format_args!("{text:?}: {err}")))
    }
}

/// Why a [`Cidr`] did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    Address,
    /// The prefix is not a whole number of bits within the address (`v4`: at most 32, else 128).
    Prefix {
        /// Whether the address was IPv4.
        v4: bool,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address => f.write_str(
                "not an IP network: expected an address or address/prefix, as 10.0.0.0/8 or 2001:db8::/32",
            ),
            Self::Prefix { v4: true } => f.write_str("an IPv4 prefix is a number from 0 to 32"),
            Self::Prefix { v4: false } => f.write_str("an IPv6 prefix is a number from 0 to 128"),
        }
    }
}

impl std::error::Error for CidrError {}

const fn mask_v4(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        1..=31 => bits & (u32::MAX << (32 - prefix)),
        _ => bits,
    }
}

const fn mask_v6(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        1..=127 => bits & (u128::MAX << (128 - prefix)),
        _ => bits,
    }
}

/// `addr` with the bits past `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(v4), prefix))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), prefix))),
    }
}

/// The client's IP address: the peer of the connection, or the address a trusted reverse proxy
/// recorded in `X-Forwarded-For` / `Forwarded`. Key: [`IpAddr`].
///
/// The peer address comes from a [`SocketAddr`] request extension (what a hyper server inserts
/// per connection) or, with the `axum` feature, from axum's `ConnectInfo<SocketAddr>` (serve
/// with `into_make_service_with_connect_info::<SocketAddr>()`) and else axum's
/// `MockConnectInfo<SocketAddr>` (the layer axum offers tests; it stores itself, not a
/// `ConnectInfo`, in the extensions, and a real `ConnectInfo` wins over it, as in axum's own
/// extractor). A request that has none of them has no key: weir then logs one warning per
/// process (at `warn` level, naming `into_make_service_with_connect_info`), not one per request.
///
/// IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, what a dual-stack socket reports for an
/// IPv4 client) become IPv4, so one client is one key. An IPv6 client is keyed by its network
/// prefix, `/64` by default ([`ipv6_prefix`](Self::ipv6_prefix)): a host owns a whole /64 and can
/// rotate through its addresses, so keying the full address would give it 2⁶⁴ buckets.
///
/// # Trusted proxies
///
/// [`PeerIp::new()`] trusts no proxy and ignores forwarding headers completely: anyone can write
/// them. There are two ways to say which proxies append to `X-Forwarded-For` (or `Forwarded`, see
/// [`forwarded_header`](Self::forwarded_header)) on the way to this server:
///
/// - **By address** (recommended), with [`trust`](Self::trust) and the proxies' addresses or
///   networks, as nginx's `set_real_ip_from` with `real_ip_recursive on`. The forwarding header
///   is read only when the connecting peer is trusted. Take the forwarded addresses in order (all
///   header lines joined, empty entries skipped) followed by the peer, and walk from the right:
///   the first hop that is not trusted is the client. Every hop right of it was written by a
///   trusted proxy; it was appended by one; entries left of it were written by the client (or by
///   proxies we do not know) and are never read. A client that connects directly (an untrusted
///   peer) is keyed by its own address, whatever headers it sends. When every hop is trusted, the
///   leftmost one is the client.
/// - **By count**, with [`trusted_proxies(n)`](Self::trusted_proxies): the client is the `n`-th
///   hop counted from the right (the peer is the 0-th), clamped to the leftmost hop when the
///   chain is shorter. The peer is not checked: the count is only right if every request
///   reaches this server through all `n` proxies, so block any other path (a firewall, a private
///   network). Without a peer address (a Unix socket) the header is read as if the peer were
///   there.
///
/// With both, a hop is trusted only if it is in the set and fewer than `n` hops from the right:
/// the count bounds the walk.
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use http::Request;
/// use weir_core::KeyExtractor;
/// use weir_core::key::PeerIp;
///
/// // The client wrote the first entry; our load balancer (the peer) appended the second.
/// let mut req = Request::builder()
///     .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert("10.0.0.1:50000".parse::<SocketAddr>().unwrap());
///
/// let behind_lb = PeerIp::new().trust(["10.0.0.0/8".parse().unwrap()]);
/// assert_eq!(behind_lb.extract(&req), Some("203.0.113.7".parse::<IpAddr>().unwrap()));
/// assert_eq!(PeerIp::new().trusted_proxies(1).extract(&req), behind_lb.extract(&req));
/// assert_eq!(PeerIp::new().extract(&req), Some("10.0.0.1".parse().unwrap()));
///
/// // The same headers from a client that connects directly change nothing.
/// req.extensions_mut().insert("198.51.100.9:50000".parse::<SocketAddr>().unwrap());
/// assert_eq!(behind_lb.extract(&req), Some("198.51.100.9".parse().unwrap()));
/// ```
///
/// Trust your proxies' addresses, not networks your clients live in: a client whose own address
/// is trusted is walked past, to what it wrote.
///
/// The key is missing (`None`) when the chosen hop, or a hop the walk has to look at, cannot be
/// parsed (garbage, `unknown`, an obfuscated `_identifier`, a non-IP `Forwarded` node), when a
/// `Forwarded` element has no `for=`, and when the peer address is needed but the request
/// carries none. It never falls back to another hop.
///
/// Reading the chain allocates nothing, scans from the right and stops at the client, so its
/// cost is bounded by the number of trusted hops (times the size of the trusted set) and the
/// header size, whatever the client sends. A clone shares the trusted set (a reference count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIp {
    /// Trusted proxy networks; `None` when none were given.
    trusted: Option<Arc<[Cidr]>>,
    /// The hop count: `0` for none.
    hops: usize,
    header: ForwardedHeader,
    ipv6_prefix: u8,
}

impl Default for PeerIp {
    /// [`PeerIp::new()`].
    fn default() -> Self {
        Self::new()
    }
}

impl PeerIp {
    /// The default [`ipv6_prefix`](Self::ipv6_prefix): 64 bits, one customer's subnet.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;

    /// The peer address of the connection; forwarding headers are ignored.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            trusted: None,
            hops: 0,
            header: ForwardedHeader::XForwardedFor,
            ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
        }
    }

    /// There are `n` reverse proxies in front of this server, each appending to the forwarding
    /// header; `0` (the default) sets no count. Alone, this trusts the `n` rightmost hops without
    /// checking any address; with [`trust`](Self::trust), it bounds the walk to `n` hops.
    #[must_use]
    pub const fn trusted_proxies(mut self, n: usize) -> Self {
        self.hops = n;
        self
    }

    /// Trusts the proxies at these addresses or in these networks (added to any trusted before):
    /// the forwarding header is read only when the peer is one of them, and walked from the
    /// right over them only (see [Trusted proxies](Self#trusted-proxies)).
    ///
    /// ```
    /// use weir_core::key::{Cidr, PeerIp};
    ///
    /// let ip = PeerIp::new().trust(["10.0.0.0/8", "fd00::/8"].map(|net| net.parse::<Cidr>().unwrap()));
    /// # let _ = ip;
    /// ```
    #[must_use]
    pub fn trust(mut self, networks: impl IntoIterator<Item = Cidr>) -> Self {
        let mut all: Vec<Cidr> = self.trusted.as_deref().unwrap_or_default().to_vec();
        all.extend(networks);
        self.trusted = (!all.is_empty()).then(|| all.into());
        self
    }

    /// Which header the trusted proxies append to: `X-Forwarded-For` (the default) or RFC 7239
    /// `Forwarded`.
    #[must_use]
    pub const fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Keys an IPv6 client by its first `bits` bits: 64 by default (the subnet one customer
    /// gets), 128 for the full address, 48 or 56 for a whole site. Clamped to `32..=128`: a
    /// shorter prefix would put whole providers in one bucket (a configuration file refuses it).
    /// IPv4 clients are keyed by their full address.
    #[must_use]
    pub const fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = if bits < 32 {
            32
        } else if bits > 128 {
            128
        } else {
            bits
        };
        self
    }

    /// The trusted proxy networks given to [`trust`](Self::trust).
    #[must_use]
    pub fn trusted(&self) -> &[Cidr] {
        self.trusted.as_deref().unwrap_or_default()
    }

    /// The borrowed settings the walk runs on.
    pub(crate) fn walk(&self) -> Walk<'_> {
        Walk {
            trusted: self.trusted(),
            hops: self.hops,
            header: self.header,
            ipv6_prefix: self.ipv6_prefix,
        }
    }
}

/// [`PeerIp`]'s settings, borrowed: what a configuration file's key spec and a `PeerIp` both
/// walk the chain with, neither building anything per request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walk<'a> {
    pub(crate) trusted: &'a [Cidr],
    pub(crate) hops: usize,
    pub(crate) header: ForwardedHeader,
    pub(crate) ipv6_prefix: u8,
}

impl Walk<'_> {
    /// The client's address, before the IPv6 prefix is applied; `warned` is the once-flag of
    /// the missing-peer warning.
    fn client(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        warned: &AtomicBool,
    ) -> Option<IpAddr> {
        match self.trusted {
            [] if self.hops == 0 => peer.or_else(|| missing_peer(warned)),
            [] => self.count_hops(peer, headers, warned),
            trusted => match peer {
                Some(peer) => self.walk_trusted(trusted, peer, headers),
                None => missing_peer(warned),
            },
        }
    }

    /// By address: the first hop from the right that is not trusted (or the `hops`-th, when a
    /// count is set), else the leftmost; hops left of it are never parsed.
    fn walk_trusted(&self, trusted: &[Cidr], peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(peer) {
            return Some(peer);
        }
        let limit = if self.hops == 0 {
            usize::MAX
        } else {
            self.hops
        };
        let mut position = 0;
        let mut leftmost = peer;
        for line in headers.get_all(self.header.name()).iter().rev() {
            for entry in line.as_bytes().rsplit(|&b| b == b',') {
                let entry = entry.trim_ascii();
                if entry.is_empty() {
                    continue;
                }
                position += 1;
                let hop = self.header.parse_hop(entry)?;
                if position >= limit || !is_trusted(hop) {
                    return Some(hop);
                }
                leftmost = hop;
            }
        }
        Some(leftmost)
    }

    /// By count: the `hops`-th hop from the right of `forwarded entries ++ [peer]`, clamped to
    /// the leftmost hop; `None` from the peer's place when it is missing.
    fn count_hops(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        warned: &AtomicBool,
    ) -> Option<IpAddr> {
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
                if position == self.hops {
                    return self.header.parse_hop(entry);
                }
                leftmost = Some(entry);
            }
        }
        match leftmost {
            Some(entry) => self.header.parse_hop(entry),
            None => peer.or_else(|| missing_peer(warned)),
        }
    }

    /// The key of `req`.
    pub(crate) fn extract<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = peer_addr(req.extensions()).map(|addr| addr.ip().to_canonical());
        self.key(peer, req.headers(), &MISSING_PEER_WARNED)
    }

    /// The key of a request from `peer` with `headers`.
    fn key(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        warned: &AtomicBool,
    ) -> Option<IpAddr> {
        let client = self.client(peer, headers, warned)?;
        Some(match client {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), self.ipv6_prefix))),
            v4 => v4,
        })
    }
}

/// Set once the missing-peer warning has been logged.
static MISSING_PEER_WARNED: AtomicBool = AtomicBool::new(false);

/// Logs, once per `warned` flag, that a request has no peer address and how to fix it; `None`.
#[cold]
fn missing_peer(warned: &AtomicBool) -> Option<IpAddr> {
    // A load first: a misconfigured server hits this on every request, and a swap on a shared
    // flag would make each of them write the same cache line.
    if !warned.load(Ordering::Relaxed) && !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "weir PeerIp: a request carries no peer address (no `SocketAddr`, axum `ConnectInfo<SocketAddr>` \
             or `MockConnectInfo<SocketAddr>` extension), so it has no key; serve the axum router with \
             `into_make_service_with_connect_info::<SocketAddr>()`, or insert the peer's `SocketAddr` into \
             each request's extensions with hyper (logged once)"
        );
    }
    None
}

impl<B> KeyExtractor<Request<B>> for PeerIp {
    type Key = IpAddr;

    fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
        self.walk().extract(req)
    }
}

/// The connection's peer address, from a `SocketAddr` extension or, with the `axum` feature,
/// axum's `ConnectInfo<SocketAddr>` and then `MockConnectInfo<SocketAddr>`.
fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    {
        use axum::extract::ConnectInfo;
        use axum::extract::connect_info::MockConnectInfo;
        if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
        if let Some(MockConnectInfo(addr)) = extensions.get::<MockConnectInfo<SocketAddr>>() {
            return Some(*addr);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::test_util::{ip, request};
    use http::HeaderValue;
    use proptest::prelude::*;

    fn xff(n: usize) -> PeerIp {
        PeerIp::new().trusted_proxies(n).ipv6_prefix(128)
    }

    fn fwd(n: usize) -> PeerIp {
        PeerIp::new()
            .trusted_proxies(n)
            .ipv6_prefix(128)
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
        assert_eq!(
            PeerIp::new().ipv6_prefix(128).extract(&v6),
            Some(ip("2001:db8::7"))
        );
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
            let key = PeerIp::new()
                .trusted_proxies(n)
                .ipv6_prefix(128)
                .forwarded_header(header)
                .extract(&req);

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
                .ipv6_prefix(128)
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

    fn net(text: &str) -> Cidr {
        text.parse().expect("test network")
    }

    fn trusting(networks: &[&str]) -> PeerIp {
        PeerIp::new()
            .ipv6_prefix(128)
            .trust(networks.iter().map(|text| net(text)))
    }

    /// #15.11: a client that connects directly keys on its own address, whatever forwarding
    /// headers it writes, once proxies are trusted by address.
    #[test]
    fn a_direct_client_never_chooses_its_key_with_trusted_addresses() {
        let req = request(
            Some("198.51.100.9:4000"),
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("forwarded", "for=203.0.113.7"),
            ],
        );
        let lb = trusting(&["10.0.0.0/8"]);
        assert_eq!(lb.extract(&req), Some(ip("198.51.100.9")));
        let lb = lb.forwarded_header(ForwardedHeader::Forwarded);
        assert_eq!(lb.extract(&req), Some(ip("198.51.100.9")));
        // The same request through the load balancer reads the header.
        let via_lb = request(Some("10.0.0.1:4000"), &[("forwarded", "for=203.0.113.7")]);
        assert_eq!(lb.extract(&via_lb), Some(ip("203.0.113.7")));
    }

    /// #15.11: the chain is walked from the right over trusted hops only; the first untrusted
    /// hop is the client, whatever the client wrote left of it.
    #[test]
    fn the_trusted_walk_stops_at_the_first_untrusted_hop() {
        let proxies = trusting(&["10.0.0.0/8", "172.16.0.0/12", "2001:db8:ffff::/48"]);
        let key = |peer: &str, chain: &str| {
            proxies.extract(&request(Some(peer), &[("x-forwarded-for", chain)]))
        };
        let peer = "10.0.0.1:1";
        assert_eq!(
            key(peer, "6.6.6.6, 203.0.113.7, 172.16.0.5, 10.0.0.2"),
            Some(ip("203.0.113.7"))
        );
        // A spoofed trusted-looking entry left of the client changes nothing.
        assert_eq!(
            key(peer, "10.9.9.9, 203.0.113.7, 172.16.0.5"),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            key(peer, "[2001:db8::7]:1, 2001:db8:ffff::1"),
            Some(ip("2001:db8::7"))
        );
        // Every hop trusted: the leftmost.
        assert_eq!(key(peer, "10.0.0.3, 10.0.0.2"), Some(ip("10.0.0.3")));
        assert_eq!(key(peer, ""), Some(ip("10.0.0.1")));
        // A hop the walk must read does not parse: no key, never a hop further left or right.
        assert_eq!(key(peer, "203.0.113.7, garbage, 10.0.0.2"), None);
        // Garbage left of the client is never read.
        assert_eq!(key(peer, "garbage, 203.0.113.7"), Some(ip("203.0.113.7")));
        // A count bounds the walk.
        let bounded = proxies.clone().trusted_proxies(1);
        let req = request(Some(peer), &[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        assert_eq!(bounded.extract(&req), Some(ip("10.0.0.2")));
        // Lines are joined in order.
        let lines = request(
            Some(peer),
            &[
                ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
                ("x-forwarded-for", "10.0.0.2"),
            ],
        );
        assert_eq!(proxies.extract(&lines), Some(ip("203.0.113.7")));
        // No peer address: nothing to check the header against.
        let no_peer = request(None, &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(proxies.extract(&no_peer), None);
    }

    #[test]
    fn trust_adds_networks_and_clones_share_them() {
        let ip = PeerIp::new()
            .trust([net("10.0.0.0/8")])
            .trust([net("192.0.2.1")]);
        assert_eq!(ip.trusted(), [net("10.0.0.0/8"), net("192.0.2.1/32")]);
        assert_eq!(ip.clone(), ip);
        assert!(PeerIp::new().trust([]).trusted().is_empty());
        assert_eq!(PeerIp::new().trust([]), PeerIp::new());
    }

    #[test]
    fn cidr_parses_networks_and_hosts_and_refuses_the_rest() {
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(net("2001:db8::1").prefix_len(), 128);
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
        assert_eq!(net("::ffff:10.0.0.7"), net("10.0.0.7/32"));
        assert_eq!(net("0.0.0.0/0").addr(), ip("0.0.0.0"));
        for (text, err) in [
            ("10.0.0.0/33", CidrError::Prefix { v4: true }),
            ("2001:db8::/129", CidrError::Prefix { v4: false }),
            ("10.0.0.0/", CidrError::Prefix { v4: true }),
            ("10.0.0.0/+8", CidrError::Prefix { v4: true }),
            ("10.0.0.0/ 8", CidrError::Prefix { v4: true }),
            ("10.0.0/8", CidrError::Address),
            ("", CidrError::Address),
            ("fe80::1%eth0/64", CidrError::Address),
            (" 10.0.0.0/8", CidrError::Address),
        ] {
            assert_eq!(text.parse::<Cidr>(), Err(err), "{text:?}");
        }
        assert!(
            CidrError::Prefix { v4: true }
                .to_string()
                .contains("0 to 32")
        );
    }

    #[test]
    fn cidr_contains() {
        let private = net("10.0.0.0/8");
        assert!(private.contains(ip("10.255.0.1")));
        assert!(private.contains(ip("::ffff:10.0.0.1")));
        assert!(!private.contains(ip("11.0.0.0")));
        assert!(!private.contains(ip("2001:db8::1")));
        let doc = net("2001:db8::/32");
        assert!(doc.contains(ip("2001:db8:1::1")));
        assert!(!doc.contains(ip("2001:db9::1")));
        assert!(!doc.contains(ip("10.0.0.1")));
        assert!(net("::/0").contains(ip("10.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.7")));
        assert!(net("203.0.113.7").contains(ip("203.0.113.7")));
        assert!(!net("203.0.113.7").contains(ip("203.0.113.8")));
    }

    /// #15.12: IPv6 clients are keyed by their /64 by default, settable from /32 to /128;
    /// IPv4 and IPv4-mapped clients by their full IPv4 address.
    #[test]
    fn ipv6_clients_are_keyed_by_a_prefix() {
        let key = |extractor: &PeerIp, peer: &str| extractor.extract(&request(Some(peer), &[]));
        let default = PeerIp::new();
        let a = key(&default, "[2001:db8:1:2:aaaa::1]:1");
        assert_eq!(a, Some(ip("2001:db8:1:2::")));
        assert_eq!(key(&default, "[2001:db8:1:2:ffff:1:2:3]:1"), a);
        assert_ne!(key(&default, "[2001:db8:1:3::1]:1"), a);
        let site = PeerIp::new().ipv6_prefix(48);
        assert_eq!(key(&site, "[2001:db8:1:2::1]:1"), Some(ip("2001:db8:1::")));
        let full = PeerIp::new().ipv6_prefix(128);
        assert_eq!(key(&full, "[2001:db8::1]:1"), Some(ip("2001:db8::1")));
        // Clamped to 32..=128.
        assert_eq!(PeerIp::new().ipv6_prefix(0), PeerIp::new().ipv6_prefix(32));
        assert_eq!(
            key(&PeerIp::new().ipv6_prefix(8), "[2001:db8:1::1]:1"),
            Some(ip("2001:db8::"))
        );
        assert_eq!(PeerIp::new().ipv6_prefix(200), full);
        // IPv4 (and mapped IPv4) keep every bit.
        assert_eq!(key(&site, "203.0.113.7:1"), Some(ip("203.0.113.7")));
        assert_eq!(
            key(&default, "[::ffff:203.0.113.7]:1"),
            Some(ip("203.0.113.7"))
        );
        // A forwarded IPv6 client too.
        let req = request(
            Some("10.0.0.1:1"),
            &[("x-forwarded-for", "2001:db8:1:2:3:4:5:6")],
        );
        let behind = PeerIp::new().trust([net("10.0.0.0/8")]);
        assert_eq!(behind.extract(&req), Some(ip("2001:db8:1:2::")));
    }

    /// Collects the messages of `warn` events.
    #[derive(Clone, Default)]
    struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    struct Message(String);

    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut message = Message(String::new());
                event.record(&mut message);
                self.0.lock().expect("lock").push(message.0);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// #15.13: a request without a peer address is logged once at warn level, with the fix,
    /// not once per request; a request with one logs nothing.
    #[test]
    fn a_missing_peer_address_warns_once_with_the_fix() {
        let warnings = Warnings::default();
        let warned = AtomicBool::new(false);
        let headers = HeaderMap::new();
        let peer = Some(ip("203.0.113.7"));
        tracing::subscriber::with_default(warnings.clone(), || {
            let plain = PeerIp::new();
            assert_eq!(plain.walk().key(peer, &headers, &warned), peer);
            for extractor in [plain, xff(1), trusting(&["10.0.0.0/8"])] {
                for _ in 0..3 {
                    assert_eq!(extractor.walk().key(None, &headers, &warned), None);
                }
            }
        });
        let logged = warnings.0.lock().expect("lock");
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(
            logged[0].contains("into_make_service_with_connect_info"),
            "{logged:?}"
        );
    }

    /// #15.13: axum's `MockConnectInfo` is read as the peer address, and a real `ConnectInfo`
    /// wins over it (as in axum's own extractor).
    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn axum_mock_connect_info_is_the_peer_address() {
        use axum::Router;
        use axum::body::Body;
        use axum::extract::ConnectInfo;
        use axum::extract::connect_info::MockConnectInfo;
        use axum::routing::get;
        use tower::ServiceExt;

        let mock: SocketAddr = "203.0.113.7:4000".parse().expect("address");
        let app = Router::new()
            .route(
                "/",
                get(|req: axum::extract::Request| async move {
                    format!("{:?}", PeerIp::new().extract(&req))
                }),
            )
            .layer(MockConnectInfo(mock));
        let res = app
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("infallible");
        let body = axum::body::to_bytes(res.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(body, "Some(203.0.113.7)");

        let mut req = Request::new(());
        req.extensions_mut().insert(MockConnectInfo(mock));
        let real: SocketAddr = "198.51.100.9:1".parse().expect("address");
        req.extensions_mut().insert(ConnectInfo(real));
        assert_eq!(PeerIp::new().extract(&req), Some(ip("198.51.100.9")));
    }

    /// A small pool of addresses, so that random chains and trusted sets overlap.
    fn pool() -> impl Strategy<Value = Vec<IpAddr>> {
        proptest::collection::vec(any_ip(), 6)
    }

    proptest! {
        /// #15.11: whatever the client writes, behind any number of trusted proxies (named by
        /// address), the key is the address the first proxy saw: the client's own.
        #[test]
        fn trusted_walk_finds_the_client_behind_any_spoof(
            spoof in proptest::option::of(header_bytes()),
            client in any_ip(),
            proxies in proptest::collection::vec((any_ip(), any::<u8>(), any::<bool>()), 0..5),
            header in header_kind(),
        ) {
            let trusted: Vec<Cidr> = proxies.iter().map(|&(proxy, _, _)| Cidr::host(proxy)).collect();
            prop_assume!(!trusted.iter().any(|net| net.contains(client)));
            let mut lines: Vec<Vec<u8>> = spoof.into_iter().collect();
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
                .trust(trusted)
                .ipv6_prefix(128)
                .forwarded_header(header)
                .extract(&req);
            prop_assert_eq!(key, Some(client.to_canonical()));
        }

        /// #15.11: over random chains and trusted sets, the key is exactly the first untrusted
        /// hop from the right (or the leftmost when all are trusted), and never an address left
        /// of it: nothing a client could have written.
        #[test]
        fn trusted_walk_never_reads_left_of_the_first_untrusted_hop(
            pool in pool(),
            trusted_mask in any::<u8>(),
            network in proptest::option::of((any_ip(), any::<u8>())),
            chain in proptest::collection::vec((0usize..6, any::<u8>()), 0..6),
            garbage in proptest::collection::vec(header_bytes(), 0..2),
            peer in 0usize..6,
            header in header_kind(),
            hops in 0usize..4,
        ) {
            let mut trusted: Vec<Cidr> = pool
                .iter()
                .enumerate()
                .filter(|&(i, _)| trusted_mask & (1 << i) != 0)
                .map(|(_, &ip)| Cidr::host(ip))
                .collect();
            if let Some((addr, prefix)) = network {
                let max = if addr.is_ipv4() { 33 } else { 129 };
                trusted.push(Cidr::new(addr, prefix % max).expect("prefix in range"));
            }
            // An empty set is no address trust at all (the hop count alone, if any).
            prop_assume!(!trusted.is_empty());
            // Client-written garbage first, then rendered hops.
            let mut entries: Vec<Vec<u8>> = garbage;
            entries.extend(chain.iter().map(|&(i, style)| render_hop(pool[i], header, style).into_bytes()));
            let line = entries.join(&b", "[..]);
            let peer = pool[peer];
            let req = request_with(peer, header, std::slice::from_ref(&line));
            let extractor = PeerIp::new()
                .trust(trusted.clone())
                .trusted_proxies(hops)
                .ipv6_prefix(128)
                .forwarded_header(header);
            let key = extractor.extract(&req);

            // The model: hops from the right, peer first.
            let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
            let mut right_to_left: Vec<Option<IpAddr>> = vec![Some(peer.to_canonical())];
            for entry in line.rsplit(|&b| b == b',') {
                let entry = entry.trim_ascii();
                if !entry.is_empty() {
                    right_to_left.push(header.parse_hop(entry));
                }
            }
            let limit = if hops == 0 { usize::MAX } else { hops };
            let stop = right_to_left
                .iter()
                .position(|hop| hop.is_none_or(|ip| !is_trusted(ip)))
                .unwrap_or(right_to_left.len() - 1)
                .min(limit)
                .min(right_to_left.len() - 1);
            let expected = right_to_left[stop];
            prop_assert_eq!(key, expected);
            if let Some(key) = key {
                // Never from a hop left of the first untrusted one.
                prop_assert!(right_to_left[..=stop].contains(&Some(key)));
            }
            // A peer that is not trusted is the key, whatever the header says.
            if !is_trusted(peer) {
                prop_assert_eq!(key, Some(peer.to_canonical()));
            }
        }

        /// `Cidr::contains` is a comparison of the first `prefix` bits.
        #[test]
        fn cidr_contains_compares_prefix_bits(net in any::<u32>(), ip in any::<u32>(), prefix in 0u8..=32) {
            let cidr = Cidr::new(IpAddr::V4(Ipv4Addr::from(net)), prefix).expect("prefix");
            let shift = 32 - u32::from(prefix);
            let same = u64::from(net) >> shift == u64::from(ip) >> shift;
            prop_assert_eq!(cidr.contains(IpAddr::V4(Ipv4Addr::from(ip))), same);
        }

        /// Any text parses to a network or an error, never a panic; what parses prints back.
        #[test]
        fn cidr_from_str_never_panics(text in "[0-9a-f:./%]{0,48}") {
            if let Ok(cidr) = text.parse::<Cidr>() {
                prop_assert_eq!(cidr.to_string().parse::<Cidr>(), Ok(cidr));
            }
        }
    }
}
