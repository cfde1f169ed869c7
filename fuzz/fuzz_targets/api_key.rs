//! API-key and bearer extraction ([`ApiKey`], [`Header`]) on arbitrary header values.
//!
//! Properties, against a model written from the extractors' documentation:
//! - [`ApiKey`] gives the API-key header's value without surrounding whitespace when that is not
//!   empty (refused, with no fallback, past `max_len`), else (when bearer is on) the token of
//!   `Authorization: Bearer <token>` (scheme case-insensitive, whitespace around the token
//!   ignored), else nothing;
//! - a token it gives is never empty, has no surrounding whitespace, is at most `max_len` bytes,
//!   survives `detach`, and is the same key sent the other way (`x-api-key: t` and
//!   `Authorization: Bearer t`);
//! - [`Header`] gives the whole first value when it is not blank and at most `max_len` bytes.
#![no_main]

use arbitrary::Arbitrary;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use weir_core::KeyExtractor;
use weir_core::key::{ApiKey, ApiKeyToken, Header};
use weir_core::wire::X_API_KEY;

#[derive(Arbitrary, Debug)]
struct Input {
    api_key: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    /// `ApiKey::new()`, `ApiKey::bearer()` or `ApiKey::new().without_bearer()`.
    mode: u8,
    max_len: u16,
}

fuzz_target!(|input: Input| {
    let max_len = usize::from(input.max_len % 1024);
    let (header_on, bearer_on) = match input.mode % 3 {
        0 => (true, true),
        1 => (false, true),
        _ => (true, false),
    };
    let extractor = match input.mode % 3 {
        0 => ApiKey::new(),
        1 => ApiKey::bearer(),
        _ => ApiKey::new().without_bearer(),
    }
    .max_len(max_len);

    let api_key = input
        .api_key
        .as_deref()
        .and_then(|v| HeaderValue::from_bytes(v).ok());
    let authorization = input
        .authorization
        .as_deref()
        .and_then(|v| HeaderValue::from_bytes(v).ok());
    let mut req = Request::new(());
    if let Some(value) = &api_key {
        req.headers_mut().insert(X_API_KEY, value.clone());
    }
    if let Some(value) = &authorization {
        req.headers_mut().insert(AUTHORIZATION, value.clone());
    }

    let key = extractor.extract(&req);
    let expected = model(
        header_on
            .then_some(api_key.as_ref())
            .flatten()
            .map(HeaderValue::as_bytes),
        bearer_on
            .then_some(authorization.as_ref())
            .flatten()
            .map(HeaderValue::as_bytes),
        max_len,
    );
    assert_eq!(key.as_ref().map(ApiKeyToken::as_bytes), expected.as_deref());

    if let Some(key) = key {
        let token = key.as_bytes().to_vec();
        assert!(!token.is_empty() && token.len() <= max_len);
        assert_eq!(token.trim_ascii(), &token[..]);
        assert_eq!(
            KeyExtractor::<Request<()>>::detach(&extractor, key.clone()),
            key
        );
        let value = HeaderValue::from_bytes(&token).expect("a token is header bytes");
        assert_eq!(ApiKeyToken::from(value.clone()), key);
        // The same key sent the other way.
        let as_header = Request::builder()
            .header(X_API_KEY, value)
            .body(())
            .unwrap();
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(&token);
        let as_bearer = Request::builder()
            .header(AUTHORIZATION, bearer)
            .body(())
            .unwrap();
        let both = ApiKey::new().max_len(max_len);
        assert_eq!(both.extract(&as_header).as_ref(), Some(&key));
        assert_eq!(both.extract(&as_bearer).as_ref(), Some(&key));
    }

    // `Header`: the whole value.
    let header = Header::new(X_API_KEY).max_len(max_len);
    let expected = api_key
        .clone()
        .filter(|v| v.len() <= max_len && !v.as_bytes().trim_ascii().is_empty());
    assert_eq!(header.extract(&req), expected);
});

/// What the documentation says `ApiKey` gives.
fn model(api_key: Option<&[u8]>, authorization: Option<&[u8]>, max_len: usize) -> Option<Vec<u8>> {
    let capped = |token: &[u8]| (token.len() <= max_len).then(|| token.to_vec());
    if let Some(value) = api_key {
        let token = value.trim_ascii();
        if !token.is_empty() {
            return capped(token);
        }
    }
    let value = authorization?.trim_ascii();
    let space = value.iter().position(|&b| b == b' ' || b == b'\t')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return None;
    }
    capped(token)
}
