//! `Cidr`: an IP network, the proxies `PeerIp` trusts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address (`10.0.0.7`,
/// the same as `/32` or `/128`): the proxies [`PeerIp::trust`](super::PeerIp::trust) trusts.
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

pub(super) const fn mask_v6(bits: u128, prefix: u8) -> u128 {
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
