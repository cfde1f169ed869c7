//! What a server says about retrying: `Retry-After`, gRPC retry pushback and the IETF `RateLimit`
//! fields, parsed without allocating and without ever panicking on what a peer sends.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

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

/// The gRPC pushback metadata key (gRFC A6).
const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// The IETF `RateLimit` field (draft-ietf-httpapi-ratelimit-headers).
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

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
/// use weir_core::{MAX_HINT, parse_retry_after};
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
/// use weir_core::{ServerHint, parse_grpc_pushback};
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
/// use weir_core::{ServerHint, grpc_pushback_millis, parse_grpc_pushback};
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
/// use weir_core::{ServerHint, server_hint};
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

/// One member of an IETF `RateLimit` field: the state of one quota policy, as in
/// `RateLimit: "default";r=0;t=30` (draft-ietf-httpapi-ratelimit-headers).
///
/// Borrowed from the field value; produced by [`parse_ratelimit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitItem<'a> {
    name: &'a str,
    remaining: u64,
    reset: Option<u64>,
    partition_key: Option<&'a str>,
}

impl<'a> RateLimitItem<'a> {
    /// The policy name, as written between the quotes (the escapes `\"` and `\\`, if any, are left
    /// as they are). A bare token name (`default;r=0`, the syntax of older drafts) is accepted too.
    #[must_use]
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The `r` parameter: quota units left in the current window.
    #[must_use]
    pub const fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The `t` parameter: time until more quota is available, in whole seconds, if the server sent
    /// it. Not capped: [`server_hint`] caps it at [`MAX_HINT`].
    #[must_use]
    pub const fn reset(&self) -> Option<Duration> {
        match self.reset {
            Some(secs) => Some(Duration::from_secs(secs)),
            None => None,
        }
    }

    /// The `pk` parameter (partition key), still base64-encoded as on the wire, without its colons.
    #[must_use]
    pub const fn partition_key(&self) -> Option<&'a str> {
        self.partition_key
    }
}

/// One member of an IETF `RateLimit-Policy` field: one quota policy, as in
/// `RateLimit-Policy: "burst";q=100;w=60` (draft-ietf-httpapi-ratelimit-headers).
///
/// Borrowed from the field value; produced by [`parse_ratelimit_policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitPolicyItem<'a> {
    name: &'a str,
    quota: u64,
    window: Option<u64>,
    quota_unit: Option<&'a str>,
    partition_key: Option<&'a str>,
}

impl<'a> RateLimitPolicyItem<'a> {
    /// The policy name, as written between the quotes (escapes left as they are); a bare token is
    /// accepted too.
    #[must_use]
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The `q` parameter: quota units allowed per window.
    #[must_use]
    pub const fn quota(&self) -> u64 {
        self.quota
    }

    /// The `w` parameter: the window, in whole seconds, if the server sent it.
    #[must_use]
    pub const fn window(&self) -> Option<Duration> {
        match self.window {
            Some(secs) => Some(Duration::from_secs(secs)),
            None => None,
        }
    }

    /// The `qu` parameter: what the quota counts (`"request"`, `"content-bytes"`, `"concurrency"`),
    /// if the server said; the draft's default is requests.
    #[must_use]
    pub const fn quota_unit(&self) -> Option<&'a str> {
        self.quota_unit
    }

    /// The `pk` parameter (partition key), still base64-encoded as on the wire, without its colons.
    #[must_use]
    pub const fn partition_key(&self) -> Option<&'a str> {
        self.partition_key
    }
}

/// Parses one `RateLimit` field value (a Structured Field List, RFC 9651) into its members, lazily
/// and without allocating.
///
/// The value must be a well-formed List as RFC 9651 defines it (section 4.2: "if parsing fails,
/// the entire field value is ignored"): one syntax error anywhere (a stray word, a space before a
/// `;`, an integer of more than 15 digits, an unterminated string, a trailing comma) and nothing
/// is yielded, not even the members before it. [`parse_ratelimit_lenient`] is the opt-in that
/// skips malformed members instead.
///
/// Of a well-formed list, a member is yielded when it is an item named by a string (or a token),
/// with an `r` parameter that is a non-negative integer; `t` must then be a non-negative integer
/// and `pk` a byte sequence if present. Other members (an inner list, an item without `r`, with a
/// negative `r`, ...) are valid Structured Fields that mean nothing here: each is skipped alone.
/// Unknown parameters are ignored; when a parameter repeats, the last one wins. For a field sent
/// on several lines, call this once per line (or on the lines joined with `,`, as RFC 9651 does).
///
/// ```
/// use std::time::Duration;
/// use weir_core::parse_ratelimit;
///
/// let mut items = parse_ratelimit(br#""burst";r=0;t=30, "daily";r=12"#);
/// let burst = items.next().unwrap();
/// assert_eq!((burst.name(), burst.remaining()), ("burst", 0));
/// assert_eq!(burst.reset(), Some(Duration::from_secs(30)));
/// let daily = items.next().unwrap();
/// assert_eq!((daily.name(), daily.remaining(), daily.reset()), ("daily", 12, None));
/// assert!(items.next().is_none());
///
/// // A malformed list is ignored whole.
/// assert_eq!(parse_ratelimit(br#""burst";r=0;t=30, junk junk"#).count(), 0);
/// ```
pub fn parse_ratelimit(value: &[u8]) -> impl Iterator<Item = RateLimitItem<'_>> {
    Members::new(value, Mode::Strict).filter_map(ratelimit_item)
}

/// [`parse_ratelimit`], lenient: a malformed member is skipped and parsing goes on after the next
/// comma that is not inside a string, and whitespace before a `;` is allowed.
///
/// RFC 9651 asks for the whole field to be ignored instead; this is for servers known to write
/// slightly broken fields, when keeping their well-formed members is worth more than the
/// standard's all-or-nothing rule. Opt in knowingly: a member after a syntax error may not be
/// what the server meant.
///
/// ```
/// use weir_core::{parse_ratelimit, parse_ratelimit_lenient};
///
/// let value = br#""burst";r=0;t=30, junk junk, "daily" ;r=12"#;
/// assert_eq!(parse_ratelimit(value).count(), 0);
/// let names: Vec<_> = parse_ratelimit_lenient(value).map(|item| item.name()).collect();
/// assert_eq!(names, ["burst", "daily"]);
/// ```
pub fn parse_ratelimit_lenient(value: &[u8]) -> impl Iterator<Item = RateLimitItem<'_>> {
    Members::new(value, Mode::Lenient).filter_map(ratelimit_item)
}

fn ratelimit_item(member: Member<'_>) -> Option<RateLimitItem<'_>> {
    let (mut r, mut t, mut pk) = (None, None, None);
    for (key, value) in member.params() {
        match key {
            b"r" => r = Some(value),
            b"t" => t = Some(value),
            b"pk" => pk = Some(value),
            _ => {}
        }
    }
    Some(RateLimitItem {
        name: member.name,
        remaining: r?.non_negative()?,
        reset: optional(t, Bare::non_negative)?,
        partition_key: optional(pk, Bare::bytes)?,
    })
}

/// Parses one `RateLimit-Policy` field value (a Structured Field List, RFC 9651) into its members,
/// lazily and without allocating.
///
/// As [`parse_ratelimit`]: a malformed list gives nothing ([`parse_ratelimit_policy_lenient`] is
/// the opt-in that skips malformed members). Of a well-formed list, a member is yielded when it is
/// an item named by a string (or a token), with a `q` parameter that is a non-negative integer;
/// `w` must then be a non-negative integer, `qu` a string and `pk` a byte sequence if present.
/// Unknown parameters are ignored; when a parameter repeats, the last one wins. For a field sent
/// on several lines, call this once per line.
///
/// ```
/// use std::time::Duration;
/// use weir_core::parse_ratelimit_policy;
///
/// let value = br#""burst";q=100;w=60, "daily";q=1000;w=86400;qu="request""#;
/// let policies: Vec<_> = parse_ratelimit_policy(value)
///     .map(|p| (p.name(), p.quota(), p.window(), p.quota_unit()))
///     .collect();
/// assert_eq!(policies, [
///     ("burst", 100, Some(Duration::from_secs(60)), None),
///     ("daily", 1000, Some(Duration::from_secs(86_400)), Some("request")),
/// ]);
/// ```
pub fn parse_ratelimit_policy(value: &[u8]) -> impl Iterator<Item = RateLimitPolicyItem<'_>> {
    Members::new(value, Mode::Strict).filter_map(policy_item)
}

/// [`parse_ratelimit_policy`], lenient: malformed members are skipped, as
/// [`parse_ratelimit_lenient`] does (and with the same caveat).
pub fn parse_ratelimit_policy_lenient(
    value: &[u8],
) -> impl Iterator<Item = RateLimitPolicyItem<'_>> {
    Members::new(value, Mode::Lenient).filter_map(policy_item)
}

fn policy_item(member: Member<'_>) -> Option<RateLimitPolicyItem<'_>> {
    let (mut q, mut w, mut qu, mut pk) = (None, None, None, None);
    for (key, value) in member.params() {
        match key {
            b"q" => q = Some(value),
            b"w" => w = Some(value),
            b"qu" => qu = Some(value),
            b"pk" => pk = Some(value),
            _ => {}
        }
    }
    Some(RateLimitPolicyItem {
        name: member.name,
        quota: q?.non_negative()?,
        window: optional(w, Bare::non_negative)?,
        quota_unit: optional(qu, Bare::string)?,
        partition_key: optional(pk, Bare::bytes)?,
    })
}

/// `Some(None)` for an absent parameter, `Some(Some(v))` for a good one, `None` for a bad one
/// (which makes the whole member invalid).
fn optional<'a, T>(param: Option<Bare<'a>>, read: fn(Bare<'a>) -> Option<T>) -> Option<Option<T>> {
    match param {
        None => Some(None),
        Some(value) => read(value).map(Some),
    }
}

/// Strips optional whitespace (space, horizontal tab) from both ends.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

// A small Structured Field (RFC 9651) List parser, strict by default: enough for lists of items
// whose bare items are strings or tokens and whose parameters are integers, strings, tokens and
// byte sequences. Every other RFC 9651 type (decimals, booleans, dates, display strings, inner
// lists) is parsed too, so that a well-formed list is recognised as such, and then skipped.
//
// Why not the `sfv` crate (measured against sfv 0.14 with a counting allocator, issue #15.14):
// these fields are read on a client, from responses, never on a server's request path, at most
// once per failed attempt. Allocations per parse of `"burst";r=0;t=30, "daily";r=900;t=40000`:
// this parser 0, `sfv::Parser::parse::<List>` 11 (6 for one member), sfv's visitor API 0; with a
// `pk` parameter the visitor allocates 1 (it hands out decoded bytes), with an escaped name 2
// (an owned string). This parser allocates nothing in every case, because it borrows names and
// `pk` as written. Time per parse on the 2-core development machine: this parser about 0.5 µs
// for one member (it runs the list twice in strict mode: check, then iterate), sfv's visitor
// about 0.3 µs, `parse::<List>` about 0.9 µs; all negligible next to the response they read.
// Kept: it allocates nothing on any input, its lazy borrowed iterator API (`RateLimitItem<'a>`)
// would not survive sfv's push-style visitor without a buffer or an API change, and it saves
// the dependency (sfv brings base64 and ref-cast). Revisit if weir ever parses other
// Structured Fields.

/// How [`Members`] treats a malformed list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// RFC 9651: a malformed list is ignored whole.
    Strict,
    /// Skip a malformed member, resume after the next comma; whitespace before `;` allowed.
    Lenient,
}

/// A bare item, as far as these fields need one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bare<'a> {
    Integer(i64),
    String(&'a str),
    Token(&'a str),
    Bytes(&'a str),
    /// A decimal, boolean, date or display string: well-formed, but not used here.
    Other,
}

impl<'a> Bare<'a> {
    fn non_negative(self) -> Option<u64> {
        match self {
            Self::Integer(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    fn string(self) -> Option<&'a str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    fn bytes(self) -> Option<&'a str> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// A well-formed list member that is an item named by a string or token: its name and its
/// (already validated) parameters.
struct Member<'a> {
    name: &'a str,
    params: &'a [u8],
    mode: Mode,
}

impl<'a> Member<'a> {
    fn params(&self) -> Params<'a> {
        Params {
            input: self.params,
            pos: 0,
            mode: self.mode,
        }
    }
}

/// The named items of a list: every member of a well-formed list in strict mode (none of a
/// malformed one), the well-formed members in lenient mode.
struct Members<'a> {
    input: &'a [u8],
    pos: usize,
    mode: Mode,
}

impl<'a> Members<'a> {
    fn new(input: &'a [u8], mode: Mode) -> Self {
        let input = trim_ows(input);
        let mut members = Self {
            input,
            pos: 0,
            mode,
        };
        // Strict: one pass to check the whole list first (no allocation), so that a syntax
        // error after the first members still hides them.
        if mode == Mode::Strict && !Self::well_formed(input) {
            members.pos = input.len();
        }
        members
    }

    /// RFC 9651 section 4.2.1, parsing a List: `member *( OWS "," OWS member )`, no trailing
    /// comma.
    fn well_formed(input: &[u8]) -> bool {
        let mut pos = 0;
        while pos < input.len() {
            if parse_member(input, &mut pos, Mode::Strict).is_err() {
                return false;
            }
            skip_ows(input, &mut pos);
            match input.get(pos) {
                None => return true,
                Some(b',') => {
                    pos += 1;
                    skip_ows(input, &mut pos);
                    if pos >= input.len() {
                        return false; // a trailing comma
                    }
                }
                Some(_) => return false,
            }
        }
        true
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            skip_ows(self.input, &mut self.pos);
            if self.input.get(self.pos) == Some(&b',') {
                self.pos += 1; // a separator (checked already, in strict mode)
                continue;
            }
            if self.pos >= self.input.len() {
                return None;
            }
            let start = self.pos;
            let parsed = parse_member(self.input, &mut self.pos, self.mode);
            skip_ows(self.input, &mut self.pos);
            let at_separator = matches!(self.input.get(self.pos), None | Some(b','));
            match parsed {
                Ok(member) if at_separator => {
                    if let Some(member) = member {
                        return Some(member);
                    }
                }
                _ if self.mode == Mode::Strict => {
                    // Unreachable after `well_formed`; stop rather than guess.
                    self.pos = self.input.len();
                    return None;
                }
                _ => self.pos = resync(self.input, start),
            }
        }
    }
}

/// Parses one list member: `bare-item parameters` or `inner-list parameters`. `Ok(None)` for a
/// well-formed member that is not an item named by a string or token.
fn parse_member<'a>(
    input: &'a [u8],
    pos: &mut usize,
    mode: Mode,
) -> Result<Option<Member<'a>>, ()> {
    if input.get(*pos) == Some(&b'(') {
        parse_inner_list(input, pos, mode).ok_or(())?;
        return Ok(None);
    }
    let name = parse_bare(input, pos).ok_or(())?;
    let params_start = *pos;
    let mut params = Params {
        input,
        pos: *pos,
        mode,
    };
    while let Some(param) = params.parse_next() {
        param.ok_or(())?;
    }
    let params_bytes = input.get(params_start..params.pos).ok_or(())?;
    *pos = params.pos;
    Ok(match name {
        Bare::String(name) | Bare::Token(name) => Some(Member {
            name,
            params: params_bytes,
            mode,
        }),
        _ => None,
    })
}

/// `inner-list = "(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters`, skipped.
fn parse_inner_list(input: &[u8], pos: &mut usize, mode: Mode) -> Option<()> {
    *pos += 1;
    loop {
        while input.get(*pos) == Some(&b' ') {
            *pos += 1;
        }
        if input.get(*pos)? == &b')' {
            *pos += 1;
            break;
        }
        parse_bare(input, pos)?;
        let mut params = Params {
            input,
            pos: *pos,
            mode,
        };
        while let Some(param) = params.parse_next() {
            param?;
        }
        *pos = params.pos;
        if !matches!(input.get(*pos)?, b' ' | b')') {
            return None;
        }
    }
    let mut params = Params {
        input,
        pos: *pos,
        mode,
    };
    while let Some(param) = params.parse_next() {
        param?;
    }
    *pos = params.pos;
    Some(())
}

/// The index just past the next comma that is not inside a string, from `start` (a member's
/// first byte); the end of the input if there is none.
fn resync(input: &[u8], start: usize) -> usize {
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate().skip(start) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' {
            return i + 1;
        }
    }
    input.len()
}

/// The parameters of a member: `*( ";" *SP key [ "=" bare-item ] )`.
struct Params<'a> {
    input: &'a [u8],
    pos: usize,
    mode: Mode,
}

impl<'a> Params<'a> {
    /// `None` when there is no further parameter; `Some(None)` for a malformed one.
    fn parse_next(&mut self) -> Option<Option<(&'a [u8], Bare<'a>)>> {
        let mut pos = self.pos;
        if self.mode == Mode::Lenient {
            skip_ows(self.input, &mut pos); // RFC 9651 allows no space before ';'
        }
        if self.input.get(pos) != Some(&b';') {
            return None;
        }
        pos += 1;
        while self.input.get(pos) == Some(&b' ') {
            pos += 1;
        }
        let Some(key) = parse_key(self.input, &mut pos) else {
            return Some(None);
        };
        let value = if self.input.get(pos) == Some(&b'=') {
            pos += 1;
            match parse_bare(self.input, &mut pos) {
                Some(value) => value,
                None => return Some(None),
            }
        } else {
            Bare::Other // a bare key is the boolean true
        };
        self.pos = pos;
        Some(Some((key, value)))
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], Bare<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.parse_next().flatten()
    }
}

fn skip_ows(input: &[u8], pos: &mut usize) {
    while matches!(input.get(*pos), Some(b' ' | b'\t')) {
        *pos += 1;
    }
}

/// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
fn parse_key<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    if !matches!(input.get(start), Some(b'a'..=b'z' | b'*')) {
        return None;
    }
    let len = input
        .get(start..)?
        .iter()
        .take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'))
        .count();
    *pos = start + len;
    input.get(start..*pos)
}

fn parse_bare<'a>(input: &'a [u8], pos: &mut usize) -> Option<Bare<'a>> {
    match *input.get(*pos)? {
        b'-' | b'0'..=b'9' => parse_number(input, pos),
        b'"' => parse_string(input, pos).map(Bare::String),
        b'a'..=b'z' | b'A'..=b'Z' | b'*' => parse_token(input, pos).map(Bare::Token),
        b':' => parse_byte_sequence(input, pos).map(Bare::Bytes),
        b'?' => match input.get(*pos + 1)? {
            b'0' | b'1' => {
                *pos += 2;
                Some(Bare::Other)
            }
            _ => None,
        },
        b'@' => {
            *pos += 1;
            match parse_number(input, pos)? {
                Bare::Integer(_) => Some(Bare::Other),
                _ => None,
            }
        }
        b'%' => parse_display_string(input, pos),
        _ => None,
    }
}

/// `sf-integer = ["-"] 1*15DIGIT`, `sf-decimal = ["-"] 1*12DIGIT "." 1*3DIGIT`
fn parse_number<'a>(input: &'a [u8], pos: &mut usize) -> Option<Bare<'a>> {
    let mut i = *pos;
    let negative = input.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_digits = count_digits(input, i);
    if int_digits == 0 {
        return None;
    }
    let int_text = input.get(i..i + int_digits)?;
    i += int_digits;
    if input.get(i) == Some(&b'.') {
        let frac_digits = count_digits(input, i + 1);
        if int_digits > 12 || !(1..=3).contains(&frac_digits) {
            return None;
        }
        *pos = i + 1 + frac_digits;
        return Some(Bare::Other);
    }
    if int_digits > 15 {
        return None;
    }
    // At most 15 digits: fits an i64 with room to spare.
    let magnitude = int_text
        .iter()
        .fold(0_i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    *pos = i;
    Some(Bare::Integer(if negative { -magnitude } else { magnitude }))
}

fn count_digits(input: &[u8], from: usize) -> usize {
    input.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// `sf-string = DQUOTE *( unescaped / "%" / "\" ( DQUOTE / "\" ) ) DQUOTE`, printable ASCII only;
/// returns the text between the quotes, escapes as written.
fn parse_string<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let start = *pos + 1;
    let mut i = start;
    loop {
        match *input.get(i)? {
            b'"' => break,
            b'\\' => match input.get(i + 1)? {
                b'"' | b'\\' => i += 2,
                _ => return None,
            },
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
    *pos = i + 1;
    std::str::from_utf8(input.get(start..i)?).ok()
}

/// `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`
fn parse_token<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let start = *pos;
    let len = input
        .get(start..)?
        .iter()
        .take_while(|&&b| is_tchar(b) || b == b':' || b == b'/')
        .count();
    *pos = start + len;
    std::str::from_utf8(input.get(start..*pos)?).ok()
}

const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `sf-binary = ":" base64 ":"`; returns the base64 text.
fn parse_byte_sequence<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let start = *pos + 1;
    let len = input
        .get(start..)?
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .count();
    if input.get(start + len) != Some(&b':') {
        return None;
    }
    *pos = start + len + 1;
    std::str::from_utf8(input.get(start..start + len)?).ok()
}

/// `sf-displaystring = "%" DQUOTE *( unescaped / "\" / pct-encoded ) DQUOTE` (RFC 9651), skipped.
fn parse_display_string<'a>(input: &'a [u8], pos: &mut usize) -> Option<Bare<'a>> {
    if input.get(*pos + 1) != Some(&b'"') {
        return None;
    }
    let mut i = *pos + 2;
    loop {
        match *input.get(i)? {
            b'"' => break,
            b'%' => {
                let hex = input.get(i + 1..i + 3)?;
                if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                i += 3;
            }
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
    *pos = i + 1;
    Some(Bare::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn retry_after_delay_seconds() {
        assert_eq!(parse_retry_after(b"0", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(b"120", now()), Some(secs(120)));
        assert_eq!(parse_retry_after(b" \t42 ", now()), Some(secs(42)));
        assert_eq!(parse_retry_after(b"007", now()), Some(secs(7)));
        assert_eq!(parse_retry_after(b"86400", now()), Some(MAX_HINT));
    }

    #[test]
    fn retry_after_huge_values_are_capped() {
        assert_eq!(parse_retry_after(b"86401", now()), Some(MAX_HINT));
        assert_eq!(
            parse_retry_after(b"18446744073709551615", now()),
            Some(MAX_HINT)
        );
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", now()),
            Some(MAX_HINT)
        );
        // A date far in the future too.
        assert_eq!(
            parse_retry_after(b"Fri, 31 Dec 9999 23:59:59 GMT", now()),
            Some(MAX_HINT)
        );
    }

    #[test]
    fn retry_after_http_date_in_all_three_formats() {
        for date in [
            "Sun, 06 Nov 1994 08:50:07 GMT",  // IMF-fixdate
            "Sunday, 06-Nov-94 08:50:07 GMT", // RFC 850
            "Sun Nov  6 08:50:07 1994",       // asctime
            "  Sun, 06 Nov 1994 08:50:07 GMT\t",
        ] {
            assert_eq!(
                parse_retry_after(date.as_bytes(), now()),
                Some(secs(30)),
                "{date}"
            );
        }
    }

    #[test]
    fn retry_after_past_date_is_zero() {
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(b"Thu, 01 Jan 1970 00:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_garbage_is_none() {
        for garbage in [
            &b""[..],
            b"   ",
            b"-1",
            b"+1",
            b"1.5",
            b"1e3",
            b"12 s",
            b"1 2",
            b"soon",
            b"0x10",
            b"\xff\xfe",
            "١٢".as_bytes(), // Arabic-Indic digits
            b"Sun, 06 Nov 1994 08:50:07",
            b"Mon, 06 Nov 1994 08:50:07 GMT", // wrong weekday
            b"Sun, 31 Feb 1994 08:50:07 GMT",
            b"Sun, 06 Nov 1994 25:50:07 GMT",
        ] {
            assert_eq!(parse_retry_after(garbage, now()), None, "{garbage:?}");
        }
    }

    #[test]
    fn pushback_follows_grfc_a6() {
        let after = |ms| Some(ServerHint::RetryAfter(Duration::from_millis(ms)));
        assert_eq!(parse_grpc_pushback(b"0"), after(0));
        assert_eq!(parse_grpc_pushback(b"1500"), after(1500));
        assert_eq!(parse_grpc_pushback(b" 20 "), after(20));
        assert_eq!(parse_grpc_pushback(b""), None);
        assert_eq!(parse_grpc_pushback(b"  "), None);
    }

    #[test]
    fn pushback_negative_or_garbage_means_do_not_retry() {
        for value in [
            &b"-1"[..],
            b"-2147483648",
            b"-99999999999999999999",
            b"1.5",
            b"10ms",
            b"abc",
            b"1 0",
            b"\xff",
            b"-",
        ] {
            assert_eq!(
                parse_grpc_pushback(value),
                Some(ServerHint::DoNotRetry),
                "{value:?}"
            );
        }
    }

    /// #15.8: a pushback past `i32::MAX` (an older weir wrote them for waits past 24.8 days) is
    /// read back as a long wait, not as "do not retry".
    #[test]
    fn pushback_huge_values() {
        // Within i32: capped at MAX_HINT.
        assert_eq!(
            parse_grpc_pushback(b"86400001"),
            Some(ServerHint::RetryAfter(MAX_HINT))
        );
        assert_eq!(
            parse_grpc_pushback(b"2147483647"),
            Some(ServerHint::RetryAfter(MAX_HINT))
        );
        // Beyond a signed 32-bit integer: still a wait, capped.
        assert_eq!(
            parse_grpc_pushback(b"2592000000"),
            Some(ServerHint::RetryAfter(MAX_HINT))
        );
        assert_eq!(
            parse_grpc_pushback(b"+99999999999999999999999"),
            Some(ServerHint::RetryAfter(MAX_HINT))
        );
        assert_eq!(
            parse_grpc_pushback(b"+1500"),
            Some(ServerHint::RetryAfter(Duration::from_millis(1500)))
        );
        assert_eq!(parse_grpc_pushback(b"+"), Some(ServerHint::DoNotRetry));
        assert_eq!(parse_grpc_pushback(b"++1"), Some(ServerHint::DoNotRetry));
    }

    /// #15.14: RFC 9651 section 4.2: a syntax error anywhere in the list hides the whole field,
    /// the members before it included.
    #[test]
    fn a_malformed_ratelimit_list_is_ignored_whole() {
        for value in [
            &br#""a";r=1, junk junk"#[..],
            br#""a";r=1,"#,
            br#", "a";r=1"#,
            br#""a";r=1,,"b";r=2"#,
            br#""a" ;r=1"#,
            br#""a";r=1 "b";r=2"#,
            br#""a";r=1, "b";r=1000000000000000"#,
            br#""a";r=1, "open;r=2"#,
            br#""a";r=1, "b";r=2;t=1.5.5"#,
            br#""a";R=1"#,
            br#""a";r=1, ("x" "y";r=1"#,
            br#""a";r=1, "b";pk=:not base64!:"#,
            b"\"a\";r=1, \"caf\xc3\xa9\";r=2",
        ] {
            let text = String::from_utf8_lossy(value);
            assert_eq!(parse_ratelimit(value).count(), 0, "{text}");
            assert_eq!(parse_ratelimit_policy(value).count(), 0, "{text}");
        }
        let map = headers(&[("ratelimit", r#""a";r=0;t=9, junk junk"#)]);
        assert_eq!(server_hint(&map, now()), None);
    }

    /// #15.14: of a well-formed list, members that are valid Structured Fields but not usable
    /// RateLimit items are skipped one by one.
    #[test]
    fn well_formed_members_that_mean_nothing_here_are_skipped_alone() {
        let value = br#""burst";r=0;t=30;pk=:AQID:, "x";r=-1, ("inner" 1);r=1, ( ), "quota";r=5;x=1.5;y;z="a,b", daily;r=7;t=60, "nor", "bad-t";r=1;t="3", "last";r=2;t=1;t=9, "d";r=1;when=@1659578233;flag=?0;s=%"caf%c3%a9""#;
        let items: Vec<_> = parse_ratelimit(value)
            .map(|i| (i.name(), i.remaining(), i.reset().map(|d| d.as_secs())))
            .collect();
        assert_eq!(
            items,
            [
                ("burst", 0, Some(30)),
                ("quota", 5, None),
                ("daily", 7, Some(60)),
                ("last", 2, Some(9)),
                ("d", 1, None),
            ]
        );
        let burst = parse_ratelimit(value).next().unwrap();
        assert_eq!(burst.partition_key(), Some("AQID"));
        assert_eq!(parse_ratelimit(b"").count(), 0);
        assert_eq!(parse_ratelimit(b"  ").count(), 0);
    }

    #[test]
    fn lenient_parsing_skips_malformed_members() {
        let value = br#""burst";r=0;t=30;pk=:AQID:, junk junk, "x";r=-1, ("inner");r=1, "quota" ;r=5;x=1.5;y;z="a,b", daily;r=7;t=60, "nor", "bad-t";r=1;t="3", "last";r=2;t=1;t=9"#;
        let items: Vec<_> = parse_ratelimit_lenient(value)
            .map(|i| (i.name(), i.remaining(), i.reset().map(|d| d.as_secs())))
            .collect();
        assert_eq!(
            items,
            [
                ("burst", 0, Some(30)),
                ("quota", 5, None),
                ("daily", 7, Some(60)),
                ("last", 2, Some(9)),
            ]
        );
        assert_eq!(parse_ratelimit(value).count(), 0);
        // An unterminated string swallows the rest; a comma inside a string is not a separator.
        let items: Vec<_> = parse_ratelimit_lenient(br#""a\"b";r=1, "c,d";r=2 trailing, "e";r=3"#)
            .map(|i| (i.name(), i.remaining()))
            .collect();
        assert_eq!(items, [(r#"a\"b"#, 1), ("e", 3)]);
        assert_eq!(
            parse_ratelimit_lenient(br#""a";r=1, "open;r=2, "b";r=3"#).count(),
            1
        );
        assert_eq!(parse_ratelimit_lenient(b" , ,").count(), 0);
        let policies: Vec<_> = parse_ratelimit_policy_lenient(br#"junk, "p";q=5"#)
            .map(|p| (p.name(), p.quota()))
            .collect();
        assert_eq!(policies, [("p", 5)]);
    }

    /// #15.14: RFC 9110 section 5.6.7: an RFC 850 two-digit year more than 50 years in the
    /// future is the most recent such year in the past; otherwise it is the coming one.
    #[test]
    fn retry_after_rfc850_years_follow_the_50_year_rule() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        // 2069-12-31 23:59:00: "70" is 2070, a minute away (httpdate alone reads 1970).
        let new_years_eve = at(3_155_759_940);
        assert_eq!(
            parse_retry_after(b"Wednesday, 01-Jan-70 00:00:00 GMT", new_years_eve),
            Some(secs(60))
        );
        // 2026-12-07: "76" is 2076 (50 years on), "77" is 1977 (51 years on is too far).
        let today = at(1_796_601_600);
        assert_eq!(
            parse_retry_after(b"Monday, 15-Jun-76 00:00:00 GMT", today),
            Some(MAX_HINT)
        );
        assert_eq!(
            parse_retry_after(b"Wednesday, 15-Jun-77 00:00:00 GMT", today),
            Some(Duration::ZERO)
        );
        // The weekday is still checked, against the year the rule chose.
        assert_eq!(
            parse_retry_after(b"Tuesday, 15-Jun-77 00:00:00 GMT", today),
            None
        );
        for bad in [
            &b"Someday, 15-Jun-77 00:00:00 GMT"[..],
            b"Wednesday, 15-Jun-7x 00:00:00 GMT",
            b"Wednesday, 15-Jun-1977 00:00:00 GMT",
            b"Wednesday, 15 Jun 77 00:00:00 GMT",
            b"Wednesday, 15-Jun-77 00:00:00 UTC",
        ] {
            assert_eq!(parse_retry_after(bad, today), None, "{bad:?}");
        }
    }

    #[test]
    fn ratelimit_integers_longer_than_15_digits_are_invalid() {
        let max = parse_ratelimit(br#""a";r=999999999999999"#).next().unwrap();
        assert_eq!(max.remaining(), 999_999_999_999_999);
        assert_eq!(parse_ratelimit(br#""a";r=1000000000000000"#).count(), 0);
    }

    #[test]
    fn ratelimit_policy_members() {
        let value = br#""burst";q=100;w=60, "daily";q=1000;w=86400;qu="request";pk=:cGsx:, "noq";w=1, "neg";q=-5, "bad-qu";q=1;qu=request"#;
        let items: Vec<_> = parse_ratelimit_policy(value).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].name(), items[0].quota(), items[0].window()),
            ("burst", 100, Some(secs(60)))
        );
        assert_eq!(items[0].quota_unit(), None);
        assert_eq!(
            (items[1].name(), items[1].quota(), items[1].window()),
            ("daily", 1000, Some(secs(86_400)))
        );
        assert_eq!(items[1].quota_unit(), Some("request"));
        assert_eq!(items[1].partition_key(), Some("cGsx"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn server_hint_precedence() {
        let after = |s| Some(ServerHint::RetryAfter(secs(s)));
        let all = headers(&[
            ("grpc-retry-pushback-ms", "2000"),
            ("retry-after", "5"),
            ("ratelimit", r#""a";r=0;t=9"#),
        ]);
        assert_eq!(server_hint(&all, now()), after(2));

        let no_pushback = headers(&[("retry-after", "5"), ("ratelimit", r#""a";r=0;t=9"#)]);
        assert_eq!(server_hint(&no_pushback, now()), after(5));

        let only_ratelimit = headers(&[("ratelimit", r#""a";r=0;t=9"#)]);
        assert_eq!(server_hint(&only_ratelimit, now()), after(9));

        // Bad pushback: do not retry, whatever else is there.
        let bad_pushback = headers(&[("grpc-retry-pushback-ms", "-1"), ("retry-after", "5")]);
        assert_eq!(
            server_hint(&bad_pushback, now()),
            Some(ServerHint::DoNotRetry)
        );

        // Bad Retry-After and empty pushback: fall through to RateLimit.
        let fall_through = headers(&[
            ("grpc-retry-pushback-ms", ""),
            ("retry-after", "soon"),
            ("ratelimit", r#""a";r=0;t=9"#),
        ]);
        assert_eq!(server_hint(&fall_through, now()), after(9));

        assert_eq!(server_hint(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn server_hint_from_ratelimit_waits_for_every_exhausted_policy() {
        let map = headers(&[
            ("ratelimit", r#""burst";r=0;t=3, "spare";r=10;t=500"#),
            ("ratelimit", r#""daily";r=0;t=7200, "nor";r=0"#),
        ]);
        assert_eq!(
            server_hint(&map, now()),
            Some(ServerHint::RetryAfter(secs(7200)))
        );

        let capped = headers(&[("ratelimit", r#""year";r=0;t=31536000"#)]);
        assert_eq!(
            server_hint(&capped, now()),
            Some(ServerHint::RetryAfter(MAX_HINT))
        );

        let nothing_exhausted = headers(&[("ratelimit", r#""a";r=1;t=3, "b";r=0"#)]);
        assert_eq!(server_hint(&nothing_exhausted, now()), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), secs in any::<u64>()) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs % (300 * 365 * 86_400));
            if let Some(wait) = parse_retry_after(&bytes, now) {
                prop_assert!(wait <= MAX_HINT);
            }
            if let Some(ServerHint::RetryAfter(wait)) = parse_grpc_pushback(&bytes) {
                prop_assert!(wait <= MAX_HINT);
            }
            for item in parse_ratelimit(&bytes).chain(parse_ratelimit_lenient(&bytes)) {
                prop_assert!(item.remaining() < 1_000_000_000_000_000);
            }
            prop_assert!(parse_ratelimit_policy(&bytes).count() <= bytes.len());
            prop_assert!(parse_ratelimit_policy_lenient(&bytes).count() <= bytes.len());
        }

        #[test]
        fn structured_looking_input_never_panics(text in r#"[ "a-z0-9;=,:@%?*.()\\-]{0,48}"#) {
            for item in parse_ratelimit(text.as_bytes()) {
                prop_assert!(text.contains(item.name()));
            }
            for item in parse_ratelimit_policy(text.as_bytes()) {
                prop_assert!(text.contains(item.name()));
            }
            // Strict yields all of a well-formed list (what lenient yields too) or nothing.
            let strict: Vec<_> = parse_ratelimit(text.as_bytes()).collect();
            let lenient: Vec<_> = parse_ratelimit_lenient(text.as_bytes()).collect();
            prop_assert!(strict.is_empty() || strict == lenient, "{:?} {:?}", strict, lenient);
        }

        /// #15.14: an RFC 850 date within 49 years of `now`, either way, is read as that date.
        #[test]
        fn rfc850_dates_near_now_read_back(
            now in 0_u64..200_000_000_000,
            ahead in any::<bool>(),
            delta in 0_u64..(49 * 365 * 86_400),
        ) {
            let target = if ahead { now + delta } else { now.saturating_sub(delta) };
            let (now, target) = (
                SystemTime::UNIX_EPOCH + Duration::from_secs(now),
                SystemTime::UNIX_EPOCH + Duration::from_secs(target),
            );
            let imf = httpdate::fmt_http_date(target); // "Sun, 06 Nov 1994 08:49:37 GMT"
            prop_assume!(imf.len() == 29);
            let day = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
                .into_iter()
                .find(|day| day.starts_with(&imf[..3]))
                .expect("weekday");
            let rfc850 = format!("{day}, {}-{}-{}{}", &imf[5..7], &imf[8..11], &imf[14..16], &imf[16..]);
            let expected = target.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_HINT);
            prop_assert_eq!(parse_retry_after(rfc850.as_bytes(), now), Some(expected), "{}", rfc850);
        }

        #[test]
        fn date_looking_retry_after_never_panics(
            text in "(Sun|Sunday|Mon|Tue)?,? ?[0-9]{0,3}[ -](Nov|Feb|Dec|Xyz)[ -][0-9]{0,5} [0-9]{1,3}:[0-9]{2}:[0-9]{2}( GMT| [0-9]{4})?",
        ) {
            if let Some(wait) = parse_retry_after(text.as_bytes(), now()) {
                prop_assert!(wait <= MAX_HINT);
            }
        }

        #[test]
        fn pushback_of_any_i32(n in any::<i32>()) {
            let expected = match u64::try_from(n) {
                Ok(ms) => ServerHint::RetryAfter(Duration::from_millis(ms).min(MAX_HINT)),
                Err(_) => ServerHint::DoNotRetry,
            };
            prop_assert_eq!(parse_grpc_pushback(n.to_string().as_bytes()), Some(expected));
        }

        #[test]
        fn retry_after_of_any_u64_is_capped_seconds(n in any::<u64>()) {
            let expected = Duration::from_secs(n).min(MAX_HINT);
            prop_assert_eq!(parse_retry_after(n.to_string().as_bytes(), now()), Some(expected));
        }

        #[test]
        fn ratelimit_round_trips_well_formed_members(
            members in proptest::collection::vec(("[a-z][a-z0-9_-]{0,8}", 0_u64..1_000_000_000_000_000, proptest::option::of(0_u64..1_000_000)), 0..5)
        ) {
            let value = members
                .iter()
                .map(|(name, r, t)| match t {
                    Some(t) => format!("\"{name}\";r={r};t={t}"),
                    None => format!("\"{name}\";r={r}"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let parsed: Vec<_> = parse_ratelimit(value.as_bytes())
                .map(|i| (i.name().to_owned(), i.remaining(), i.reset().map(|d| d.as_secs())))
                .collect();
            prop_assert_eq!(parsed, members);
        }
    }
}
