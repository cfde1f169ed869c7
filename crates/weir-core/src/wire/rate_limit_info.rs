//! The state of a rate-limit policy, as the IETF `RateLimit` header fields report it.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{
    RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};
use crate::Name;

/// The state of one rate-limit policy at the moment of a decision: what the IETF
/// `RateLimit-Policy` field (`"name";q=100;w=60`) and `RateLimit` field (`"name";r=0;t=12`) say
/// (draft-ietf-httpapi-ratelimit-headers).
///
/// A rate limiter attaches it to the [`Error`](crate::Error) it returns, and the response mapping
/// writes it out; it can also write it on admitted responses with [`RateLimitInfo::write_headers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitInfo {
    policy: Name,
    quota: u64,
    window: Duration,
    remaining: u64,
    reset: Duration,
    /// The other policies that applied (stacked quotas), listed in `RateLimit-Policy` after
    /// this one: name, quota, window. `None` for a single policy; shared, so a clone of a
    /// prepared state (a rate limiter keeps one per policy) never allocates.
    others: Option<Arc<[(Name, u64, Duration)]>>,
    /// The style the limiter was set to write, which wins over the writer's.
    style: Option<HeaderStyle>,
}

impl RateLimitInfo {
    /// A policy named `policy` allowing `quota` units per `window`, with the whole quota remaining
    /// and nothing to wait for; set the live values with [`remaining`](Self::remaining) and
    /// [`reset`](Self::reset).
    #[must_use]
    pub fn new(policy: impl Into<Name>, quota: u64, window: Duration) -> Self {
        Self {
            policy: policy.into(),
            quota,
            window,
            remaining: quota,
            reset: Duration::ZERO,
            others: None,
            style: None,
        }
    }

    /// Lists another policy that applied to the same request (stacked quotas: 10/s and
    /// 10 000/day) in `RateLimit-Policy`, after this one, so a client sees every policy; the
    /// `RateLimit` field still reports this one (the policy with the fewest units left).
    ///
    /// The list is built here (an allocation for each policy added) and shared by every clone,
    /// so a rate limiter prepares a state per policy once and clones it for each response
    /// without allocating.
    #[must_use]
    pub fn also_policy(mut self, policy: impl Into<Name>, quota: u64, window: Duration) -> Self {
        let added = (policy.into(), quota, window);
        let others = self.others.as_deref().unwrap_or_default().iter().cloned();
        self.others = Some(others.chain([added]).collect());
        self
    }

    /// The other policies listed with [`also_policy`](Self::also_policy): name, quota, window.
    pub fn other_policies(&self) -> impl Iterator<Item = (&str, u64, Duration)> {
        self.others
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|(n, q, w)| (n.as_str(), *q, *w))
    }

    /// Sets the header style to write this state in, whatever style the writer is given: a
    /// rate limiter set to one style writes its admitted responses and its refusals alike
    /// (the response mapping of [`ErrorResponseLayer`](crate::response::ErrorResponseLayer) passes its
    /// own style, which this overrides).
    #[must_use]
    pub const fn style(mut self, style: HeaderStyle) -> Self {
        self.style = Some(style);
        self
    }

    /// The style set with [`style`](Self::style), if any.
    #[must_use]
    pub const fn header_style(&self) -> Option<HeaderStyle> {
        self.style
    }

    /// Sets the quota units left in the current window.
    #[must_use]
    pub const fn remaining(mut self, remaining: u64) -> Self {
        self.remaining = remaining;
        self
    }

    /// Sets the time until the quota is fully (or, for GCRA, enough) restored.
    #[must_use]
    pub const fn reset(mut self, reset: Duration) -> Self {
        self.reset = reset;
        self
    }

    /// The policy's name.
    #[must_use]
    pub fn policy(&self) -> &str {
        self.policy.as_str()
    }

    /// Quota units per window.
    #[must_use]
    pub const fn quota(&self) -> u64 {
        self.quota
    }

    /// The window the quota applies to.
    #[must_use]
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// Quota units left.
    #[must_use]
    pub const fn remaining_units(&self) -> u64 {
        self.remaining
    }

    /// Time until the quota resets.
    #[must_use]
    pub const fn reset_after(&self) -> Duration {
        self.reset
    }
}

/// Which rate-limit header fields [`RateLimitInfo::write_headers`] (and the response mapping of
/// [`ErrorResponseLayer`](crate::response::ErrorResponseLayer)) write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// The IETF fields `RateLimit-Policy` and `RateLimit` (the default).
    #[default]
    Ietf,
    /// The common legacy fields `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset`.
    XRateLimit,
    /// Both the IETF and the legacy fields.
    Both,
    /// No rate-limit fields (a rejection still carries `Retry-After`).
    None,
}

impl HeaderStyle {
    const fn ietf(self) -> bool {
        matches!(self, Self::Ietf | Self::Both)
    }

    const fn legacy(self) -> bool {
        matches!(self, Self::XRateLimit | Self::Both)
    }
}

/// The largest Integer a structured field can carry (RFC 9651, section 3.3.1: at most 15 digits).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

impl RateLimitInfo {
    /// Writes this policy's state into `headers` in the given style.
    ///
    /// With [`HeaderStyle::Ietf`] (the syntax of draft-ietf-httpapi-ratelimit-headers-10, September
    /// 2025, where the policy name is a structured-field String):
    ///
    /// ```text
    /// RateLimit-Policy: "edge";q=100;w=60
    /// RateLimit: "edge";r=0;t=2
    /// ```
    ///
    /// `q` is the quota, `w` the window and `r` the remaining units; `t` is the time until the
    /// quota resets. Times are whole seconds rounded up (a 1.5 s reset is written `t=2`); a zero
    /// window leaves `w` out. Numbers above the structured-field maximum (999 999 999 999 999) are
    /// written as that maximum. Both fields are Lists, so they are *appended*: two stacked limits
    /// (10/s and 10 000/day) writing into the same response produce a valid two-member list.
    ///
    /// With [`HeaderStyle::XRateLimit`]: `X-RateLimit-Limit` (the quota), `X-RateLimit-Remaining`
    /// and `X-RateLimit-Reset` (seconds until reset, rounded up). These hold one value each, so
    /// they *replace* any value already there.
    ///
    /// The policy name is written as a structured-field String: `"` and `\` are escaped with a
    /// backslash, and every character outside printable ASCII (controls, non-ASCII) is replaced by
    /// `_`, so any name gives a valid field; an empty name is written as `"default"`.
    ///
    /// Policies added with [`also_policy`](Self::also_policy) follow this one in
    /// `RateLimit-Policy`. A style set with [`style`](Self::style) is used instead of `style`.
    ///
    /// This allocates the two IETF field values (numbers are formatted on the stack); it is meant
    /// for rejections and for admitted responses where the caller asked for the fields.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::HeaderMap;
    /// use weir_core::wire::{HeaderStyle, RateLimitInfo};
    ///
    /// let info = RateLimitInfo::new("edge", 100, Duration::from_secs(60))
    ///     .remaining(0)
    ///     .reset(Duration::from_millis(1500));
    /// let mut headers = HeaderMap::new();
    /// info.write_headers(&mut headers, HeaderStyle::Both);
    /// assert_eq!(headers["ratelimit-policy"], r#""edge";q=100;w=60"#);
    /// assert_eq!(headers["ratelimit"], r#""edge";r=0;t=2"#);
    /// assert_eq!(headers["x-ratelimit-limit"], "100");
    /// assert_eq!(headers["x-ratelimit-remaining"], "0");
    /// assert_eq!(headers["x-ratelimit-reset"], "2");
    /// ```
    pub fn write_headers(&self, headers: &mut HeaderMap, style: HeaderStyle) {
        let style = self.style.unwrap_or(style);
        let reset = ceil_secs(self.reset);
        if style.ietf() {
            let mut name = String::with_capacity(self.policy().len() + 24);
            push_sf_string(&mut name, self.policy());

            let mut policy = String::with_capacity(name.len() + 40);
            policy.push_str(&name);
            push_policy_params(&mut policy, self.quota, self.window);
            append(headers, RATELIMIT_POLICY, policy);
            for (other, quota, window) in self.others.as_deref().unwrap_or_default() {
                let mut policy = String::with_capacity(other.as_str().len() + 40);
                push_sf_string(&mut policy, other.as_str());
                push_policy_params(&mut policy, *quota, *window);
                append(headers, RATELIMIT_POLICY, policy);
            }

            let mut state = name;
            state.push_str(";r=");
            push_sf_integer(&mut state, self.remaining);
            state.push_str(";t=");
            push_sf_integer(&mut state, reset);
            append(headers, RATELIMIT, state);
        }
        if style.legacy() {
            headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(self.quota));
            headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
            headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
        }
    }
}

/// Pushes `;q=<quota>` and, for a window of a second or more, `;w=<seconds>`.
fn push_policy_params(out: &mut String, quota: u64, window: Duration) {
    out.push_str(";q=");
    push_sf_integer(out, quota);
    let window = ceil_secs(window);
    if window > 0 {
        out.push_str(";w=");
        push_sf_integer(out, window);
    }
}

/// Whole seconds in `d`, rounded up.
pub(crate) const fn ceil_secs(d: Duration) -> u64 {
    d.as_secs()
        .saturating_add(if d.subsec_nanos() > 0 { 1 } else { 0 })
}

fn append(headers: &mut HeaderMap, name: HeaderName, value: String) {
    // Every byte pushed is printable ASCII, so this cannot fail; if it somehow did, the field is
    // left out rather than written invalid.
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.append(name, value);
    }
}

/// Pushes `name` as a structured-field String (RFC 9651, section 3.3.3).
fn push_sf_string(out: &mut String, name: &str) {
    out.push('"');
    if name.is_empty() {
        out.push_str("default");
    }
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
}

/// Pushes `n`, capped at the structured-field Integer maximum, in decimal.
fn push_sf_integer(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = n.min(SF_INTEGER_MAX);
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[at..].iter().map(|&digit| char::from(digit)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info() -> RateLimitInfo {
        RateLimitInfo::new("edge", 100, Duration::from_secs(60))
            .remaining(7)
            .reset(Duration::from_millis(1500))
    }

    fn written(info: &RateLimitInfo, style: HeaderStyle) -> HeaderMap {
        let mut headers = HeaderMap::new();
        info.write_headers(&mut headers, style);
        headers
    }

    /// Parses a structured-field String at the start of `value`; returns it and the rest.
    fn parse_sf_string(value: &str) -> Option<(String, &str)> {
        let rest = value.strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    (_, escaped @ ('"' | '\\')) => out.push(escaped),
                    _ => return None,
                },
                '"' => return Some((out, &rest[i + 1..])),
                ' '..='~' => out.push(c),
                _ => return None,
            }
        }
        None
    }

    #[test]
    fn ietf_fields_have_the_draft_syntax() {
        let headers = written(&info(), HeaderStyle::Ietf);
        assert_eq!(headers["ratelimit-policy"], r#""edge";q=100;w=60"#);
        assert_eq!(headers["ratelimit"], r#""edge";r=7;t=2"#);
        assert!(!headers.contains_key("x-ratelimit-limit"));
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn legacy_fields_are_plain_numbers_with_reset_rounded_up() {
        let headers = written(&info(), HeaderStyle::XRateLimit);
        assert_eq!(headers["x-ratelimit-limit"], "100");
        assert_eq!(headers["x-ratelimit-remaining"], "7");
        assert_eq!(headers["x-ratelimit-reset"], "2");
        assert!(!headers.contains_key("ratelimit"));
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn both_writes_five_fields_and_none_writes_nothing() {
        assert_eq!(written(&info(), HeaderStyle::Both).len(), 5);
        assert!(written(&info(), HeaderStyle::None).is_empty());
        assert_eq!(HeaderStyle::default(), HeaderStyle::Ietf);
    }

    #[test]
    fn ietf_fields_append_so_stacked_policies_form_a_list() {
        let mut headers = HeaderMap::new();
        info().write_headers(&mut headers, HeaderStyle::Ietf);
        RateLimitInfo::new("daily", 10_000, Duration::from_secs(86_400))
            .remaining(9_000)
            .reset(Duration::from_secs(3_600))
            .write_headers(&mut headers, HeaderStyle::Ietf);
        let policies: Vec<_> = headers.get_all("ratelimit-policy").iter().collect();
        assert_eq!(
            policies,
            [r#""edge";q=100;w=60"#, r#""daily";q=10000;w=86400"#]
        );
        let states: Vec<_> = headers.get_all("ratelimit").iter().collect();
        assert_eq!(states, [r#""edge";r=7;t=2"#, r#""daily";r=9000;t=3600"#]);
    }

    /// #15.7: stacked policies are all listed in `RateLimit-Policy`, and a style set on the
    /// state wins over the writer's.
    #[test]
    fn other_policies_are_listed_and_the_states_style_wins() {
        let stacked = info()
            .also_policy("daily", 10_000, Duration::from_secs(86_400))
            .style(HeaderStyle::Both);
        let headers = written(&stacked, HeaderStyle::None);
        let policies: Vec<_> = headers.get_all("ratelimit-policy").iter().collect();
        assert_eq!(
            policies,
            [r#""edge";q=100;w=60"#, r#""daily";q=10000;w=86400"#]
        );
        assert_eq!(headers.get_all("ratelimit").iter().count(), 1);
        assert_eq!(headers["x-ratelimit-remaining"], "7");
        assert_eq!(stacked.other_policies().count(), 1);
        assert_eq!(stacked.header_style(), Some(HeaderStyle::Both));
    }

    #[test]
    fn legacy_fields_replace_earlier_values() {
        let mut headers = HeaderMap::new();
        info().write_headers(&mut headers, HeaderStyle::XRateLimit);
        info()
            .remaining(3)
            .write_headers(&mut headers, HeaderStyle::XRateLimit);
        let remaining: Vec<_> = headers.get_all("x-ratelimit-remaining").iter().collect();
        assert_eq!(remaining, ["3"]);
    }

    #[test]
    fn sub_second_window_rounds_up_and_zero_window_is_left_out() {
        let half = RateLimitInfo::new("burst", 5, Duration::from_millis(500));
        assert_eq!(
            written(&half, HeaderStyle::Ietf)["ratelimit-policy"],
            r#""burst";q=5;w=1"#
        );
        let zero = RateLimitInfo::new("burst", 5, Duration::ZERO);
        assert_eq!(
            written(&zero, HeaderStyle::Ietf)["ratelimit-policy"],
            r#""burst";q=5"#
        );
        // Nothing to wait for: t=0.
        assert_eq!(
            written(&zero, HeaderStyle::Ietf)["ratelimit"],
            r#""burst";r=5;t=0"#
        );
    }

    #[test]
    fn numbers_are_capped_at_the_structured_field_maximum() {
        let huge = RateLimitInfo::new("big", u64::MAX, Duration::MAX)
            .remaining(u64::MAX)
            .reset(Duration::MAX);
        let headers = written(&huge, HeaderStyle::Both);
        assert_eq!(
            headers["ratelimit-policy"],
            r#""big";q=999999999999999;w=999999999999999"#
        );
        assert_eq!(
            headers["ratelimit"],
            r#""big";r=999999999999999;t=999999999999999"#
        );
        // The legacy fields are plain numbers with no such cap.
        assert_eq!(headers["x-ratelimit-limit"], u64::MAX.to_string().as_str());
        assert_eq!(headers["x-ratelimit-reset"], u64::MAX.to_string().as_str());
    }

    #[test]
    fn policy_names_are_escaped_or_replaced_never_invalid() {
        let cases = [
            ("a\"b\\c", r#""a\"b\\c";r=7;t=2"#),
            ("tier-ü", r#""tier-_";r=7;t=2"#),
            ("line\r\nbreak", r#""line__break";r=7;t=2"#),
            ("", r#""default";r=7;t=2"#),
        ];
        for (name, expected) in cases {
            let info = RateLimitInfo::new(String::from(name), 100, Duration::from_secs(60))
                .remaining(7)
                .reset(Duration::from_millis(1500));
            assert_eq!(
                written(&info, HeaderStyle::Ietf)["ratelimit"],
                expected,
                "{name:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn written_fields_parse_back_with_the_hint_parsers(
            name in "[a-z0-9-]{1,20}",
            quota in 0..=SF_INTEGER_MAX,
            remaining in any::<u64>(),
            window_ms in 1..=u64::MAX,
            reset_ms in any::<u64>(),
        ) {
            let info = RateLimitInfo::new(name.clone(), quota, Duration::from_millis(window_ms))
                .remaining(remaining)
                .reset(Duration::from_millis(reset_ms));
            let headers = written(&info, HeaderStyle::Ietf);

            let policy = headers["ratelimit-policy"].as_bytes();
            let policies: Vec<_> = crate::wire::parse_ratelimit_policy(policy).collect();
            prop_assert_eq!(policies.len(), 1);
            prop_assert_eq!(policies[0].name(), name.as_str());
            prop_assert_eq!(policies[0].quota(), quota);
            prop_assert_eq!(
                policies[0].window(),
                Some(Duration::from_secs(
                    ceil_secs(Duration::from_millis(window_ms)).min(SF_INTEGER_MAX)
                ))
            );

            let state = headers["ratelimit"].as_bytes();
            let states: Vec<_> = crate::wire::parse_ratelimit(state).collect();
            prop_assert_eq!(states.len(), 1);
            prop_assert_eq!(states[0].name(), name.as_str());
            prop_assert_eq!(states[0].remaining(), remaining.min(SF_INTEGER_MAX));
            prop_assert_eq!(
                states[0].reset(),
                Some(Duration::from_secs(
                    ceil_secs(Duration::from_millis(reset_ms)).min(SF_INTEGER_MAX)
                ))
            );
        }

        #[test]
        fn any_policy_name_gives_a_valid_sf_string(
            name in any::<String>(),
            quota in any::<u64>(),
            remaining in any::<u64>(),
            reset_ms in any::<u64>(),
        ) {
            let info = RateLimitInfo::new(name.clone(), quota, Duration::from_secs(60))
                .remaining(remaining)
                .reset(Duration::from_millis(reset_ms));
            let headers = written(&info, HeaderStyle::Ietf);
            for field in ["ratelimit-policy", "ratelimit"] {
                let value = headers[field].to_str().expect("visible ASCII");
                let (parsed, params) = parse_sf_string(value).expect("a valid sf-string");
                // Printable-ASCII names survive exactly; others only lose the characters that
                // cannot be written.
                if !name.is_empty() && name.chars().all(|c| (' '..='~').contains(&c)) {
                    prop_assert_eq!(&parsed, &name);
                }
                let expected_len = if name.is_empty() { "default".len() } else { name.chars().count() };
                prop_assert_eq!(parsed.chars().count(), expected_len);
                prop_assert!(params.starts_with(";q=") || params.starts_with(";r="));
            }
            let reset = headers["ratelimit"].to_str().expect("ASCII");
            let t: u64 = reset.rsplit("t=").next().and_then(|t| t.parse().ok()).expect("t");
            prop_assert_eq!(t, ceil_secs(Duration::from_millis(reset_ms)).min(SF_INTEGER_MAX));
        }
    }
}
