//! [`Header`] and [`ApiKey`]: keys a client writes, capped in length (a longer key is kept as its
//! digest).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;

use http::Request;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::KeyExtractor;
use crate::wire::X_API_KEY;

/// The longest key [`Header`] and [`ApiKey`] accept by default: 512 bytes.
///
/// A client chooses these keys, and a keyed layer keeps every key it stores (up to its
/// `max_keys`) for as long as the key is in use: without a cap, one client sending 64 KiB keys
/// pins 64 KiB per key. 512 bytes holds API keys, UUIDs, tenant names and short bearer tokens
/// with room to spare, and bounds the key bytes a full map of 100 000 keys holds at about 50 MB.
/// A longer key is kept as its digest, [`DIGESTED_KEY_LEN`] bytes (see the extractors): it is
/// still its client's own key, and what a client sends never sizes what the layer holds. Raise
/// the cap with `max_len` to keep longer keys verbatim.
pub const DEFAULT_MAX_KEY_LEN: usize = 512;

/// The length of the key an over-long [`Header`] value or [`ApiKey`] token is kept as: 37 bytes,
/// `sha1:` and the first 128 bits of the SHA-1 of the value's bytes in hex.
///
/// The digest is the same on every instance and every build (no process-random hash), so a
/// fleet sharing state in Redis counts an over-long key as one key. A client that wanted to share
/// another client's digested key would have to send that client's key (SHA-1 second preimages
/// are out of reach), which it could do anyway.
pub const DIGESTED_KEY_LEN: usize = DIGEST_PREFIX.len() + 32;

/// What a digested key starts with.
const DIGEST_PREFIX: &[u8] = b"sha1:";

/// `bytes` (an over-long key, part of `value`) as the fixed-size key it is kept under (see
/// [`DIGESTED_KEY_LEN`]), as sensitive as `value`.
fn digested(value: &HeaderValue, bytes: &[u8]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(bytes).digest().bytes();
    let mut text = [0_u8; DIGESTED_KEY_LEN];
    text[..DIGEST_PREFIX.len()].copy_from_slice(DIGEST_PREFIX);
    for (pair, byte) in text[DIGEST_PREFIX.len()..].chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    // Lowercase hex and a colon: always a valid header value.
    let mut key =
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("sha1:"));
    key.set_sensitive(value.is_sensitive());
    key
}

/// The key a listed header value is kept under by an extractor capped at `max_len`: the value
/// itself up to `max_len` bytes, its digest past it, exactly as [`Header`] keeps a request's
/// value. Configuration that lists keys verbatim (tiers assigned to keys, named partitions)
/// goes through it, so a listed key over the cap still matches its requests.
pub(crate) fn listed_value(value: HeaderValue, max_len: usize) -> HeaderValue {
    if value.len() > max_len {
        digested(&value, value.as_bytes())
    } else {
        value
    }
}

/// As [`listed_value`], for an API key token, exactly as [`ApiKey`] keeps a request's token
/// (its length counted without surrounding whitespace).
pub(crate) fn listed_token(token: ApiKeyToken, max_len: usize) -> ApiKeyToken {
    if token.as_bytes().len() <= max_len {
        return token;
    }
    let key = digested(&token.value, token.as_bytes());
    let range = 0..key.len();
    ApiKeyToken::new(key, range)
}

/// The value of one header. Key: [`HeaderValue`].
///
/// The first line counts when the header appears more than once. The key is missing when the
/// header is absent or empty (only whitespace). A value longer than [`max_len`](Self::max_len)
/// ([`DEFAULT_MAX_KEY_LEN`], 512 bytes, by default) is kept as its digest
/// ([`DIGESTED_KEY_LEN`] bytes): still a key of its own, so a client sending long values keeps
/// its own limit and never reaches the state of key-less requests, and what it sends never sizes
/// what a keyed layer holds. The key space is whatever clients send: keep keyed state bounded
/// (every weir keyed layer does) and prefer a header your own gateway sets.
///
/// ```
/// use http::{HeaderName, Request};
/// use weir_core::KeyExtractor;
/// use weir_core::key::Header;
///
/// let tenant = Header::new(HeaderName::from_static("x-tenant"));
/// let req = Request::builder().header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(tenant.extract(&req).unwrap(), "acme");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    name: HeaderName,
    max_len: usize,
}

impl Header {
    /// Keys requests by the value of the header `name`, of at most [`DEFAULT_MAX_KEY_LEN`] bytes.
    #[must_use]
    pub const fn new(name: HeaderName) -> Self {
        Self {
            name,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Keeps values of at most `bytes` bytes (the whole value, whitespace included) as they are;
    /// a longer one is kept as its digest ([`DIGESTED_KEY_LEN`] bytes).
    #[must_use]
    pub const fn max_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// The header read.
    #[must_use]
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The key this extractor produces for a request whose header holds `value`: `value`
    /// itself up to [`max_len`](Self::max_len) bytes, its digest past it. Use it to name a key
    /// in configuration written in code (a bulkhead's named partition, a tier assigned to a
    /// key): a key listed verbatim above the cap would never match the digest a request gets.
    ///
    /// ```
    /// use http::{HeaderName, HeaderValue, Request};
    /// use weir_core::KeyExtractor;
    /// use weir_core::key::Header;
    ///
    /// let tenant = Header::new(HeaderName::from_static("x-tenant")).max_len(8);
    /// let long = HeaderValue::from_static("a-tenant-name-of-many-bytes");
    /// let req = Request::builder().header("x-tenant", long.clone()).body(()).unwrap();
    /// assert_eq!(tenant.extract(&req), Some(tenant.listed(long)));
    /// ```
    #[must_use]
    pub fn listed(&self, value: HeaderValue) -> HeaderValue {
        listed_value(value, self.max_len)
    }
}

impl<B> KeyExtractor<Request<B>> for Header {
    type Key = HeaderValue;

    fn extract(&self, req: &Request<B>) -> Option<HeaderValue> {
        let value = req.headers().get(&self.name)?;
        if value.as_bytes().trim_ascii().is_empty() {
            None
        } else if value.len() > self.max_len {
            Some(digested(value, value.as_bytes()))
        } else {
            Some(value.clone())
        }
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

/// The API key a client sends. Key: [`ApiKeyToken`].
///
/// [`ApiKey::new()`] reads the `x-api-key` header and, when it is absent or empty, the token of
/// `Authorization: Bearer <token>` (the scheme is case-insensitive, whitespace around the token
/// is ignored). [`ApiKey::bearer()`] reads only the bearer token,
/// [`header_name`](Self::header_name) changes the header, and
/// [`without_bearer`](Self::without_bearer) turns the bearer fallback off. The same key sent
/// either way is the same key.
///
/// A token longer than [`max_len`](Self::max_len) ([`DEFAULT_MAX_KEY_LEN`], 512 bytes, by
/// default) is kept as its digest ([`DIGESTED_KEY_LEN`] bytes; the same token sent either way is
/// still one key): a long JWT keeps a limit of its own, never the key-less requests' shared
/// one, and what a client sends never sizes what a keyed layer holds. The key space is whatever
/// clients send: a limiter in front of authentication keys on invented tokens too, so keep keyed
/// state bounded (every weir keyed layer does) or key after authentication.
///
/// ```
/// use http::Request;
/// use weir_core::KeyExtractor;
/// use weir_core::key::ApiKey;
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
    max_len: usize,
}

impl ApiKey {
    /// The `x-api-key` header, else the `Authorization: Bearer` token.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            header: Some(X_API_KEY),
            bearer: true,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Only the `Authorization: Bearer` token.
    #[must_use]
    pub const fn bearer() -> Self {
        Self {
            header: None,
            bearer: true,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Reads the API key from the header `name` instead of `x-api-key` (the bearer fallback, if
    /// on, still applies).
    #[must_use]
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Keeps tokens of at most `bytes` bytes (without surrounding whitespace) as they are; a
    /// longer one is kept as its digest ([`DIGESTED_KEY_LEN`] bytes).
    #[must_use]
    pub const fn max_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// Ignores `Authorization: Bearer`; only the API key header counts.
    #[must_use]
    pub fn without_bearer(mut self) -> Self {
        self.bearer = false;
        self
    }

    /// The key this extractor produces for a request carrying `token`: the token itself up to
    /// [`max_len`](Self::max_len) bytes, its digest past it (see [`Header::listed`]).
    #[must_use]
    pub fn listed(&self, token: ApiKeyToken) -> ApiKeyToken {
        listed_token(token, self.max_len)
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
                return self.capped(value, range);
            }
        }
        if !self.bearer {
            return None;
        }
        let value = headers.get(AUTHORIZATION)?;
        let range = bearer_token(value.as_bytes())?;
        self.capped(value, range)
    }

    fn detach(&self, key: ApiKeyToken) -> ApiKeyToken {
        key.detached()
    }
}

impl ApiKey {
    /// The token at `range` of `value`, or its digest when it is longer than the cap.
    fn capped(&self, value: &HeaderValue, range: Range<usize>) -> Option<ApiKeyToken> {
        if range.len() <= self.max_len {
            return Some(ApiKeyToken::new(value.clone(), range));
        }
        let bytes = value.as_bytes().get(range)?;
        let key = digested(value, bytes);
        let token = 0..key.len();
        Some(ApiKeyToken::new(key, token))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::MethodPath;
    use crate::key::test_util::request;

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

    /// A key listed verbatim in configuration is kept as the request's key is: verbatim up to
    /// the cap, its digest past it, so a listed key over the cap still matches its requests.
    #[test]
    fn listed_keys_are_kept_as_the_extractors_keep_a_requests_key() {
        let long = "t".repeat(DEFAULT_MAX_KEY_LEN + 1);
        let value = HeaderValue::from_str(&long).expect("valid");
        let tenant = Header::new(HeaderName::from_static("x-tenant"));
        let req = request(None, &[("x-tenant", &long)]);
        let listed = tenant.listed(value.clone());
        assert_eq!(listed.len(), DIGESTED_KEY_LEN);
        assert_eq!(tenant.extract(&req), Some(listed));
        // At the cap, and under a raised cap, the key stays verbatim.
        let raised = tenant.max_len(long.len());
        assert_eq!(raised.listed(value.clone()), value);
        assert_eq!(raised.extract(&req), Some(value.clone()));

        let token = ApiKeyToken::from(value);
        let by_key = ApiKey::new();
        for req in [
            request(None, &[("x-api-key", &long)]),
            request(None, &[("authorization", &format!("Bearer  {long} "))]),
        ] {
            let extracted = by_key.extract(&req).expect("a key");
            assert_eq!(extracted.as_bytes().len(), DIGESTED_KEY_LEN);
            assert_eq!(by_key.listed(token.clone()), extracted);
        }
        let short = ApiKeyToken::from(HeaderValue::from_static("k-1"));
        assert_eq!(by_key.listed(short.clone()).as_bytes(), b"k-1");
        assert_eq!(
            by_key.max_len(2).listed(short).as_bytes().len(),
            DIGESTED_KEY_LEN
        );
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

    /// #15.15: a client cannot make a keyed layer hold arbitrarily long keys, and an over-long
    /// key is not a missing key (which would put it in the key-less requests' shared state): a
    /// header value or token longer than the cap is kept as its fixed-size digest, one key per
    /// distinct value, the same on every call.
    #[test]
    fn over_long_keys_are_kept_as_digests() {
        let long = "k".repeat(64 * 1024);
        let at_cap = "k".repeat(DEFAULT_MAX_KEY_LEN);
        let over = "k".repeat(DEFAULT_MAX_KEY_LEN + 1);
        let other = format!("{over}x");
        let tenant = Header::new(HeaderName::from_static("x-tenant"));
        let header = |value: &str| tenant.extract(&request(None, &[("x-tenant", value)]));
        let digest = header(&long).expect("an over-long value is a key");
        assert_eq!(digest.len(), DIGESTED_KEY_LEN);
        assert!(digest.as_bytes().starts_with(b"sha1:"), "{digest:?}");
        assert_eq!(header(&long), Some(digest.clone()));
        let over_key = header(&over).expect("a key");
        assert_eq!(over_key.len(), DIGESTED_KEY_LEN);
        assert_ne!(over_key, digest);
        assert_ne!(header(&other), Some(over_key));
        assert_eq!(header(&at_cap).map(|v| v.len()), Some(DEFAULT_MAX_KEY_LEN));
        // Deterministic across processes and builds: a fleet sharing state agrees.
        assert_eq!(
            header(&"a".repeat(600)).expect("a key"),
            "sha1:201b1862ded23937082498eacf684801"
        );
        let short = tenant.clone().max_len(4);
        assert_eq!(
            short.extract(&request(None, &[("x-tenant", "acme")])),
            Some(HeaderValue::from_static("acme"))
        );
        assert_eq!(
            short
                .extract(&request(None, &[("x-tenant", "acme2")]))
                .map(|v| v.len()),
            Some(DIGESTED_KEY_LEN)
        );

        let api_key = ApiKey::new();
        let key = |name: &'static str, value: &str| {
            api_key
                .extract(&request(None, &[(name, value)]))
                .map(|k| k.as_bytes().len())
        };
        assert_eq!(key("x-api-key", &long), Some(DIGESTED_KEY_LEN));
        assert_eq!(key("x-api-key", &over), Some(DIGESTED_KEY_LEN));
        assert_eq!(key("x-api-key", &at_cap), Some(DEFAULT_MAX_KEY_LEN));
        // The cap is on the token, not the surrounding whitespace or the scheme.
        assert_eq!(
            key("authorization", &format!("Bearer  {at_cap} ")),
            Some(DEFAULT_MAX_KEY_LEN)
        );
        // The same over-long token sent either way is one key, and a digest stays secret.
        let token = |name: &'static str, value: &str| {
            api_key
                .extract(&request(None, &[(name, value)]))
                .expect("a key")
        };
        let by_header = token("x-api-key", &over);
        assert_eq!(token("authorization", &format!("Bearer {over}")), by_header);
        assert_eq!(token("x-api-key", &format!(" {over} ")), by_header);
        assert_ne!(token("x-api-key", &other), by_header);
        let debug = format!("{by_header:?}");
        assert!(!debug.contains("kkkk"), "{debug}");
        assert_eq!(
            KeyExtractor::<Request<()>>::detach(&api_key, by_header.clone()),
            by_header
        );
        // An over-long header key does not fall back to a bearer token: no way around the cap.
        let both = request(
            None,
            &[
                ("x-api-key", over.as_str()),
                ("authorization", "Bearer k-2"),
            ],
        );
        assert_eq!(api_key.extract(&both), Some(by_header));
        let longer = ApiKey::bearer().max_len(64 * 1024);
        let jwt = request(None, &[("authorization", &format!("Bearer {long}"))]);
        assert_eq!(
            longer.extract(&jwt).map(|k| k.as_bytes().len()),
            Some(64 * 1024)
        );
    }
}
