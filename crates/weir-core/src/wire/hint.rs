//! What a server says about retrying: `Retry-After`, gRPC retry pushback and the `t` of an IETF
//! `RateLimit` field, parsed without allocating and without ever panicking on what a peer sends.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::ratelimit::parse_ratelimit;
use super::sf::trim_ows;
use super::{GRPC_RETRY_PUSHBACK_MS, RATELIMIT};

/// What a server said about retrying.
///
/// Read from a response with [`server_hint`], or from one header with [`parse_retry_after`] and
/// [`parse_grpc_pushback`]. A delay is never longer than [`MAX_HINT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerHint {
    /// Retry, but not before this much time has passed (at most [`MAX_HINT`]).
    RetryAfter(Duration),
    /// Do not retry at all (gRPC pushback with a negative or unreadable value).
    DoNotRetry,
}

/// The longest delay weir takes from a server: one day.
///
/// Every hint is capped at this value, whatever its source (`Retry-After` seconds or date,
/// `grpc-retry-pushback-ms`, the `t` of a `RateLimit` field), so a broken or hostile server cannot
/// park a client for years, and arithmetic on a hint cannot overflow.
pub const MAX_HINT: Duration = Duration::from_secs(86_400);

/// Parses a `Retry-After` value (RFC 9110, section 10.2.3) into the delay it asks for, counted
/// from `now`.
///
/// - delay-seconds, `1*DIGIT` and nothing else: that many seconds. A number too large for
///   [`MAX_HINT`] (even one too large for a `u64`) is capped at [`MAX_HINT`], not rejected.
/// - an HTTP-date in any of the three RFC 9110 formats (IMF-fixdate, RFC 850, asctime): the time
///   from `now` until that date, capped at [`MAX_HINT`]; a date at or before `now` gives
///   [`Duration::ZERO`] (retry at once). The two-digit year of an RFC 850 date follows RFC 9110's
///   rule (section 5.6.7): it is the year with those last two digits that is at most 50 years
///   after `now`'s year and less than 50 before it, so `01-Jan-70` read in 2069 is 2070, not 1970.
///
/// Whitespace (space and tab) around the value is ignored. Anything else (an empty value, a sign,
/// a fraction, a unit, a malformed date) gives `None`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use weir_core::wire::{MAX_HINT, parse_retry_after};
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 06 Nov 1994 08:49:37
/// assert_eq!(parse_retry_after(b"120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after(b"Sun, 06 Nov 1994 08:50:07 GMT", now),
///     Some(Duration::from_secs(30)),
/// );
/// assert_eq!(parse_retry_after(b"99999999999999999999999", now), Some(MAX_HINT));
/// assert_eq!(parse_retry_after(b"-1", now), None);
/// ```
#[must_use]
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = trim_ows(value);
    if value.is_empty() {
        return None;
    }
    if value.iter().all(u8::is_ascii_digit) {
        // Saturating: a number past u64::MAX is still "longer than MAX_HINT".
        let secs = value.iter().fold(0_u64, |acc, &digit| {
            acc.saturating_mul(10)
                .saturating_add(u64::from(digit - b'0'))
        });
        return Some(Duration::from_secs(secs).min(MAX_HINT));
    }
    let date = match rfc850_as_imf_fixdate(value, now) {
        Some(imf) => httpdate::parse_http_date(std::str::from_utf8(&imf).ok()?).ok()?,
        None => httpdate::parse_http_date(std::str::from_utf8(value).ok()?).ok()?,
    };
    let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_HINT))
}

/// An RFC 850 date (`Sunday, 06-Nov-94 08:49:37 GMT`) rewritten as the IMF-fixdate it means
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), its year chosen by RFC 9110's 50-year rule against `now`;
/// `None` when `value` does not have the RFC 850 shape (it is then parsed as it is).
///
/// `httpdate` reads a two-digit year with a fixed pivot (00-69: 20xx, 70-99: 19xx), which RFC
/// 9110 replaces with a window that moves with the clock. The rewrite lets `httpdate` still
/// check everything else, the weekday against the year included.
fn rfc850_as_imf_fixdate(value: &[u8], now: SystemTime) -> Option<[u8; 29]> {
    const WEEKDAYS: [&[u8]; 7] = [
        b"Monday",
        b"Tuesday",
        b"Wednesday",
        b"Thursday",
        b"Friday",
        b"Saturday",
        b"Sunday",
    ];
    let comma = value.iter().position(|&b| b == b',')?;
    let (weekday, rest) = value.split_at(comma);
    // ", 06-Nov-94 08:49:37 GMT"
    if !WEEKDAYS.contains(&weekday) || rest.len() != 24 || rest.get(4) != Some(&b'-') {
        return None;
    }
    let yy = rest.get(9..11)?;
    if rest.get(8) != Some(&b'-') || !yy.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let yy = u64::from(yy[0] - b'0') * 10 + u64::from(yy[1] - b'0');
    let this_year = civil_year(now);
    let mut year = this_year - this_year % 100 + yy;
    if year > this_year + 50 {
        year -= 100;
    } else if year + 50 <= this_year {
        year += 100;
    }
    if !(1000..=9999).contains(&year) {
        return None;
    }
    let mut imf = *b"Mon, 00 Jan 0000 00:00:00 GMT";
    imf[..3].copy_from_slice(weekday.get(..3)?);
    imf[5..7].copy_from_slice(rest.get(2..4)?); // day
    imf[8..11].copy_from_slice(rest.get(5..8)?); // month
    let digits = [year / 1000, year / 100 % 10, year / 10 % 10, year % 10];
    for (slot, digit) in imf[12..16].iter_mut().zip(digits) {
        *slot = b'0' + u8::try_from(digit).ok()?;
    }
    imf[16..].copy_from_slice(rest.get(11..)?); // " 08:49:37 GMT"
    Some(imf)
}

/// The (proleptic Gregorian, UTC) year of `time`; 1970 for times before the epoch.
fn civil_year(time: SystemTime) -> u64 {
    let days = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400);
    // Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400;
    if mp >= 10 { year + 1 } else { year }
}

/// Parses a `grpc-retry-pushback-ms` value, as gRFC A6 (client retries) defines it.
///
/// gRFC A6: "The value is to be an ASCII encoded signed 32-bit integer with no unnecessary leading
/// zeros that represents how many milliseconds to wait before sending a retry. If the value for
/// pushback is negative or unparseble, then it will be seen as the server asking the client not
/// to retry at all." weir follows that wording:
///
/// - a non-negative `i32` (an optional `+`, ASCII digits; leading zeros are tolerated, as gRPC
///   Java does): [`ServerHint::RetryAfter`] that many milliseconds, capped at [`MAX_HINT`]
///   (`i32::MAX` ms is about 24.8 days);
/// - a non-negative integer past `i32::MAX` (only digits, after an optional `+`):
///   [`ServerHint::RetryAfter`] of [`MAX_HINT`]. gRFC A6 calls it unparseable, but its sender
///   clearly asks for a long wait (grpc-go reads it into a 64-bit integer as one), and reading it
///   as "never retry" would turn a wait into a permanent failure. weir itself never writes one:
///   [`grpc_pushback_millis`] clamps to `i32::MAX`;
/// - a negative number and anything that is not an integer: [`ServerHint::DoNotRetry`].
///
/// Whitespace (space and tab) around the value is ignored. An empty value is the one case read as
/// no pushback at all (`None`): it carries nothing to follow, so the caller's own retry policy
/// decides.
///
/// ```
/// use std::time::Duration;
/// use weir_core::wire::{ServerHint, parse_grpc_pushback};
///
/// assert_eq!(
///     parse_grpc_pushback(b"250"),
///     Some(ServerHint::RetryAfter(Duration::from_millis(250))),
/// );
/// assert_eq!(parse_grpc_pushback(b"-1"), Some(ServerHint::DoNotRetry));
/// assert_eq!(parse_grpc_pushback(b"soon"), Some(ServerHint::DoNotRetry));
/// ```
#[must_use]
pub fn parse_grpc_pushback(value: &[u8]) -> Option<ServerHint> {
    let value = trim_ows(value);
    if value.is_empty() {
        return None;
    }
    let digits = value.strip_prefix(b"+").unwrap_or(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Some(ServerHint::DoNotRetry);
    }
    // Saturating: a number past u64::MAX is still "longer than MAX_HINT".
    let millis = digits.iter().fold(0_u64, |acc, &digit| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(ServerHint::RetryAfter(
        Duration::from_millis(millis).min(MAX_HINT),
    ))
}

/// The `grpc-retry-pushback-ms` value weir writes for a wait of `after`: whole milliseconds,
/// rounded up (never less than the wait), and at most `i32::MAX` (about 24.8 days), the largest
/// value gRFC A6 allows, so that every gRPC client reads it as a wait and not as "do not retry".
///
/// ```
/// use std::time::Duration;
/// use weir_core::wire::{ServerHint, grpc_pushback_millis, parse_grpc_pushback};
///
/// assert_eq!(grpc_pushback_millis(Duration::from_micros(1_500)), 2);
/// let month = Duration::from_secs(30 * 86_400);
/// assert_eq!(grpc_pushback_millis(month), i32::MAX);
/// let written = grpc_pushback_millis(month).to_string();
/// assert!(matches!(parse_grpc_pushback(written.as_bytes()), Some(ServerHint::RetryAfter(_))));
/// ```
#[must_use]
pub fn grpc_pushback_millis(after: Duration) -> i32 {
    let millis = after.as_millis() + u128::from(!after.subsec_nanos().is_multiple_of(1_000_000));
    i32::try_from(millis).unwrap_or(i32::MAX)
}

/// Reads `grpc-retry-pushback-ms` first, then `Retry-After`, then an IETF `RateLimit` field whose
/// remaining is 0 (its reset `t`). None if no usable hint.
///
/// In detail, the first of these that gives a hint wins:
///
/// 1. `grpc-retry-pushback-ms` (first value), read by [`parse_grpc_pushback`]: a present but
///    unreadable value is [`ServerHint::DoNotRetry`], as gRFC A6 says.
/// 2. `Retry-After` (first value), read by [`parse_retry_after`] against `now`; an unreadable value
///    is ignored.
/// 3. every `RateLimit` field line, read by [`parse_ratelimit`]: among the policies with `r=0` and a
///    reset `t`, the longest `t` (the client has to wait for all of its exhausted policies).
///    Policies with quota left, or without `t`, give no hint.
///
/// Every delay is capped at [`MAX_HINT`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use weir_core::wire::{ServerHint, server_hint};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit", r#""burst";r=0;t=3, "daily";r=900;t=40000"#.parse().unwrap());
/// assert_eq!(
///     server_hint(&headers, SystemTime::now()),
///     Some(ServerHint::RetryAfter(Duration::from_secs(3))),
/// );
///
/// headers.insert("retry-after", "7".parse().unwrap());
/// assert_eq!(
///     server_hint(&headers, SystemTime::now()),
///     Some(ServerHint::RetryAfter(Duration::from_secs(7))),
/// );
/// ```
#[must_use]
pub fn server_hint(headers: &HeaderMap, now: SystemTime) -> Option<ServerHint> {
    if let Some(hint) = headers
        .get(GRPC_RETRY_PUSHBACK_MS)
        .and_then(|value| parse_grpc_pushback(value.as_bytes()))
    {
        return Some(hint);
    }
    if let Some(wait) = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|value| parse_retry_after(value.as_bytes(), now))
    {
        return Some(ServerHint::RetryAfter(wait));
    }
    headers
        .get_all(RATELIMIT)
        .iter()
        .flat_map(|value| parse_ratelimit(value.as_bytes()))
        .filter(|item| item.remaining() == 0)
        .filter_map(|item| item.reset())
        .max()
        .map(|reset| ServerHint::RetryAfter(reset.min(MAX_HINT)))
}
