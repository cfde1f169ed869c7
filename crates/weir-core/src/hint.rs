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
///   [`Duration::ZERO`] (retry at once).
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
    let text = std::str::from_utf8(value).ok()?;
    let date = httpdate::parse_http_date(text).ok()?;
    let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_HINT))
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
/// - a negative number, anything that is not an integer, and a number outside the `i32` range:
///   [`ServerHint::DoNotRetry`].
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
    let millis = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i32>().ok())
        .and_then(|millis| u64::try_from(millis).ok());
    Some(match millis {
        Some(millis) => ServerHint::RetryAfter(Duration::from_millis(millis).min(MAX_HINT)),
        None => ServerHint::DoNotRetry,
    })
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
/// A member is yielded when it is a well-formed item named by a string (or a token), with an `r`
/// parameter that is a non-negative integer; `t` must then be a non-negative integer and `pk` a
/// byte sequence if present. Unknown parameters are ignored; when a parameter repeats, the last one
/// wins. A malformed member is skipped, and parsing goes on after the next comma. Integers of more
/// than 15 digits are malformed (RFC 9651). For a field sent on several lines, call this once per
/// line.
///
/// ```
/// use std::time::Duration;
/// use weir_core::parse_ratelimit;
///
/// let mut items = parse_ratelimit(br#""burst";r=0;t=30, junk junk, "daily";r=12"#);
/// let burst = items.next().unwrap();
/// assert_eq!((burst.name(), burst.remaining()), ("burst", 0));
/// assert_eq!(burst.reset(), Some(Duration::from_secs(30)));
/// let daily = items.next().unwrap();
/// assert_eq!((daily.name(), daily.remaining(), daily.reset()), ("daily", 12, None));
/// assert!(items.next().is_none());
/// ```
pub fn parse_ratelimit(value: &[u8]) -> impl Iterator<Item = RateLimitItem<'_>> {
    Members::new(value).filter_map(|member| {
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
    })
}

/// Parses one `RateLimit-Policy` field value (a Structured Field List, RFC 9651) into its members,
/// lazily and without allocating.
///
/// A member is yielded when it is a well-formed item named by a string (or a token), with a `q`
/// parameter that is a non-negative integer; `w` must then be a non-negative integer, `qu` a string
/// and `pk` a byte sequence if present. Unknown parameters are ignored; when a parameter repeats,
/// the last one wins. A malformed member is skipped. For a field sent on several lines, call this
/// once per line.
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
    Members::new(value).filter_map(|member| {
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

// A small Structured Field (RFC 9651) List parser: enough for lists of items whose bare items are
// strings or tokens and whose parameters are integers, strings, tokens and byte sequences. Other
// bare item types (decimals, booleans, dates, display strings) are recognised so they can be
// skipped as unknown parameters. Inner lists are not supported: such a member is skipped.

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

/// A well-formed list member: its name and its (already validated) parameters.
struct Member<'a> {
    name: &'a str,
    params: &'a [u8],
}

impl<'a> Member<'a> {
    fn params(&self) -> Params<'a> {
        Params {
            input: self.params,
            pos: 0,
        }
    }
}

/// The well-formed members of a list, malformed ones skipped.
struct Members<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Members<'a> {
    const fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            skip_ows(self.input, &mut self.pos);
            if self.pos >= self.input.len() {
                return None;
            }
            let start = self.pos;
            if let Some(member) = parse_member(self.input, &mut self.pos) {
                return Some(member);
            }
            self.pos = resync(self.input, start);
        }
    }
}

/// Parses `bare-item parameters`, then expects the end of the input or a comma (consumed).
fn parse_member<'a>(input: &'a [u8], pos: &mut usize) -> Option<Member<'a>> {
    let name = match parse_bare(input, pos)? {
        Bare::String(name) | Bare::Token(name) => name,
        _ => return None,
    };
    let params_start = *pos;
    let mut params = Params { input, pos: *pos };
    while let Some(param) = params.parse_next() {
        param?;
    }
    let member = Member {
        name,
        params: input.get(params_start..params.pos)?,
    };
    *pos = params.pos;
    skip_ows(input, pos);
    match input.get(*pos) {
        None => Some(member),
        Some(b',') => {
            *pos += 1;
            Some(member)
        }
        Some(_) => None,
    }
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
}

impl<'a> Params<'a> {
    /// `None` when there is no further parameter; `Some(None)` for a malformed one.
    fn parse_next(&mut self) -> Option<Option<(&'a [u8], Bare<'a>)>> {
        let mut pos = self.pos;
        skip_ows(self.input, &mut pos); // lenient: RFC 9651 allows no space before ';'
        if self.input.get(pos) != Some(&b';') {
            return None;
        }
        pos += 1;
        skip_ows(self.input, &mut pos);
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
        // Beyond a signed 32-bit integer: unparseable per gRFC A6.
        assert_eq!(
            parse_grpc_pushback(b"2147483648"),
            Some(ServerHint::DoNotRetry)
        );
        assert_eq!(
            parse_grpc_pushback(b"99999999999999999999999"),
            Some(ServerHint::DoNotRetry)
        );
    }

    #[test]
    fn ratelimit_with_several_members_and_junk() {
        let value = br#""burst";r=0;t=30;pk=:AQID:, junk junk, "x";r=-1, ("inner");r=1, "quota";r=5;x=1.5;y;z="a,b", daily;r=7;t=60, "nor", "bad-t";r=1;t="3", "last";r=2;t=1;t=9"#;
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
            ]
        );
        let burst = parse_ratelimit(value).next().unwrap();
        assert_eq!(burst.partition_key(), Some("AQID"));
    }

    #[test]
    fn ratelimit_malformed_members_do_not_hide_later_ones() {
        // An unterminated string swallows the rest; a comma inside a string is not a separator.
        let items: Vec<_> = parse_ratelimit(br#""a\"b";r=1, "c,d";r=2 trailing, "e";r=3"#)
            .map(|i| (i.name(), i.remaining()))
            .collect();
        assert_eq!(items, [(r#"a\"b"#, 1), ("e", 3)]);
        assert_eq!(
            parse_ratelimit(br#""a";r=1, "open;r=2, "b";r=3"#).count(),
            1
        );
        assert_eq!(parse_ratelimit(b"").count(), 0);
        assert_eq!(parse_ratelimit(b" , ,").count(), 0);
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
            for item in parse_ratelimit(&bytes) {
                prop_assert!(item.remaining() < 1_000_000_000_000_000);
            }
            prop_assert!(parse_ratelimit_policy(&bytes).count() <= bytes.len());
        }

        #[test]
        fn structured_looking_input_never_panics(text in r#"[ "a-z0-9;=,:@%?*.\\-]{0,48}"#) {
            for item in parse_ratelimit(text.as_bytes()) {
                prop_assert!(text.contains(item.name()));
            }
            for item in parse_ratelimit_policy(text.as_bytes()) {
                prop_assert!(text.contains(item.name()));
            }
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
