//! The deadline headers: `grpc-timeout` and weir's `x-timeout-ms`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::HeaderValue;

/// The largest `grpc-timeout` value: 8 digits.
const GRPC_MAX_VALUE: u64 = 99_999_999;

/// The largest `x-timeout-ms` value: 10 digits (about 115 days).
const TIMEOUT_MS_MAX: u64 = 9_999_999_999;

/// The `grpc-timeout` units, finest first, with their length in nanoseconds.
const GRPC_UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60_000_000_000),
    (b'H', 3_600_000_000_000),
];

/// Encodes a timeout as a `grpc-timeout` value.
///
/// The finest unit whose value fits in 8 digits is used, and the value is rounded down, so the
/// encoded timeout never exceeds `timeout` and loses less than one unit of the chosen unit: below
/// 100 ms (10^8 ns) the encoding is exact, in nanoseconds. Zero encodes as `0n`
/// ([`Deadline::write_headers`](crate::Deadline::write_headers) never sends it). A timeout beyond `99999999H` (about 11 400 years)
/// is clamped to `99999999H`.
///
/// ```
/// use std::time::Duration;
/// use weir_core::wire::encode_grpc_timeout;
///
/// assert_eq!(encode_grpc_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(encode_grpc_timeout(Duration::from_secs(3600)), "3600000m");
/// ```
#[must_use]
pub fn encode_grpc_timeout(timeout: Duration) -> HeaderValue {
    let nanos = timeout.as_nanos();
    for (unit, unit_nanos) in GRPC_UNITS {
        let value = nanos / u128::from(unit_nanos);
        if value <= u128::from(GRPC_MAX_VALUE) {
            // `value` fits in 8 digits, so in a u64.
            return ascii_header_value(u64::try_from(value).unwrap_or(GRPC_MAX_VALUE), Some(unit));
        }
    }
    ascii_header_value(GRPC_MAX_VALUE, Some(b'H'))
}

/// Decodes a `grpc-timeout` value: 1 to 8 ASCII digits, then one unit of `H M S m u n`, nothing
/// else (no sign, no space, no other character).
///
/// The gRPC protocol asks for a positive value; zero is accepted, as gRPC's Go and Java
/// implementations do, and means no time is left.
///
/// ```
/// use std::time::Duration;
/// use weir_core::wire::decode_grpc_timeout;
///
/// assert_eq!(decode_grpc_timeout(b"100m"), Ok(Duration::from_millis(100)));
/// assert!(decode_grpc_timeout(b"100").is_err());
/// ```
pub fn decode_grpc_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let invalid = |reason| InvalidTimeout::new("grpc-timeout", reason);
    let Some((&unit, digits)) = value.split_last() else {
        return Err(invalid("empty value"));
    };
    if unit.is_ascii_digit() {
        return Err(invalid("missing unit (one of H M S m u n)"));
    }
    let Some(&(_, unit_nanos)) = GRPC_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(invalid("unknown unit (expected one of H M S m u n)"));
    };
    let value = parse_digits(digits, 8).map_err(invalid)?;
    // At most 99_999_999 hours: about 3.6e20 ns, which needs u128, but the whole seconds fit a u64.
    let nanos = u128::from(value) * u128::from(unit_nanos);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

/// Encodes a timeout as an `x-timeout-ms` value: whole milliseconds, rounded down, at least 1 (so a
/// budget below one millisecond, zero included, encodes as `1`), at most `9999999999` (10 digits,
/// about 115 days).
///
/// ```
/// use std::time::Duration;
/// use weir_core::wire::encode_timeout_ms;
///
/// assert_eq!(encode_timeout_ms(Duration::from_micros(2999)), "2");
/// assert_eq!(encode_timeout_ms(Duration::from_micros(10)), "1");
/// ```
#[must_use]
pub fn encode_timeout_ms(timeout: Duration) -> HeaderValue {
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    ascii_header_value(millis.clamp(1, TIMEOUT_MS_MAX), None)
}

/// Decodes an `x-timeout-ms` value: 1 to 10 ASCII digits, in milliseconds, nothing else. Zero is
/// accepted and means no time is left.
///
/// ```
/// use std::time::Duration;
/// use weir_core::wire::decode_timeout_ms;
///
/// assert_eq!(decode_timeout_ms(b"1500"), Ok(Duration::from_millis(1500)));
/// assert!(decode_timeout_ms(b"1.5").is_err());
/// ```
pub fn decode_timeout_ms(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    parse_digits(value, 10)
        .map(Duration::from_millis)
        .map_err(|reason| InvalidTimeout::new("x-timeout-ms", reason))
}

/// Parses 1 to `max_digits` ASCII digits (`max_digits` <= 19, so the value fits a u64).
fn parse_digits(digits: &[u8], max_digits: usize) -> Result<u64, &'static str> {
    if digits.is_empty() {
        return Err("missing value");
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err("value must be ASCII digits only");
    }
    if digits.len() > max_digits {
        return Err(if max_digits == 8 {
            "more than 8 digits"
        } else {
            "more than 10 digits"
        });
    }
    Ok(digits
        .iter()
        .fold(0, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

/// A header value of the decimal digits of `n`, then `unit` if any, built on the stack.
fn ascii_header_value(mut n: u64, unit: Option<u8>) -> HeaderValue {
    // u64::MAX has 20 digits; one more byte for the unit.
    let mut buf = [0_u8; 21];
    let mut start = buf.len();
    if let Some(unit) = unit {
        start -= 1;
        buf[start] = unit;
    }
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&buf[start..])
        .expect("ASCII digits and a unit letter are a valid header value")
}

/// A `grpc-timeout` or `x-timeout-ms` value that does not follow its format; says which header and
/// what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTimeout {
    header: &'static str,
    reason: &'static str,
}

impl InvalidTimeout {
    const fn new(header: &'static str, reason: &'static str) -> Self {
        Self { header, reason }
    }
}

impl fmt::Display for InvalidTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}` value: {}", self.header, self.reason)
    }
}

impl StdError for InvalidTimeout {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(d: Duration) -> String {
        encode_grpc_timeout(d).to_str().unwrap().to_owned()
    }

    #[test]
    fn grpc_timeout_decodes_each_unit() {
        assert_eq!(decode_grpc_timeout(b"2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(decode_grpc_timeout(b"3M"), Ok(Duration::from_secs(180)));
        assert_eq!(decode_grpc_timeout(b"4S"), Ok(Duration::from_secs(4)));
        assert_eq!(decode_grpc_timeout(b"5m"), Ok(Duration::from_millis(5)));
        assert_eq!(decode_grpc_timeout(b"6u"), Ok(Duration::from_micros(6)));
        assert_eq!(decode_grpc_timeout(b"7n"), Ok(Duration::from_nanos(7)));
        assert_eq!(
            decode_grpc_timeout(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(
            decode_grpc_timeout(b"00000001S"),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(decode_grpc_timeout(b"0m"), Ok(Duration::ZERO));
    }

    #[test]
    fn grpc_timeout_encodes_with_the_finest_unit_that_fits() {
        assert_eq!(encode(Duration::from_nanos(1)), "1n");
        assert_eq!(encode(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(encode(Duration::from_nanos(100_000_000)), "100000u");
        assert_eq!(encode(Duration::from_nanos(100_000_999)), "100000u"); // rounded down
        assert_eq!(encode(Duration::from_secs(1)), "1000000u");
        assert_eq!(encode(Duration::from_secs(100)), "100000m");
        assert_eq!(encode(Duration::from_secs(100_000)), "100000S");
        assert_eq!(encode(Duration::from_secs(100_000_000)), "1666666M");
        assert_eq!(encode(Duration::from_secs(6_000_000_000)), "1666666H");
        assert_eq!(encode(Duration::from_secs(99_999_999 * 3600)), "99999999H");
        assert_eq!(encode(Duration::MAX), "99999999H");
        assert_eq!(encode(Duration::ZERO), "0n");
    }

    #[test]
    fn grpc_timeout_rejects_malformed_values() {
        for (value, reason) in [
            (&b""[..], "empty value"),
            (b"1", "missing unit (one of H M S m u n)"),
            (b"100", "missing unit (one of H M S m u n)"),
            (b"S", "missing value"),
            (b"10s", "unknown unit (expected one of H M S m u n)"),
            (b"10x", "unknown unit (expected one of H M S m u n)"),
            (b"10 ", "unknown unit (expected one of H M S m u n)"),
            (b"10m ", "unknown unit (expected one of H M S m u n)"),
            (b"123456789n", "more than 8 digits"),
            (b"-1S", "value must be ASCII digits only"),
            (b"+1S", "value must be ASCII digits only"),
            (b" 1S", "value must be ASCII digits only"),
            (b"1 S", "value must be ASCII digits only"),
            (b"1.5S", "value must be ASCII digits only"),
            ("١S".as_bytes(), "value must be ASCII digits only"),
            (b"1\xc3S", "value must be ASCII digits only"),
            (b"1\xb5", "unknown unit (expected one of H M S m u n)"),
        ] {
            let err = decode_grpc_timeout(value).unwrap_err();
            assert_eq!(err.reason, reason, "{value:?}");
            assert_eq!(
                err.to_string(),
                format!("invalid `grpc-timeout` value: {reason}")
            );
        }
    }

    #[test]
    fn timeout_ms_round_trips_and_rejects_malformed_values() {
        assert_eq!(decode_timeout_ms(b"1"), Ok(Duration::from_millis(1)));
        assert_eq!(
            decode_timeout_ms(b"9999999999"),
            Ok(Duration::from_millis(9_999_999_999))
        );
        assert_eq!(decode_timeout_ms(b"0"), Ok(Duration::ZERO));
        for value in [
            &b""[..],
            b"12345678901",
            b"-5",
            b"+5",
            b" 5",
            b"5 ",
            b"5ms",
            b"1e3",
            b"\xff",
        ] {
            assert!(decode_timeout_ms(value).is_err(), "{value:?}");
        }
        assert_eq!(
            decode_timeout_ms(b"5ms").unwrap_err().to_string(),
            "invalid `x-timeout-ms` value: value must be ASCII digits only"
        );

        assert_eq!(encode_timeout_ms(Duration::from_millis(1500)), "1500");
        assert_eq!(encode_timeout_ms(Duration::from_nanos(1_999_999)), "1");
        assert_eq!(encode_timeout_ms(Duration::ZERO), "1");
        assert_eq!(encode_timeout_ms(Duration::MAX), "9999999999");
    }

    proptest! {
        #[test]
        fn grpc_timeout_round_trip_loses_less_than_one_unit(
            nanos in 0_u128..=u128::from(GRPC_MAX_VALUE) * 3_600_000_000_000,
        ) {
            let d = Duration::new(
                u64::try_from(nanos / 1_000_000_000).unwrap(),
                u32::try_from(nanos % 1_000_000_000).unwrap(),
            );
            let encoded = encode_grpc_timeout(d);
            let bytes = encoded.as_bytes();
            prop_assert!((2..=9).contains(&bytes.len()), "{:?}", encoded);
            let decoded = decode_grpc_timeout(bytes).unwrap();
            prop_assert!(decoded <= d, "{:?} -> {:?} -> {:?}", d, encoded, decoded);
            let unit = bytes[bytes.len() - 1];
            let unit_nanos = GRPC_UNITS.iter().find(|(u, _)| *u == unit).unwrap().1;
            prop_assert!((d - decoded).as_nanos() < u128::from(unit_nanos));
            if nanos < 100_000_000 {
                prop_assert_eq!(decoded, d);
            }
        }

        #[test]
        fn grpc_timeout_small_values_round_trip_exactly(nanos in 0_u64..100_000_000) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(decode_grpc_timeout(encode_grpc_timeout(d).as_bytes()), Ok(d));
        }

        #[test]
        fn timeout_ms_round_trip_rounds_down(millis in 1_u64..=TIMEOUT_MS_MAX, extra in 0_u32..1_000_000) {
            let d = Duration::from_millis(millis) + Duration::from_nanos(u64::from(extra));
            prop_assert_eq!(
                decode_timeout_ms(encode_timeout_ms(d).as_bytes()),
                Ok(Duration::from_millis(millis))
            );
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(d) = decode_grpc_timeout(&bytes) {
                prop_assert!(d <= Duration::from_secs(GRPC_MAX_VALUE * 3600));
            }
            if let Ok(d) = decode_timeout_ms(&bytes) {
                prop_assert!(d <= Duration::from_millis(TIMEOUT_MS_MAX));
            }
        }

        #[test]
        fn grpc_looking_input_never_panics(text in "[0-9HMSmunx +-]{0,12}") {
            if let Ok(d) = decode_grpc_timeout(text.as_bytes()) {
                // Whatever decoded re-encodes to a value no larger.
                let again = decode_grpc_timeout(encode_grpc_timeout(d).as_bytes()).unwrap();
                prop_assert!(again <= d);
            }
        }
    }
}
