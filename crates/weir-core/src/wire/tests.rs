use std::time::{Duration, SystemTime};

use http::HeaderMap;

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

/// RFC 9651 allows spaces after a parameter's `;` (`";" *SP key`): both parsers skip them.
#[test]
fn spaces_after_a_parameters_semicolon_are_skipped() {
    let value = br#""quota"; r=5;  t=30, "burst";r=1"#;
    for items in [
        parse_ratelimit(value).collect::<Vec<_>>(),
        parse_ratelimit_lenient(value).collect(),
    ] {
        let got: Vec<_> = items
            .iter()
            .map(|i| (i.name(), i.remaining(), i.reset().map(|d| d.as_secs())))
            .collect();
        assert_eq!(got, [("quota", 5, Some(30)), ("burst", 1, None)]);
    }
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

#[test]
fn hop_by_hop_headers_and_the_ones_connection_names_are_stripped() {
    let mut headers = http::HeaderMap::new();
    headers.insert("connection", "close, x-private".parse().unwrap());
    headers.insert("x-private", "1".parse().unwrap());
    headers.insert("transfer-encoding", "chunked".parse().unwrap());
    headers.insert("keep-alive", "timeout=5".parse().unwrap());
    headers.insert("upgrade", "h2c".parse().unwrap());
    headers.insert("content-type", "text/plain".parse().unwrap());
    headers.insert("cache-control", "max-age=60".parse().unwrap());
    super::strip_hop_by_hop(&mut headers);
    let mut left: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["cache-control", "content-type"]);
}

/// The year of `now` behind the RFC 850 rule, on the days where the calendar arithmetic has
/// its edges: the first day of a 400-year era (2000-03-01, day 0 of the era) and a century
/// into one (2150, past the era's first century). A cargo-mutants survivor (#26): a term of
/// the year's formula could change unseen while every `now` tested fell in 1994 to 2076.
#[test]
fn retry_after_rfc850_years_at_era_edges() {
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    // 2000-03-01 00:00:00: "00" is 2000, a minute away.
    assert_eq!(
        parse_retry_after(b"Wednesday, 01-Mar-00 00:01:00 GMT", at(951_868_800)),
        Some(secs(60))
    );
    // 2150-05-31 23:59:00: "50" is 2150, a minute away.
    assert_eq!(
        parse_retry_after(b"Monday, 01-Jun-50 00:00:00 GMT", at(5_693_328_000 - 60)),
        Some(secs(60))
    );
}
