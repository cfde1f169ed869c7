//! Reading the `Idempotency-Key` header, and the two digests: the scope of a key and the
//! fingerprint of a request.

use std::hash::{Hash, Hasher};

use http::HeaderMap;
use http::request::Parts;
use sha1_smol::Sha1;
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
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
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

/// Feeds a `Hash` value into SHA-1: the client key's bytes, the same on every instance of one
/// build (std's `Hash` of strings, byte strings, integers and addresses writes their bytes).
struct Sha1Hasher<'a>(&'a mut Sha1);

impl Hasher for Sha1Hasher<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

/// The scope of a key: the client key (when the extractor found one) and the `Idempotency-Key`,
/// so one client never reaches another's responses.
pub(crate) fn scope<K: Hash>(client: Option<&K>, key: &[u8]) -> Digest {
    let mut sha = Sha1::new();
    match client {
        Some(client) => {
            sha.update(b"c");
            client.hash(&mut Sha1Hasher(&mut sha));
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
