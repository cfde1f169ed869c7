//! Pieces every pattern's configuration file shares (feature `serde`): durations written the
//! way people write them, and a key extractor chosen by name.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request};
use serde::de::{self, Deserialize, Deserializer};

use crate::KeyExtractor;
use crate::backoff::{Backoff, Jitter};
use crate::key::{
    ApiKey, ApiKeyToken, Authority, Cidr, DEFAULT_MAX_KEY_LEN, ForwardedHeader, Header, MethodPath,
    PeerIp, RouteKey, Walk,
};

/// A duration in a configuration file: a whole number and a unit, `us`, `ms`, `s`, `m`, `h` or
/// `d` (`"250ms"`, `"10s"`, `"2m"`, `"1d"`). Surrounding whitespace is allowed; anything else
/// (`"1.5s"`, `"10"`, `"1m30s"`) is refused with the rule it broke, and serde names the field.
///
/// ```
/// use std::time::Duration;
/// use weir_core::config::ConfigDuration;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Settings {
///     timeout: ConfigDuration,
/// }
///
/// let settings: Settings = toml::from_str(r#"timeout = "250ms""#).unwrap();
/// assert_eq!(settings.timeout.get(), Duration::from_millis(250));
///
/// let err = toml::from_str::<Settings>(r#"timeout = "1.5s""#).unwrap_err();
/// assert!(err.to_string().contains("timeout"), "{err}");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigDuration(Duration);

impl ConfigDuration {
    /// The duration.
    #[must_use]
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Parses `"250ms"` and the like (see the type's documentation).
    ///
    /// # Errors
    ///
    /// The rule the text broke.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            return Err(DurationError::Malformed);
        }
        let n: u64 = digits.parse().map_err(|_| DurationError::TooLarge)?;
        let micros_per_unit: u64 = match unit {
            "us" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            _ => return Err(DurationError::Malformed),
        };
        n.checked_mul(micros_per_unit)
            .map(|micros| Self(Duration::from_micros(micros)))
            .ok_or(DurationError::TooLarge)
    }
}

impl From<ConfigDuration> for Duration {
    fn from(value: ConfigDuration) -> Self {
        value.0
    }
}

impl From<Duration> for ConfigDuration {
    fn from(value: Duration) -> Self {
        Self(value)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration such as "250ms", "10s" or "2m""#)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ConfigDuration, E> {
                ConfigDuration::parse(text)
                    .map_err(|rule| E::custom(format_args!("invalid duration {text:?}: {rule}")))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Why a [`ConfigDuration`] did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a whole number followed by one of the units.
    Malformed,
    /// The duration does not fit in 64 bits of microseconds (about 584 000 years).
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str(
                r#"expected a whole number followed by a unit, us, ms, s, m, h or d (e.g. "250ms", "10s", "2m")"#,
            ),
            Self::TooLarge => f.write_str("the duration is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// A key extractor chosen in a configuration file; it extracts [`SpecKey`]s from
/// `http::Request`s by delegating to the extractor it names.
///
/// | TOML | extractor |
/// |---|---|
/// | `key = "global"` | one key for every request ([`Global`](crate::key::Global)) |
/// | `key = "peer_ip"` | the connection's peer address ([`PeerIp`]) |
/// | `key = { forwarded_ip = { trust = ["10.0.0.0/8"] } }` | the client address behind proxies in `10.0.0.0/8`, from `X-Forwarded-For` ([`PeerIp::trust`]) |
/// | `key = { forwarded_ip = { trusted_proxies = 1 } }` | the client address behind 1 proxy, by count ([`PeerIp::trusted_proxies`]) |
/// | `key = { forwarded_ip = { trust = ["fd00::/8"], header = "forwarded", ipv6_prefix = 56 } }` | from RFC 7239 `Forwarded`, IPv6 clients keyed by /56 |
/// | `key = { header = "x-tenant" }` | a header's value ([`Header`]) |
/// | `key = { header = { name = "x-tenant", max_len = 64 } }` | the same, kept verbatim up to 64 bytes ([`Header::max_len`]) |
/// | `key = "api_key"` / `key = { api_key_header = "x-token" }` | an API key in `x-api-key` or another header ([`ApiKey`]) |
/// | `key = { api_key = { max_len = 2048 } }` / `key = { api_key_header = { name = "x-token", max_len = 2048 } }` | the same, kept verbatim up to 2 048 bytes ([`ApiKey::max_len`]) |
/// | `key = "bearer"` / `key = { bearer = { max_len = 4096 } }` | the token of `Authorization: Bearer` ([`ApiKey::bearer`]) |
/// | `key = "method_path"` | method and route ([`MethodPath`]) |
/// | `key = "authority"` | the upstream host, for clients ([`Authority`]) |
///
/// A header name that is not a valid HTTP header name is refused when the file is read. Header
/// values and API keys longer than `max_len` ([`DEFAULT_MAX_KEY_LEN`]
/// bytes when left out) are kept as their digest, as with [`Header`] and [`ApiKey`]. `peer_ip`
/// keys IPv6 clients by their /64; see [`PeerIpSpec`] for the `forwarded_ip` settings.
///
/// ```
/// use http::Request;
/// use weir_core::KeyExtractor;
/// use weir_core::config::{KeySpec, SpecKey};
///
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     key: KeySpec,
/// }
///
/// let settings: Settings = toml::from_str(r#"key = { header = "x-tenant" }"#).unwrap();
/// let req = Request::get("/").header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(settings.key.extract(&req), Some(SpecKey::Header("acme".parse().unwrap())));
///
/// assert!(toml::from_str::<Settings>(r#"key = { header = "bad header" }"#).is_err());
/// assert!(toml::from_str::<Settings>(r#"key = "cookie""#).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    /// One key for every request.
    #[default]
    Global,
    /// The connection's peer address ([`PeerIp`]).
    PeerIp,
    /// The client's address behind trusted reverse proxies ([`PeerIp::trust`],
    /// [`PeerIp::trusted_proxies`]).
    ForwardedIp(PeerIpSpec),
    /// A header's value ([`Header`]).
    Header(HeaderSpec),
    /// An API key from `x-api-key` ([`ApiKey`]).
    ApiKey {
        /// The longest token kept verbatim ([`ApiKey::max_len`]).
        max_len: usize,
    },
    /// An API key from another header ([`ApiKey::header_name`]).
    ApiKeyHeader(HeaderSpec),
    /// The token of `Authorization: Bearer` ([`ApiKey::bearer`]).
    Bearer {
        /// The longest token kept verbatim ([`ApiKey::max_len`]).
        max_len: usize,
    },
    /// The request's method and route ([`MethodPath`]).
    MethodPath,
    /// The authority the request is sent to ([`Authority`]).
    Authority,
}

impl KeySpec {
    /// The names a configuration file may write.
    const NAMES: &'static [&'static str] = &[
        "global",
        "peer_ip",
        "forwarded_ip",
        "header",
        "api_key",
        "api_key_header",
        "bearer",
        "method_path",
        "authority",
    ];

    /// [`KeySpec::ApiKey`] with the default cap.
    pub const API_KEY: Self = Self::ApiKey {
        max_len: DEFAULT_MAX_KEY_LEN,
    };

    /// [`KeySpec::Bearer`] with the default cap.
    pub const BEARER: Self = Self::Bearer {
        max_len: DEFAULT_MAX_KEY_LEN,
    };
}

impl<'de> Deserialize<'de> for KeySpec {
    /// A name (`"peer_ip"`), or a table of one name and its settings
    /// (`{ header = "x-tenant" }`, `{ bearer = { max_len = 4096 } }`); see [`KeySpec`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeySpecVisitor)
    }
}

struct KeySpecVisitor;

impl<'de> de::Visitor<'de> for KeySpecVisitor {
    type Value = KeySpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key name such as \"peer_ip\", or a table such as { header = \"x-tenant\" }")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<KeySpec, E> {
        Ok(match name {
            "global" => KeySpec::Global,
            "peer_ip" => KeySpec::PeerIp,
            "api_key" => KeySpec::API_KEY,
            "bearer" => KeySpec::BEARER,
            "method_path" => KeySpec::MethodPath,
            "authority" => KeySpec::Authority,
            "header" | "api_key_header" => {
                return Err(E::custom(format_args!(
                    "key \"{name}\" needs a header name: {{ {name} = \"x-tenant\" }}"
                )));
            }
            "forwarded_ip" => {
                return Err(E::custom(
                    "key \"forwarded_ip\" needs its proxies: { forwarded_ip = { trust = [\"10.0.0.0/8\"] } }",
                ));
            }
            other => return Err(E::unknown_variant(other, KeySpec::NAMES)),
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<KeySpec, A::Error> {
        let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(de::Error::custom("an empty table names no key"));
        };
        let spec = match name.as_ref() {
            "forwarded_ip" => KeySpec::ForwardedIp(map.next_value()?),
            "header" => KeySpec::Header(map.next_value()?),
            "api_key_header" => KeySpec::ApiKeyHeader(map.next_value()?),
            "api_key" => KeySpec::ApiKey {
                max_len: map.next_value::<LenSpec>()?.max_len,
            },
            "bearer" => KeySpec::Bearer {
                max_len: map.next_value::<LenSpec>()?.max_len,
            },
            other => {
                let known = ["global", "peer_ip", "method_path", "authority"];
                if known.contains(&other) {
                    return Err(de::Error::custom(format_args!(
                        "key \"{other}\" takes no settings: write key = \"{other}\""
                    )));
                }
                return Err(de::Error::unknown_variant(other, KeySpec::NAMES));
            }
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a key table names exactly one key"));
        }
        Ok(spec)
    }
}

/// The settings of `{ api_key = { ... } }` and `{ bearer = { ... } }`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LenSpec {
    #[serde(default = "default_max_len")]
    max_len: usize,
}

const fn default_max_len() -> usize {
    DEFAULT_MAX_KEY_LEN
}

/// The settings of [`KeySpec::Header`] and [`KeySpec::ApiKeyHeader`]: the header's name and the
/// longest value kept verbatim (a longer one is kept as its digest, see [`Header::max_len`]).
///
/// A file writes the name alone (`{ header = "x-tenant" }`, the cap is then
/// [`DEFAULT_MAX_KEY_LEN`]) or a table (`{ header = { name = "x-tenant", max_len = 64 } }`).
///
/// ```
/// use weir_core::config::{HeaderSpec, KeySpec};
///
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     key: KeySpec,
/// }
///
/// let text = r#"key = { header = { name = "x-tenant", max_len = 64 } }"#;
/// let KeySpec::Header(spec) = toml::from_str::<Settings>(text).unwrap().key else { panic!() };
/// assert_eq!((spec.name.as_str(), spec.max_len), ("x-tenant", 64));
/// let short = r#"key = { header = "x-tenant" }"#;
/// let KeySpec::Header(spec) = toml::from_str::<Settings>(short).unwrap().key else { panic!() };
/// assert_eq!(spec, HeaderSpec::new(http::HeaderName::from_static("x-tenant")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSpec {
    /// The header read.
    pub name: HeaderName,
    /// The longest value kept verbatim.
    pub max_len: usize,
}

impl HeaderSpec {
    /// The header `name`, values kept verbatim up to [`DEFAULT_MAX_KEY_LEN`] bytes.
    #[must_use]
    pub const fn new(name: HeaderName) -> Self {
        Self {
            name,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }
}

impl From<HeaderName> for HeaderSpec {
    /// [`HeaderSpec::new`].
    fn from(name: HeaderName) -> Self {
        Self::new(name)
    }
}

impl<'de> Deserialize<'de> for HeaderSpec {
    /// A header name, or a table `{ name = "...", max_len = N }`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(deserialize_with = "header_name")]
            name: HeaderName,
            #[serde(default = "default_max_len")]
            max_len: usize,
        }

        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = HeaderSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name, or a table { name = \"x-tenant\", max_len = 512 }")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HeaderSpec, E> {
                HeaderName::try_from(text)
                    .map(HeaderSpec::new)
                    .map_err(|_| E::custom(format_args!("{text:?} is not a valid header name")))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HeaderSpec, A::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(HeaderSpec {
                    name: table.name,
                    max_len: table.max_len,
                })
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The settings of [`KeySpec::ForwardedIp`]: those of a [`PeerIp`].
///
/// `trust` lists the proxies' addresses or networks (`"10.0.0.0/8"`, `"2001:db8::7"`), each
/// refused with the rule it broke if it does not parse; `ipv6_prefix` must be within `32..=128`
/// (64 when left out). With neither `trust` nor `trusted_proxies`, forwarding headers are ignored.
///
/// ```
/// use weir_core::config::KeySpec;
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Settings {
///     key: KeySpec,
/// }
///
/// let ok = r#"key = { forwarded_ip = { trust = ["10.0.0.0/8", "fd00::/8"] } }"#;
/// let KeySpec::ForwardedIp(spec) = toml::from_str::<Settings>(ok).unwrap().key else { panic!() };
/// assert_eq!(spec.to_peer_ip().trusted().len(), 2);
/// let err = toml::from_str::<Settings>(r#"key = { forwarded_ip = { trust = ["10.0.0.0/33"] } }"#);
/// assert!(err.unwrap_err().to_string().contains("from 0 to 32"));
/// let err = toml::from_str::<Settings>(r#"key = { forwarded_ip = { ipv6_prefix = 16 } }"#);
/// assert!(err.unwrap_err().to_string().contains("ipv6_prefix"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerIpSpec {
    /// The proxies trusted by address: forwarding headers are read only from them, and walked
    /// over them only ([`PeerIp::trust`]).
    #[serde(default)]
    pub trust: Vec<Cidr>,
    /// The number of reverse proxies in front of the server ([`PeerIp::trusted_proxies`]; 0: no
    /// count).
    #[serde(default)]
    pub trusted_proxies: usize,
    /// The header the proxies append to.
    #[serde(default)]
    pub header: ForwardedSpec,
    /// The prefix IPv6 clients are keyed by, `32..=128` ([`PeerIp::ipv6_prefix`]).
    #[serde(default = "default_ipv6_prefix", deserialize_with = "ipv6_prefix")]
    pub ipv6_prefix: u8,
}

impl Default for PeerIpSpec {
    /// No trusted proxy, `X-Forwarded-For`, IPv6 clients keyed by /64.
    fn default() -> Self {
        Self {
            trust: Vec::new(),
            trusted_proxies: 0,
            header: ForwardedSpec::default(),
            ipv6_prefix: PeerIp::DEFAULT_IPV6_PREFIX,
        }
    }
}

impl PeerIpSpec {
    /// The [`PeerIp`] these settings describe.
    #[must_use]
    pub fn to_peer_ip(&self) -> PeerIp {
        PeerIp::new()
            .trust(self.trust.iter().copied())
            .trusted_proxies(self.trusted_proxies)
            .forwarded_header(self.header.get())
            .ipv6_prefix(self.ipv6_prefix)
    }

    /// The settings, borrowed: extraction builds nothing per request.
    fn walk(&self) -> Walk<'_> {
        Walk {
            trusted: &self.trust,
            hops: self.trusted_proxies,
            header: self.header.get(),
            ipv6_prefix: self.ipv6_prefix.clamp(32, 128),
        }
    }
}

const fn default_ipv6_prefix() -> u8 {
    PeerIp::DEFAULT_IPV6_PREFIX
}

fn ipv6_prefix<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    let bits = u64::deserialize(deserializer)?;
    u8::try_from(bits)
        .ok()
        .filter(|bits| (32..=128).contains(bits))
        .ok_or_else(|| {
            de::Error::custom(format_args!(
                "ipv6_prefix = {bits}: an IPv6 key prefix is from 32 to 128 bits"
            ))
        })
}

/// The forwarding header of [`PeerIpSpec`]: `"x-forwarded-for"` (the default) or
/// `"forwarded"` (RFC 7239).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub enum ForwardedSpec {
    /// `X-Forwarded-For`.
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderName, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    HeaderName::try_from(text.as_ref())
        .map_err(|_| de::Error::custom(format_args!("{text:?} is not a valid header name")))
}

impl ForwardedSpec {
    const fn get(self) -> ForwardedHeader {
        match self {
            Self::XForwardedFor => ForwardedHeader::XForwardedFor,
            Self::Forwarded => ForwardedHeader::Forwarded,
        }
    }
}

/// The key a [`KeySpec`] extracts: one variant per extractor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpecKey {
    /// [`KeySpec::Global`]'s one key.
    Global,
    /// A client address.
    Ip(IpAddr),
    /// A header's value.
    Header(HeaderValue),
    /// An API key or bearer token.
    ApiKey(ApiKeyToken),
    /// A method and route.
    MethodPath(Method, RouteKey),
    /// An authority.
    Authority(http::uri::Authority),
}

impl KeySpec {
    /// The key this extractor produces for a request whose key is `key` as a configuration
    /// lists it: for header values and API keys, `key` itself up to the spec's `max_len`, its
    /// digest past it (as [`Header::listed`] and [`ApiKey::listed`]); any other key unchanged.
    /// Every table of listed keys (a rate limiter's `tier_of`, a bulkhead's `partition`) goes
    /// through it, so a listed key above the cap matches its requests.
    #[must_use]
    pub fn listed(&self, key: SpecKey) -> SpecKey {
        match (self, key) {
            (Self::Header(spec), SpecKey::Header(value)) => {
                SpecKey::Header(crate::key::listed_value(value, spec.max_len))
            }
            (Self::ApiKey { max_len } | Self::Bearer { max_len }, SpecKey::ApiKey(token)) => {
                SpecKey::ApiKey(crate::key::listed_token(token, *max_len))
            }
            (Self::ApiKeyHeader(spec), SpecKey::ApiKey(token)) => {
                SpecKey::ApiKey(crate::key::listed_token(token, spec.max_len))
            }
            (_, key) => key,
        }
    }
}

impl<B> KeyExtractor<Request<B>> for KeySpec {
    type Key = SpecKey;

    fn extract(&self, req: &Request<B>) -> Option<SpecKey> {
        match self {
            Self::Global => Some(SpecKey::Global),
            Self::PeerIp => PeerIp::new().extract(req).map(SpecKey::Ip),
            Self::ForwardedIp(spec) => spec.walk().extract(req).map(SpecKey::Ip),
            Self::Header(spec) => Header::new(spec.name.clone())
                .max_len(spec.max_len)
                .extract(req)
                .map(SpecKey::Header),
            Self::ApiKey { max_len } => ApiKey::new()
                .max_len(*max_len)
                .extract(req)
                .map(SpecKey::ApiKey),
            Self::ApiKeyHeader(spec) => ApiKey::new()
                .header_name(spec.name.clone())
                .max_len(spec.max_len)
                .extract(req)
                .map(SpecKey::ApiKey),
            Self::Bearer { max_len } => ApiKey::bearer()
                .max_len(*max_len)
                .extract(req)
                .map(SpecKey::ApiKey),
            Self::MethodPath => {
                let (method, route) = MethodPath.extract(req)?;
                Some(SpecKey::MethodPath(method, route))
            }
            Self::Authority => Authority.extract(req).map(SpecKey::Authority),
        }
    }

    #[inline]
    fn is_global(&self) -> bool {
        matches!(self, Self::Global)
    }

    fn detach(&self, key: SpecKey) -> SpecKey {
        match (self, key) {
            (Self::Header(spec), SpecKey::Header(value)) => {
                SpecKey::Header(<Header as KeyExtractor<Request<()>>>::detach(
                    &Header::new(spec.name.clone()),
                    value,
                ))
            }
            (_, SpecKey::ApiKey(token)) => SpecKey::ApiKey(
                <ApiKey as KeyExtractor<Request<()>>>::detach(&ApiKey::new(), token),
            ),
            (_, SpecKey::MethodPath(method, route)) => {
                let (method, route) =
                    <MethodPath as KeyExtractor<Request<()>>>::detach(&MethodPath, (method, route));
                SpecKey::MethodPath(method, route)
            }
            (_, SpecKey::Authority(authority)) => {
                SpecKey::Authority(<Authority as KeyExtractor<Request<()>>>::detach(
                    &Authority, authority,
                ))
            }
            (_, key) => key,
        }
    }
}

/// A [`Backoff`] in a configuration file, chosen by `kind`:
///
/// | TOML | backoff |
/// |---|---|
/// | `{ kind = "constant", base = "5s" }` | [`Backoff::constant`] |
/// | `{ kind = "linear", base = "5s", step = "10s" }` | [`Backoff::linear`] (`step` is `base` when left out) |
/// | `{ kind = "exponential", base = "5s", factor = 1.5 }` | [`Backoff::exponential`] (`factor` is 2 when left out, at least 1) |
///
/// Every kind also takes `max` (the cap, before jitter; no cap when left out) and `jitter`
/// ([`JitterSpec`]; none when left out). The table describes the whole backoff: what it leaves
/// out is [`Backoff`]'s own default, not a layer builder's (retry's default backoff has a 5 s
/// cap and full jitter): write `max` and `jitter` to keep them.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BackoffSpec {
    /// The same delay every time.
    #[non_exhaustive]
    Constant {
        /// The delay.
        base: ConfigDuration,
        /// The cap (it bounds decorrelated jitter).
        #[serde(default)]
        max: Option<ConfigDuration>,
        /// The jitter, after the cap.
        #[serde(default)]
        jitter: JitterSpec,
    },
    /// `base`, `base + step`, `base + 2 × step`, ...
    #[non_exhaustive]
    Linear {
        /// The first delay.
        base: ConfigDuration,
        /// The growth per step (`base` when left out).
        #[serde(default)]
        step: Option<ConfigDuration>,
        /// The cap on the grown delay, before jitter.
        #[serde(default)]
        max: Option<ConfigDuration>,
        /// The jitter, after the cap.
        #[serde(default)]
        jitter: JitterSpec,
    },
    /// `base`, `base × factor`, `base × factor²`, ...
    #[non_exhaustive]
    Exponential {
        /// The first delay.
        base: ConfigDuration,
        /// The growth factor (2 when left out; finite and at least 1).
        #[serde(default, deserialize_with = "factor")]
        factor: Option<f64>,
        /// The cap on the grown delay, before jitter.
        #[serde(default)]
        max: Option<ConfigDuration>,
        /// The jitter, after the cap.
        #[serde(default)]
        jitter: JitterSpec,
    },
}

impl BackoffSpec {
    /// The [`Backoff`] it describes.
    #[must_use]
    pub fn to_backoff(&self) -> Backoff {
        let (backoff, max, jitter) = match *self {
            Self::Constant { base, max, jitter } => (Backoff::constant(base.get()), max, jitter),
            Self::Linear {
                base,
                step,
                max,
                jitter,
            } => {
                let backoff = Backoff::linear(base.get());
                let backoff = step.map_or(backoff, |step| backoff.step(step.get()));
                (backoff, max, jitter)
            }
            Self::Exponential {
                base,
                factor,
                max,
                jitter,
            } => {
                let backoff = Backoff::exponential(base.get());
                (factor.map_or(backoff, |f| backoff.factor(f)), max, jitter)
            }
        };
        let backoff = max.map_or(backoff, |max| backoff.max(max.get()));
        backoff.jitter(jitter.get())
    }
}

/// An exponential backoff's factor: finite and at least 1.
fn factor<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let factor = f64::deserialize(deserializer)?;
    if factor.is_finite() && factor >= 1.0 {
        Ok(Some(factor))
    } else {
        Err(de::Error::custom(format_args!(
            "factor must be a finite number of at least 1, got {factor}"
        )))
    }
}

/// A backoff's [`Jitter`] in a configuration file: `"none"`, `"full"`, `"equal"`,
/// `"decorrelated"` or `{ proportional = 20 }` (a percentage, at most 100).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum JitterSpec {
    /// No randomness.
    #[default]
    None,
    /// Uniform between zero and the delay.
    Full,
    /// Uniform between half the delay and the delay.
    Equal,
    /// Uniform between `base` and three times the previous delay, capped.
    Decorrelated,
    /// Uniform within plus or minus this percentage of the delay.
    Proportional(#[serde(deserialize_with = "percent")] u8),
}

impl JitterSpec {
    /// The [`Jitter`] it names.
    #[must_use]
    pub const fn get(self) -> Jitter {
        match self {
            Self::None => Jitter::None,
            Self::Full => Jitter::Full,
            Self::Equal => Jitter::Equal,
            Self::Decorrelated => Jitter::Decorrelated,
            Self::Proportional(percent) => Jitter::Proportional(percent),
        }
    }
}

/// A whole percentage, 0 to 100.
fn percent<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    let percent = u64::deserialize(deserializer)?;
    u8::try_from(percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| {
            de::Error::custom(format_args!(
                "proportional jitter must be a percentage from 0 to 100, got {percent}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Settings {
        key: KeySpec,
    }

    fn spec(toml_text: &str) -> KeySpec {
        toml::from_str::<Settings>(toml_text)
            .unwrap_or_else(|e| panic!("{toml_text}: {e}"))
            .key
    }

    #[test]
    fn durations_parse_each_unit() {
        let d = |text| ConfigDuration::parse(text).map(ConfigDuration::get);
        assert_eq!(d("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d(" 1h "), Ok(Duration::from_secs(3_600)));
        assert_eq!(d("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_refuse_what_they_cannot_read() {
        for bad in [
            "", "s", "10", "10 s", "10x", "1.5s", "-1s", "10sec", "ms10", "1m30s",
        ] {
            assert_eq!(
                ConfigDuration::parse(bad),
                Err(DurationError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            ConfigDuration::parse("99999999999999999999s"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            ConfigDuration::parse("18446744073709551615h"),
            Err(DurationError::TooLarge)
        );
    }

    #[test]
    fn a_bad_duration_names_its_field_and_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            client: Inner,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            open_duration: ConfigDuration,
        }
        let err = toml::from_str::<Outer>("[client]\nopen_duration = \"5x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("open_duration"), "{text}");
        assert!(text.contains("invalid duration \"5x\""), "{text}");
        assert!(text.contains("us, ms, s, m, h or d"), "{text}");
        let err = toml::from_str::<Outer>("[client]\nopen_duration = 5\n").unwrap_err();
        assert!(err.to_string().contains("250ms"), "{err}");
    }

    #[test]
    fn every_key_spec_reads_and_extracts() {
        let mut req = Request::get("http://inventory:8080/items/7?x=1")
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.2")
            .header("x-tenant", "acme")
            .header("x-api-key", "k-123")
            .header("authorization", "Bearer t-456")
            .body(())
            .unwrap();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        req.extensions_mut().insert(peer);

        assert_eq!(
            spec(r#"key = "global""#).extract(&req),
            Some(SpecKey::Global)
        );
        assert_eq!(
            spec(r#"key = "peer_ip""#).extract(&req),
            Some(SpecKey::Ip("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            spec("key = { forwarded_ip = { trusted_proxies = 2 } }").extract(&req),
            Some(SpecKey::Ip("203.0.113.9".parse().unwrap()))
        );
        assert_eq!(
            spec(r#"key = { header = "x-tenant" }"#).extract(&req),
            Some(SpecKey::Header(HeaderValue::from_static("acme")))
        );
        let api = spec(r#"key = "api_key""#).extract(&req).unwrap();
        assert!(
            matches!(&api, SpecKey::ApiKey(t) if t.as_bytes() == b"k-123"),
            "{api:?}"
        );
        let api = spec(r#"key = { api_key_header = "x-tenant" }"#)
            .extract(&req)
            .unwrap();
        assert!(
            matches!(&api, SpecKey::ApiKey(t) if t.as_bytes() == b"acme"),
            "{api:?}"
        );
        let bearer = spec(r#"key = "bearer""#).extract(&req).unwrap();
        assert!(
            matches!(&bearer, SpecKey::ApiKey(t) if t.as_bytes() == b"t-456"),
            "{bearer:?}"
        );
        assert_eq!(
            spec(r#"key = "method_path""#).extract(&req),
            Some(SpecKey::MethodPath(
                Method::GET,
                RouteKey::from_static("/items/7")
            ))
        );
        assert_eq!(
            spec(r#"key = "authority""#).extract(&req),
            Some(SpecKey::Authority("inventory:8080".parse().unwrap()))
        );
        // Only `global` gives every request the same key: a keyed layer needs no map for it.
        let global = |text: &str| <KeySpec as KeyExtractor<Request<()>>>::is_global(&spec(text));
        assert!(global(r#"key = "global""#));
        assert!(!global(r#"key = "peer_ip""#));
        assert!(!global(r#"key = { header = "x-tenant" }"#));
    }

    #[test]
    fn a_missing_key_stays_missing_and_detach_keeps_the_key() {
        let req = Request::get("/").body(()).unwrap();
        let header = spec(r#"key = { header = "x-tenant" }"#);
        assert_eq!(header.extract(&req), None);
        assert_eq!(spec(r#"key = "api_key""#).extract(&req), None);
        let key = SpecKey::Header(HeaderValue::from_static("acme"));
        assert_eq!(
            KeyExtractor::<Request<()>>::detach(&header, key.clone()),
            key
        );
        let key = SpecKey::Authority("a:1".parse().unwrap());
        let authority = spec(r#"key = "authority""#);
        assert_eq!(
            KeyExtractor::<Request<()>>::detach(&authority, key.clone()),
            key
        );
    }

    #[test]
    fn bad_key_specs_are_refused_with_the_reason() {
        let err = toml::from_str::<Settings>(r#"key = { header = "bad header" }"#).unwrap_err();
        assert!(err.to_string().contains("not a valid header name"), "{err}");
        let err = toml::from_str::<Settings>(r#"key = "cookie""#).unwrap_err();
        assert!(err.to_string().contains("cookie"), "{err}");
        let err =
            toml::from_str::<Settings>("key = { forwarded_ip = { trusted = 1 } }").unwrap_err();
        assert!(err.to_string().contains("trusted"), "{err}");
    }

    /// #15.15: a configuration file sets how long a header value or API key may be before it is
    /// kept as its digest, for each of the header, API key and bearer forms; the short forms keep
    /// the default cap; bad settings are refused with the reason.
    #[test]
    fn header_and_api_key_specs_take_a_max_len() {
        let long = "k".repeat(100);
        let req = Request::get("/")
            .header("x-tenant", &long)
            .header("x-api-key", &long)
            .header("x-token", &long)
            .header("authorization", format!("Bearer {long}"))
            .body(())
            .unwrap();
        let len = |text: &str| match spec(text).extract(&req) {
            Some(SpecKey::Header(value)) => value.len(),
            Some(SpecKey::ApiKey(token)) => token.as_bytes().len(),
            other => panic!("{text}: {other:?}"),
        };
        let digest = crate::key::DIGESTED_KEY_LEN;
        for (text, expected) in [
            (r#"key = { header = "x-tenant" }"#, 100),
            (r#"key = { header = { name = "x-tenant" } }"#, 100),
            (
                r#"key = { header = { name = "x-tenant", max_len = 99 } }"#,
                digest,
            ),
            (
                r#"key = { header = { name = "x-tenant", max_len = 100 } }"#,
                100,
            ),
            (r#"key = "api_key""#, 100),
            ("key = { api_key = { max_len = 64 } }", digest),
            ("key = { api_key = {} }", 100),
            (
                r#"key = { api_key_header = { name = "x-token", max_len = 64 } }"#,
                digest,
            ),
            (r#"key = "bearer""#, 100),
            ("key = { bearer = { max_len = 99 } }", digest),
            ("key = { bearer = { max_len = 4096 } }", 100),
        ] {
            assert_eq!(len(text), expected, "{text}");
        }
        assert_eq!(spec(r#"key = "api_key""#), KeySpec::API_KEY);
        assert_eq!(
            spec("key = { bearer = { max_len = 7 } }"),
            KeySpec::Bearer { max_len: 7 }
        );
        assert_eq!(
            spec(r#"key = { api_key_header = "x-token" }"#),
            KeySpec::ApiKeyHeader(HeaderName::from_static("x-token").into())
        );

        for (text, reason) in [
            (
                r#"key = { header = { name = "bad header" } }"#,
                "not a valid header name",
            ),
            (r#"key = { header = { max_len = 9 } }"#, "name"),
            (r#"key = { header = { name = "x", max = 9 } }"#, "max"),
            ("key = { bearer = { max_len = -1 } }", "max_len"),
            ("key = { api_key = { len = 9 } }", "len"),
            (r#"key = "header""#, "needs a header name"),
            (r#"key = "forwarded_ip""#, "needs its proxies"),
            ("key = { peer_ip = {} }", "takes no settings"),
            (r#"key = { header = "x", bearer = {} }"#, "exactly one key"),
            ("key = {}", "names no key"),
            ("key = { cookie = {} }", "cookie"),
        ] {
            let err = toml::from_str::<Settings>(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    /// #15.11, #15.12: a configuration file names trusted proxies by address or network and
    /// the IPv6 key prefix; a direct client's headers are ignored.
    #[test]
    fn forwarded_ip_reads_a_trusted_set_and_an_ipv6_prefix() {
        let text = r#"key = { forwarded_ip = { trust = ["10.0.0.0/8", "2001:db8:ffff::1"], ipv6_prefix = 48 } }"#;
        let key = spec(text);
        let request = |peer: &str, xff: &str| {
            let mut req = Request::get("/")
                .header("x-forwarded-for", xff)
                .body(())
                .unwrap();
            req.extensions_mut()
                .insert(peer.parse::<SocketAddr>().unwrap());
            req
        };
        let ip = |text: &str| Some(SpecKey::Ip(text.parse().unwrap()));
        let via_proxy = request("10.0.0.1:1", "6.6.6.6, 203.0.113.7, 10.0.0.2");
        assert_eq!(key.extract(&via_proxy), ip("203.0.113.7"));
        let direct = request("198.51.100.9:1", "203.0.113.7");
        assert_eq!(key.extract(&direct), ip("198.51.100.9"));
        let v6 = request("[2001:db8:ffff::1]:1", "2001:db8:1:2::7");
        assert_eq!(key.extract(&v6), ip("2001:db8:1::"));

        let KeySpec::ForwardedIp(settings) = &key else {
            panic!("{key:?}")
        };
        let built = PeerIp::new()
            .trust(["10.0.0.0/8", "2001:db8:ffff::1"].map(|n| n.parse().unwrap()))
            .ipv6_prefix(48);
        assert_eq!(settings.to_peer_ip(), built);
        assert_eq!(
            built.extract(&via_proxy).map(SpecKey::Ip),
            key.extract(&via_proxy)
        );
        // Left out: no trust, /64.
        let plain = spec("key = { forwarded_ip = {} }");
        assert_eq!(plain, KeySpec::ForwardedIp(PeerIpSpec::default()));
        assert_eq!(plain.extract(&via_proxy), ip("10.0.0.1"));
    }

    #[test]
    fn bad_trusted_networks_and_prefixes_are_refused_with_the_rule() {
        for (text, rule) in [
            (
                r#"key = { forwarded_ip = { trust = ["10.0.0.0/33"] } }"#,
                "from 0 to 32",
            ),
            (
                r#"key = { forwarded_ip = { trust = ["::/200"] } }"#,
                "from 0 to 128",
            ),
            (
                r#"key = { forwarded_ip = { trust = ["proxy.internal"] } }"#,
                "not an IP network",
            ),
            (
                "key = { forwarded_ip = { ipv6_prefix = 31 } }",
                "from 32 to 128",
            ),
            (
                "key = { forwarded_ip = { ipv6_prefix = 129 } }",
                "from 32 to 128",
            ),
        ] {
            let err = toml::from_str::<Settings>(text).unwrap_err().to_string();
            assert!(err.contains(rule), "{text}: {err}");
        }
    }
}
