//! `grpc-retry-pushback-ms`: [`parse_grpc_pushback`] on arbitrary bytes, [`grpc_pushback_millis`]
//! on arbitrary durations.
//!
//! Properties:
//! - a value that parses to a wait writes back ([`grpc_pushback_millis`]) to a value that parses
//!   to the same wait; one that parses to "do not retry" is exactly a value that is not an
//!   optional `+` and digits (after trimming); only an empty (or all-whitespace) value is `None`;
//! - any duration writes a value that parses to a wait, never shorter than the duration when the
//!   duration is within `MAX_HINT` (it is rounded up), else `MAX_HINT`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weir_core::wire::{MAX_HINT, ServerHint, grpc_pushback_millis, parse_grpc_pushback};

fuzz_target!(|input: (u64, u32, &[u8])| {
    let (secs, nanos, value) = input;
    let trimmed_ows = trim_ows(value);
    match parse_grpc_pushback(value) {
        None => assert!(trimmed_ows.is_empty()),
        Some(ServerHint::DoNotRetry) => {
            let digits = trimmed_ows.strip_prefix(b"+").unwrap_or(trimmed_ows);
            assert!(digits.is_empty() || !digits.iter().all(u8::is_ascii_digit));
        }
        Some(ServerHint::RetryAfter(wait)) => {
            assert!(wait <= MAX_HINT);
            let written = grpc_pushback_millis(wait).to_string();
            assert_eq!(
                parse_grpc_pushback(written.as_bytes()),
                Some(ServerHint::RetryAfter(wait)),
                "{written}",
            );
        }
    }

    let after = Duration::new(secs, nanos % 1_000_000_000);
    let millis = grpc_pushback_millis(after);
    assert!(millis >= 0);
    let Some(ServerHint::RetryAfter(wait)) = parse_grpc_pushback(millis.to_string().as_bytes())
    else {
        panic!("{millis} is not a wait");
    };
    if after <= MAX_HINT {
        assert!(wait >= after, "{after:?} written as {millis}");
        assert!(wait - after < Duration::from_millis(1));
    } else {
        assert_eq!(wait, MAX_HINT);
    }
});

/// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}
