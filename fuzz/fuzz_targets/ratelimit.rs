//! `RateLimit` and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): the strict and
//! lenient parsers on arbitrary bytes.
//!
//! Properties:
//! - every member the strict parsers yield, written back by [`RateLimitInfo::write_headers`]
//!   (`RateLimit: "name";r=R;t=T`, `RateLimit-Policy: "name";q=Q;w=W`), parses to the same
//!   member: same name, `r`, `t` (`t` absent is written `t=0`), `q`, `w` (`w=0` is left out);
//!   the writer does not write `qu` and `pk`. Lenient members are checked the same way when their
//!   name is printable ASCII;
//! - a strict name is printable ASCII (RFC 9651 strings and tokens are);
//! - on a list the strict parser accepts and yields members from, the lenient parser yields the
//!   same members (leniency only skips what is malformed).
#![no_main]

use std::time::Duration;

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use weir_core::wire::{
    HeaderStyle, RATELIMIT, RATELIMIT_POLICY, RateLimitInfo, RateLimitItem, RateLimitPolicyItem,
    parse_ratelimit, parse_ratelimit_lenient, parse_ratelimit_policy,
    parse_ratelimit_policy_lenient,
};

fuzz_target!(|value: &[u8]| {
    let strict: Vec<RateLimitItem<'_>> = parse_ratelimit(value).collect();
    let lenient: Vec<RateLimitItem<'_>> = parse_ratelimit_lenient(value).collect();
    for item in &strict {
        assert!(printable(item.name()), "{:?}", item.name());
        check_state(item);
    }
    for item in lenient.iter().filter(|item| printable(item.name())) {
        check_state(item);
    }
    if !strict.is_empty() {
        assert_eq!(strict, lenient);
    }

    let strict: Vec<RateLimitPolicyItem<'_>> = parse_ratelimit_policy(value).collect();
    let lenient: Vec<RateLimitPolicyItem<'_>> = parse_ratelimit_policy_lenient(value).collect();
    for item in &strict {
        assert!(printable(item.name()), "{:?}", item.name());
        check_policy(item);
    }
    for item in lenient.iter().filter(|item| printable(item.name())) {
        check_policy(item);
    }
    if !strict.is_empty() {
        assert_eq!(strict, lenient);
    }
});

/// `RateLimit`: written back and parsed again.
fn check_state(item: &RateLimitItem<'_>) {
    let name = unescape(item.name());
    let info = RateLimitInfo::new(name, 0, Duration::ZERO)
        .remaining(item.remaining())
        .reset(item.reset().unwrap_or_default());
    let mut headers = HeaderMap::new();
    info.write_headers(&mut headers, HeaderStyle::Ietf);
    let written = headers.get(RATELIMIT).expect("RateLimit written");
    let back: Vec<_> = parse_ratelimit(written.as_bytes()).collect();
    assert_eq!(back.len(), 1, "{written:?}");
    let back = back[0];
    assert_eq!(back.name(), expected_name(item.name()), "{written:?}");
    assert_eq!(back.remaining(), item.remaining(), "{written:?}");
    assert_eq!(
        back.reset(),
        Some(item.reset().unwrap_or_default()),
        "{written:?}"
    );
    assert_eq!(back.partition_key(), None);
}

/// `RateLimit-Policy`: written back and parsed again.
fn check_policy(item: &RateLimitPolicyItem<'_>) {
    let name = unescape(item.name());
    let info = RateLimitInfo::new(name, item.quota(), item.window().unwrap_or_default());
    let mut headers = HeaderMap::new();
    info.write_headers(&mut headers, HeaderStyle::Ietf);
    let written = headers
        .get(RATELIMIT_POLICY)
        .expect("RateLimit-Policy written");
    let back: Vec<_> = parse_ratelimit_policy(written.as_bytes()).collect();
    assert_eq!(back.len(), 1, "{written:?}");
    let back = back[0];
    assert_eq!(back.name(), expected_name(item.name()), "{written:?}");
    assert_eq!(back.quota(), item.quota(), "{written:?}");
    let window = item.window().filter(|w| !w.is_zero());
    assert_eq!(back.window(), window, "{written:?}");
    assert_eq!((back.quota_unit(), back.partition_key()), (None, None));
}

/// Printable ASCII: what an RFC 9651 string may hold.
fn printable(name: &str) -> bool {
    name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The name as written again: the writer writes `"default"` for an empty name.
fn expected_name(name: &str) -> &str {
    if name.is_empty() { "default" } else { name }
}

/// A name as the parser gives it (escapes as written) with its escapes undone: what the writer
/// is given, and escapes again.
fn unescape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
                continue;
            }
        }
        out.push(c);
    }
    out
}
