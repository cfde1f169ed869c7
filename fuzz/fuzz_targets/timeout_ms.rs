//! `x-timeout-ms`: [`decode_timeout_ms`] on arbitrary bytes, [`encode_timeout_ms`] on arbitrary
//! durations.
//!
//! Properties:
//! - a value that decodes to `d` re-encodes to a value that decodes to `d` (to 1 ms for `0`: the
//!   encoder writes at least `1`);
//! - any duration encodes to a value that decodes to its whole milliseconds, clamped to
//!   `1..=9999999999` ms.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weir_core::wire::{decode_timeout_ms, encode_timeout_ms};

const MAX_MS: u64 = 9_999_999_999;

fuzz_target!(|input: (u64, u32, &[u8])| {
    let (secs, nanos, value) = input;
    if let Ok(decoded) = decode_timeout_ms(value) {
        assert_eq!(decoded.subsec_nanos() % 1_000_000, 0);
        let encoded = encode_timeout_ms(decoded);
        let expected = decoded.max(Duration::from_millis(1));
        assert_eq!(
            decode_timeout_ms(encoded.as_bytes()),
            Ok(expected),
            "{encoded:?}"
        );
    }

    let timeout = Duration::new(secs, nanos % 1_000_000_000);
    let encoded = encode_timeout_ms(timeout);
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    assert_eq!(
        decode_timeout_ms(encoded.as_bytes()),
        Ok(Duration::from_millis(millis.clamp(1, MAX_MS))),
        "{timeout:?} encoded as {encoded:?}",
    );
});
