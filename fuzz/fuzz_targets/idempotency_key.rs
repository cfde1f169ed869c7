//! The `Idempotency-Key` header as weir-idempotency reads it, on arbitrary header values.
//!
//! Properties, against a model written from the reader's documentation (the draft's
//! structured-field string, RFC 8941 `sf-string`, or the common bare form):
//! - no header: no key; two headers: malformed;
//! - a value is a key exactly when it is a non-empty `sf-string` (`"` ... `"`, printable ASCII
//!   inside, `\` only before `"` or `\`), whose key is the bytes between the quotes as sent, or
//!   a non-empty bare token of visible ASCII with no `"`, whose key is the value; any other value
//!   is malformed, and a well-formed key longer than `max_len` is too long;
//! - a key is within `1..=max_len` bytes, printable ASCII, and round-trips: written back between
//!   quotes it reads as the same key (a bare key with a `\` excepted: the quoted bytes are kept
//!   as sent, so `a\b` bare and `"a\\b"` quoted are two keys), and, with no space, `"` or `\`
//!   in it, written back bare too; one byte less room and it is too long.
#![no_main]

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use weir_core::wire::IDEMPOTENCY_KEY;
use weir_idempotency::fuzzing::read_key;

#[derive(Arbitrary, Debug)]
struct Input {
    values: Vec<Vec<u8>>,
    max_len: u16,
}

/// What the model says of one value: the key, or `Err(too_long)`.
fn model(value: &[u8], max_len: usize) -> Result<&[u8], bool> {
    let key = if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
        let inner = &value[1..value.len() - 1];
        let mut i = 0;
        while i < inner.len() {
            match inner[i] {
                b'\\' => {
                    if !matches!(inner.get(i + 1), Some(b'"' | b'\\')) {
                        return Err(false);
                    }
                    i += 2;
                }
                b'"' => return Err(false),
                0x20..=0x7e => i += 1,
                _ => return Err(false),
            }
        }
        inner
    } else {
        if value
            .iter()
            .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'"')
        {
            return Err(false);
        }
        value
    };
    if key.is_empty() {
        return Err(false);
    }
    if key.len() > max_len {
        return Err(true);
    }
    Ok(key)
}

fn headers(values: &[&[u8]]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(
            IDEMPOTENCY_KEY,
            HeaderValue::from_bytes(value).expect("header bytes"),
        );
    }
    headers
}

fuzz_target!(|input: Input| {
    let max_len = usize::from(input.max_len % 4096) + 1;
    let values: Vec<&[u8]> = input
        .values
        .iter()
        .take(3)
        .map(Vec::as_slice)
        .filter(|v| HeaderValue::from_bytes(v).is_ok())
        .collect();
    let map = headers(&values);
    let read = read_key(&map, max_len);
    match values.as_slice() {
        [] => assert_eq!(read, Ok(None)),
        [value] => {
            let expected = model(value, max_len).map(Some);
            assert_eq!(read, expected, "{:?}", String::from_utf8_lossy(value));
        }
        _ => assert_eq!(read, Err(false), "two headers are malformed"),
    }
    let Ok(Some(key)) = read else { return };
    assert!(!key.is_empty() && key.len() <= max_len);
    assert!(key.iter().all(|b| (0x20..=0x7e).contains(b)));

    // Written back as a structured-field string: the same key. A key read from a string is
    // kept escaped, so it always can be; a bare key only without a `\` (`a\b` and `"a\\b"`
    // are two keys: the quoted bytes are kept as sent, not unescaped).
    let was_quoted = values.len() == 1 && values[0].first() == Some(&b'"');
    let mut quoted = Vec::with_capacity(key.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(key);
    quoted.push(b'"');
    if was_quoted || !key.contains(&b'\\') {
        let map = headers(&[&quoted]);
        assert_eq!(read_key(&map, max_len), Ok(Some(key)), "quoted again");
        // One byte less room: too long.
        assert_eq!(
            read_key(&map, key.len() - 1),
            Err(true),
            "one byte less room"
        );
    }
    // Bare, when it can be.
    if !key.iter().any(|b| matches!(b, b' ' | b'"' | b'\\')) {
        let map = headers(&[key]);
        assert_eq!(read_key(&map, max_len), Ok(Some(key)), "bare again");
    }
});
