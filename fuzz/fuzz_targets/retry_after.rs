//! `Retry-After`: [`parse_retry_after`] on arbitrary bytes, at an arbitrary `now`.
//!
//! Property: a value that parses is at most `MAX_HINT`, and the wait it gives, written back in
//! each of the forms RFC 9110 allows (delay-seconds; an HTTP-date as IMF-fixdate, RFC 850 and
//! asctime, `now` + the wait), parses to the same wait; surrounding whitespace changes nothing.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use weir_core::wire::{MAX_HINT, parse_retry_after};

/// The latest `now` tried: 9998-01-01, so `now` + one day is still a four-digit year.
const LAST_NOW: u64 = 253_370_764_800;

fuzz_target!(|input: (u64, &[u8])| {
    let (secs, value) = input;
    // Whole seconds: an HTTP-date has no finer resolution.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs % LAST_NOW);
    let Some(wait) = parse_retry_after(value, now) else {
        return;
    };
    assert!(wait <= MAX_HINT, "{wait:?} is past MAX_HINT");
    assert_eq!(
        wait.subsec_nanos(),
        0,
        "a whole-second now gives whole seconds"
    );

    // Whitespace around the value is ignored.
    let mut padded = b" \t".to_vec();
    padded.extend_from_slice(value);
    padded.extend_from_slice(b"\t ");
    assert_eq!(parse_retry_after(&padded, now), Some(wait));

    // delay-seconds.
    let delay = wait.as_secs().to_string();
    assert_eq!(
        parse_retry_after(delay.as_bytes(), now),
        Some(wait),
        "{delay}"
    );

    // The three HTTP-date forms of now + wait.
    let imf = httpdate::fmt_http_date(now + wait);
    assert_eq!(parse_retry_after(imf.as_bytes(), now), Some(wait), "{imf}");
    let rfc850 = rfc850(&imf);
    assert_eq!(
        parse_retry_after(rfc850.as_bytes(), now),
        Some(wait),
        "{rfc850}"
    );
    let asctime = asctime(&imf);
    assert_eq!(
        parse_retry_after(asctime.as_bytes(), now),
        Some(wait),
        "{asctime}"
    );
});

/// `Sun, 06 Nov 1994 08:49:37 GMT` as `Sunday, 06-Nov-94 08:49:37 GMT`.
fn rfc850(imf: &str) -> String {
    let weekday = match &imf[..3] {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    format!(
        "{weekday}, {}-{}-{}{}",
        &imf[5..7],
        &imf[8..11],
        &imf[14..16],
        &imf[16..]
    )
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as `Sun Nov  6 08:49:37 1994`.
fn asctime(imf: &str) -> String {
    let day = imf[5..7].trim_start_matches('0');
    format!(
        "{} {} {day:>2} {} {}",
        &imf[..3],
        &imf[8..11],
        &imf[17..25],
        &imf[12..16]
    )
}
