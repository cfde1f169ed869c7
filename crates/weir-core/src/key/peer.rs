//! [`PeerIp`]: the client's address, from the connection or from the forwarding headers of
//! trusted proxies, and [`Cidr`], the networks it trusts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{FORWARDED, HeaderMap, HeaderName};
use http::{Extensions, Request};

use super::cidr::{Cidr, mask_v6};
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
mod tests;
