//! The IETF `RateLimit` and `RateLimit-Policy` fields, read side: borrowed items from a
//! strict (or lenient) RFC 9651 List.

use std::time::Duration;

use super::sf::{Bare, Member, Members, Mode};

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
    /// it. Not capped: [`server_hint`](crate::wire::server_hint) caps it at [`MAX_HINT`](crate::wire::MAX_HINT).
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
/// use weir_core::wire::parse_ratelimit;
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
/// use weir_core::wire::{parse_ratelimit, parse_ratelimit_lenient};
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
/// use weir_core::wire::parse_ratelimit_policy;
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
