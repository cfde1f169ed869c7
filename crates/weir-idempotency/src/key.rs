//! Reading the `Idempotency-Key` header, and the two digests: the scope of a key and the
//! fingerprint of a request.

use http::HeaderMap;
use http::request::Parts;
use sha1_smol::Sha1;
use weir_core::key::StableKey;
use weir_core::wire::IDEMPOTENCY_KEY;

use crate::state::Digest;

/// Why a key was refused (a 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadKey {
    /// Empty, not visible ASCII, an unterminated or badly escaped string, or sent twice.
    Malformed,
    /// Longer than `max_key_len`.
    TooLong,
}

impl BadKey {
    pub(crate) const fn detail(self) -> &'static str {
        match self {
            Self::Malformed => {
                "the Idempotency-Key header must be one string of visible ASCII characters"
            }
            Self::TooLong => "the Idempotency-Key header is too long",
        }
    }
}

/// The request's `Idempotency-Key`: `Ok(None)` when it has none. Accepts the draft's form, a
/// structured-field string (`"8e03978e-40d5"`, quotes and escapes checked, the quoted bytes
/// kept), and the common bare form (`8e03978e-40d5`: visible ASCII, no spaces). Never panics.
pub(crate) fn read_key(headers: &HeaderMap, max_len: usize) -> Result<Option<&[u8]>, BadKey> {
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadKey::Malformed);
    }
    let bytes = value.as_bytes();
    let key = match bytes {
        [b'"', inner @ .., b'"'] if bytes.len() >= 2 => {
            let mut escaped = false;
            for &b in inner {
                if escaped {
                    if b != b'"' && b != b'\\' {
                        return Err(BadKey::Malformed);
                    }
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' || !(0x20..=0x7e).contains(&b) {
                    return Err(BadKey::Malformed);
                }
            }
            if escaped {
                return Err(BadKey::Malformed);
            }
            inner
        }
        _ => {
            if bytes
                .iter()
                .any(|b| !(0x21..=0x7e).contains(b) || *b == b'"')
            {
                return Err(BadKey::Malformed);
            }
            bytes
        }
    };
    if key.is_empty() {
        return Err(BadKey::Malformed);
    }
    if key.len() > max_len {
        return Err(BadKey::TooLong);
    }
    Ok(Some(key))
}

/// The scope of a key: SHA-1 over the client key's [`StableKey`] bytes (when the extractor
/// found one) and the `Idempotency-Key`, so one client never reaches another's responses:
///
/// - with a client key: `SHA-1("c" ‖ u64be(len(client)) ‖ client ‖ u64be(len(key)) ‖ key)`;
/// - without one, or with the one key of a zero-sized type (`()`, from the default `Global`:
///   every client in one scope): `SHA-1("-" ‖ u64be(len(key)) ‖ key)`.
///
/// Fixed bytes in, a fixed digest out: every instance and every version finds the same entry
/// (a fleet shares them through Redis). The lengths keep `("ab", "c")` and `("a", "bc")` apart.
pub(crate) fn scope<K: StableKey>(client: Option<&K>, key: &[u8]) -> Digest {
    let mut sha = Sha1::new();
    match client.filter(|_| size_of::<K>() != 0) {
        Some(client) => {
            // Off the plain path: a request with a key allocates anyway.
            let mut bytes = Vec::new();
            client.write_key(&mut bytes);
            sha.update(b"c");
            sha.update(&(bytes.len() as u64).to_be_bytes());
            sha.update(&bytes);
        }
        None => sha.update(b"-"),
    }
    sha.update(&(key.len() as u64).to_be_bytes());
    sha.update(key);
    Digest(sha.digest().bytes())
}

/// The fingerprint of a request, started with its method and its path and query; the body is
/// fed as it streams ([`Fingerprint::update`]).
#[derive(Clone)]
pub(crate) struct Fingerprint(Sha1);

impl Fingerprint {
    pub(crate) fn start(parts: &Parts) -> Self {
        let mut sha = Sha1::new();
        sha.update(parts.method.as_str().as_bytes());
        sha.update(b" ");
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        sha.update(target.as_bytes());
        sha.update(b"\n");
        Self(sha)
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    pub(crate) fn finish(&self) -> Digest {
        Digest(self.0.digest().bytes())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprint").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn key_of(raw: &[u8]) -> Result<Option<Vec<u8>>, BadKey> {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(raw) {
            headers.insert(IDEMPOTENCY_KEY, v);
        }
        read_key(&headers, 16).map(|k| k.map(<[u8]>::to_vec))
    }

    #[test]
    fn both_forms_are_read_and_malformed_ones_refused() {
        assert_eq!(key_of(b"abc-123").unwrap().unwrap(), b"abc-123");
        assert_eq!(key_of(b"\"abc 123\"").unwrap().unwrap(), b"abc 123");
        assert_eq!(key_of(b"\"a\\\"b\"").unwrap().unwrap(), b"a\\\"b");
        assert_eq!(key_of(b"a b"), Err(BadKey::Malformed));
        assert_eq!(key_of(b"\"\""), Err(BadKey::Malformed));
        assert_eq!(key_of(b"\"abc"), Err(BadKey::Malformed));
        assert_eq!(key_of(b"\"a\\x\""), Err(BadKey::Malformed));
        assert_eq!(key_of(b"\"a\\\""), Err(BadKey::Malformed));
        assert_eq!(key_of(b"0123456789abcdefg"), Err(BadKey::TooLong));
        let mut headers = HeaderMap::new();
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert_eq!(read_key(&headers, 16), Err(BadKey::Malformed));
        assert_eq!(read_key(&HeaderMap::new(), 16), Ok(None));
    }

    #[test]
    fn scopes_keep_clients_apart() {
        assert_ne!(scope(Some(&"alice"), b"k"), scope(Some(&"bob"), b"k"));
        assert_ne!(scope(Some(&"alice"), b"k"), scope(None::<&&str>, b"k"));
        assert_eq!(scope(Some(&"alice"), b"k"), scope(Some(&"alice"), b"k"));
        assert_ne!(scope(Some(&"ab"), b"c"), scope(Some(&"a"), b"bc"));
    }

    /// The scope is a fixed digest of fixed bytes, the same on every instance, platform and
    /// Rust version: SHA-1 of `c`, `u64be(5)`, `alice`, `u64be(8)`, `order-42` (computed
    /// independently: `printf 'c\0\0\0\0\0\0\0\x05alice\0\0\0\0\0\0\0\x08order-42' | sha1sum`);
    /// without a client key, SHA-1 of `-`, `u64be(8)`, `order-42`.
    #[test]
    fn a_scope_is_a_documented_digest() {
        assert_eq!(
            scope(Some(&"alice"), b"order-42").to_hex(),
            "bcc401874a272a2102c44ccad9601c34d2f3eea7"
        );
        let shared = "06147d6db6c90165c0177665f6095d3ff2f9f809";
        assert_eq!(scope(None::<&&str>, b"order-42").to_hex(), shared);
        assert_eq!(
            scope(Some(&()), b"order-42").to_hex(),
            shared,
            "Global: one scope"
        );
    }

    proptest! {
        /// Whatever bytes a client sends, reading the key never panics, and what it accepts is
        /// non-empty and within the bound.
        #[test]
        fn any_header_value_is_read_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(Some(key)) = key_of(&raw) {
                prop_assert!(!key.is_empty() && key.len() <= 16);
            }
        }
    }
}
