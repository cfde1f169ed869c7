//! `grpc-timeout`: [`decode_grpc_timeout`] on arbitrary bytes, [`encode_grpc_timeout`] on
//! arbitrary durations.
//!
//! Properties:
//! - a value that decodes re-encodes to a value that decodes to the same duration (exactly: the
//!   encoder's finest fitting unit divides the decoded unit), and that encoding is canonical
//!   (encoding its decoding gives it back);
//! - any duration encodes to a value that decodes, never to more than the duration, losing less
//!   than one unit of the unit written (or clamped at `99999999H`).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weir_core::wire::{decode_grpc_timeout, encode_grpc_timeout};

/// `99999999H`.
const MAX: Duration = Duration::from_secs(99_999_999 * 3600);

fuzz_target!(|input: (u64, u32, &[u8])| {
    let (secs, nanos, value) = input;
    if let Ok(decoded) = decode_grpc_timeout(value) {
        let encoded = encode_grpc_timeout(decoded);
        assert_eq!(
            decode_grpc_timeout(encoded.as_bytes()),
            Ok(decoded),
            "{encoded:?}"
        );
        assert_eq!(encode_grpc_timeout(decoded), encoded);
    }

    let timeout = Duration::new(secs, nanos % 1_000_000_000);
    let encoded = encode_grpc_timeout(timeout);
    let bytes = encoded.as_bytes();
    assert!((2..=9).contains(&bytes.len()), "{encoded:?}");
    let back = decode_grpc_timeout(bytes).expect("an encoded timeout decodes");
    assert!(back <= timeout, "{timeout:?} encoded as {encoded:?}, more");
    let unit = match bytes[bytes.len() - 1] {
        b'n' => Duration::from_nanos(1),
        b'u' => Duration::from_micros(1),
        b'm' => Duration::from_millis(1),
        b'S' => Duration::from_secs(1),
        b'M' => Duration::from_secs(60),
        b'H' => Duration::from_secs(3600),
        other => panic!("unit {other}"),
    };
    if timeout <= MAX {
        assert!(timeout - back < unit, "{timeout:?} encoded as {encoded:?}");
    } else {
        assert_eq!(back, MAX);
    }
    // Exact below 100 ms.
    if timeout < Duration::from_millis(100) {
        assert_eq!(back, timeout);
    }
});
