//! The request deadline, carried in `http::Extensions`, and its wire formats (`grpc-timeout` and
//! weir's `x-timeout-ms`).

use std::time::Duration;

use http::{Extensions, HeaderMap};
use tokio::time::Instant;

use crate::wire::{
    GRPC_TIMEOUT, TIMEOUT_MS, decode_grpc_timeout, decode_timeout_ms, encode_grpc_timeout,
    encode_timeout_ms,
};

/// How far in the future the latest deadline lies: about 30 years, "never" in practice (tokio uses
/// the same horizon for an unbounded sleep). [`Deadline::after`] clamps to it.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// An absolute point in time by which a request must be answered, carried in `http::Extensions`.
///
/// A timeout layer (or a server reading [`Deadline::from_headers`]) puts it in the request's
/// extensions with [`set_earliest`](Self::set_earliest), so an outer deadline is never extended by
/// an inner one; retry and hedge read it with [`get`](Self::get) and start no attempt and sleep no
/// backoff past it; a client writes what is left of it on the outgoing request with
/// [`write_headers`](Self::write_headers).
///
/// It is a [`tokio::time::Instant`], so it follows tokio's paused clock in tests.
///
/// # Time base
///
/// The one rule for when weir's clocks start, in every layer:
///
/// 1. **A deadline is an instant, not a duration.** Once a `Deadline` is in a request (stored by
///    a timeout in [`Http`](crate::protocol::Http) mode, or read from an incoming `grpc-timeout`
///    / `x-timeout-ms`), every layer compares its clock against that same instant: a retry
///    starts no attempt and sleeps no backoff past it, a bulkhead queue waits no longer, a hedge
///    sends no hedge after it, a client writes what is left of it.
/// 2. **A duration a layer sets itself runs from `call`**, the moment the layer receives the
///    request: a timeout whose deadline is written down (an `Http` request's), the bulkhead's
///    `max_wait` in its queue, the retry's `max_duration`, chaos latency.
/// 3. **Except a duration nobody else reads, which may start at the first poll that finds the
///    call pending**, so that a call answered on its first poll never reads the clock: the
///    timeout's own timer in [`Plain`](crate::protocol::Plain) mode (and in server mode for a
///    request that carried no deadline, unless it exposes it), the hedge's delay. Tower's
///    `call(req).await` polls at once, so for every caller that awaits what it calls the two
///    bases differ by the first poll's own work only; a future left unpolled for a while gets its
///    full duration from its first poll.
/// 4. **Waits before `call`** (a breaker's or load shedder's backpressure in `poll_ready`) run
///    from the `poll_ready` that found no room; they are not part of a request's time, which
///    starts at `call` (rule 2).
///
/// Each pattern crate's README links here from its *Semantics* where it measures time.
///
/// ```
/// use std::time::Duration;
/// use weir_core::Deadline;
///
/// let mut request = http::Request::new(());
/// Deadline::after(Duration::from_secs(5)).set_earliest(request.extensions_mut());
/// // An inner layer asking for more time does not extend the deadline.
/// let in_force = Deadline::after(Duration::from_secs(60)).set_earliest(request.extensions_mut());
/// assert!(in_force.remaining() <= Duration::from_secs(5));
/// assert_eq!(Deadline::get(request.extensions()), Some(in_force));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline at `instant`.
    #[must_use]
    pub const fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// The deadline `timeout` from now. A timeout longer than about 30 years (`Duration::MAX`
    /// included) is clamped to that, so this never panics.
    #[must_use]
    pub fn after(timeout: Duration) -> Self {
        Self(saturating_add(Instant::now(), timeout.min(FAR_FUTURE)))
    }

    /// The instant of the deadline.
    #[must_use]
    pub const fn instant(self) -> Instant {
        self.0
    }

    /// The time left until the deadline; zero once it has passed.
    #[must_use]
    pub fn remaining(self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// The time left from `now` until the deadline; zero if it has passed by then.
    #[must_use]
    pub fn remaining_at(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whether the deadline has passed (no time is left at all).
    #[must_use]
    pub fn is_expired(self) -> bool {
        self.0 <= Instant::now()
    }

    /// The earlier of two deadlines.
    #[must_use]
    pub fn earliest(self, other: Self) -> Self {
        self.min(other)
    }

    /// The deadline in `extensions`, if there is one.
    #[must_use]
    pub fn get(extensions: &Extensions) -> Option<Self> {
        extensions.get::<Self>().copied()
    }

    /// Inserts self, or keeps the existing deadline if it is earlier; returns the one now in force.
    pub fn set_earliest(self, extensions: &mut Extensions) -> Self {
        match extensions.get_mut::<Self>() {
            Some(existing) => {
                *existing = existing.earliest(self);
                *existing
            }
            None => {
                extensions.insert(self);
                self
            }
        }
    }

    /// The deadline a server should honour for an incoming request: from `grpc-timeout` if
    /// present, else the HTTP header, capped at `max` (a client cannot ask for unbounded time).
    /// Malformed values are ignored (None).
    ///
    /// [`GRPC_TIMEOUT`] is read first, then [`TIMEOUT_MS`] (`x-timeout-ms`); a malformed value is
    /// ignored as if it were absent, so a malformed `grpc-timeout` falls back to `x-timeout-ms`. The
    /// timeout counts from now (the moment the headers are read). A value of zero gives a deadline
    /// that has already passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::HeaderMap;
    /// use weir_core::Deadline;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("grpc-timeout", "10H".parse().unwrap());
    /// let deadline = Deadline::from_headers(&headers, Duration::from_secs(30)).unwrap();
    /// assert!(deadline.remaining() <= Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn from_headers(headers: &HeaderMap, max: Duration) -> Option<Self> {
        let timeout = headers
            .get(GRPC_TIMEOUT)
            .and_then(|value| decode_grpc_timeout(value.as_bytes()).ok())
            .or_else(|| {
                headers
                    .get(TIMEOUT_MS)
                    .and_then(|value| decode_timeout_ms(value.as_bytes()).ok())
            })?;
        Some(Self::after(timeout.min(max)))
    }

    /// Writes the remaining budget minus `allowance` (network allowance) into `grpc-timeout` (if
    /// `grpc`) or the HTTP header; returns false (and writes nothing) if the remaining budget after
    /// the allowance is zero (the caller should fail the call without sending).
    ///
    /// The header ([`GRPC_TIMEOUT`] or [`TIMEOUT_MS`]) is replaced if it was already there, and
    /// the other one is removed, so a malformed or stale value the caller set is never sent on
    /// beside it. The value is rounded down to its unit ([`encode_grpc_timeout`]), except that
    /// `x-timeout-ms` is at least 1 ([`encode_timeout_ms`]). On `false` the headers are left as
    /// they were.
    #[must_use = "on `false` the request must not be sent: its deadline has passed"]
    pub fn write_headers(self, headers: &mut HeaderMap, grpc: bool, allowance: Duration) -> bool {
        let budget = self.remaining().saturating_sub(allowance);
        if budget.is_zero() {
            return false;
        }
        let (write, other, value) = if grpc {
            (GRPC_TIMEOUT, TIMEOUT_MS, encode_grpc_timeout(budget))
        } else {
            (TIMEOUT_MS, GRPC_TIMEOUT, encode_timeout_ms(budget))
        };
        // A fresh map holds neither: no look-up for the other one.
        if !headers.is_empty() {
            headers.remove(other);
        }
        headers.insert(write, value);
        true
    }
}

/// `instant + duration`, or the latest instant short of overflow that still adds a large part of
/// `duration` (never `instant` itself unless `duration` is zero).
fn saturating_add(instant: Instant, mut duration: Duration) -> Instant {
    loop {
        if let Some(later) = instant.checked_add(duration) {
            return later;
        }
        duration /= 2;
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::wire::{GRPC_TIMEOUT, TIMEOUT_MS};

    /// A duration no instant can be moved by is halved until it fits: the result is far in the
    /// future, never a panic (found by cargo-mutants: `Deadline::after` caps its timeout, so
    /// no other test reaches the halving).
    #[test]
    fn saturating_add_halves_a_duration_that_would_overflow() {
        let now = Instant::now();
        assert!(now.checked_add(Duration::MAX).is_none());
        let later = saturating_add(now, Duration::MAX);
        assert!(later > now + Duration::from_secs(100 * 365 * 86_400));
        assert_eq!(saturating_add(now, Duration::ZERO), now);
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_and_is_expired_follow_the_clock() {
        let deadline = Deadline::after(Duration::from_millis(100));
        assert_eq!(deadline.remaining(), Duration::from_millis(100));
        assert!(!deadline.is_expired());

        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(deadline.remaining(), Duration::from_millis(40));
        assert!(!deadline.is_expired());

        tokio::time::advance(Duration::from_millis(40)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert!(deadline.is_expired());

        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
        let earlier = deadline.instant() - Duration::from_millis(30);
        assert_eq!(deadline.remaining_at(earlier), Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_timeout_does_not_panic() {
        let deadline = Deadline::after(Duration::MAX);
        assert!(deadline.remaining() >= Duration::from_secs(29 * 365 * 86_400));
        assert!(!deadline.is_expired());
        assert_eq!(Deadline::at(deadline.instant()), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn set_earliest_keeps_the_earlier_deadline_both_ways() {
        let short = Deadline::after(Duration::from_secs(1));
        let long = Deadline::after(Duration::from_secs(10));
        assert_eq!(short.earliest(long), short);
        assert_eq!(long.earliest(short), short);

        let mut extensions = Extensions::new();
        assert_eq!(Deadline::get(&extensions), None);
        assert_eq!(long.set_earliest(&mut extensions), long);
        assert_eq!(short.set_earliest(&mut extensions), short);
        assert_eq!(Deadline::get(&extensions), Some(short));

        let mut extensions = Extensions::new();
        assert_eq!(short.set_earliest(&mut extensions), short);
        assert_eq!(long.set_earliest(&mut extensions), short);
        assert_eq!(Deadline::get(&extensions), Some(short));
    }

    fn request_headers(name: HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn from_headers_caps_and_honours_the_client() {
        let max = Duration::from_secs(30);
        let capped = Deadline::from_headers(&request_headers(GRPC_TIMEOUT, "10H"), max).unwrap();
        assert_eq!(capped.remaining(), max);

        let honoured = Deadline::from_headers(&request_headers(GRPC_TIMEOUT, "100m"), max).unwrap();
        assert_eq!(honoured.remaining(), Duration::from_millis(100));

        let http = Deadline::from_headers(&request_headers(TIMEOUT_MS, "250"), max).unwrap();
        assert_eq!(http.remaining(), Duration::from_millis(250));

        assert_eq!(
            Deadline::from_headers(&request_headers(GRPC_TIMEOUT, "10"), max),
            None
        );
        assert_eq!(
            Deadline::from_headers(&request_headers(TIMEOUT_MS, "-1"), max),
            None
        );
        assert_eq!(Deadline::from_headers(&HeaderMap::new(), max), None);
    }

    #[tokio::test(start_paused = true)]
    async fn from_headers_prefers_grpc_timeout_and_skips_a_malformed_one() {
        let max = Duration::from_secs(30);
        let mut headers = request_headers(GRPC_TIMEOUT, "2S");
        headers.insert(TIMEOUT_MS, HeaderValue::from_static("5000"));
        let deadline = Deadline::from_headers(&headers, max).unwrap();
        assert_eq!(deadline.remaining(), Duration::from_secs(2));

        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("2 S"));
        let deadline = Deadline::from_headers(&headers, max).unwrap();
        assert_eq!(deadline.remaining(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn write_headers_subtracts_the_allowance() {
        let deadline = Deadline::after(Duration::from_secs(2));
        let allowance = Duration::from_millis(50);

        let mut headers = HeaderMap::new();
        assert!(deadline.write_headers(&mut headers, true, allowance));
        assert_eq!(headers[GRPC_TIMEOUT], "1950000u");
        assert!(deadline.write_headers(&mut headers, false, allowance));
        assert_eq!(headers[TIMEOUT_MS], "1950");

        tokio::time::advance(Duration::from_millis(1900)).await;
        assert!(deadline.write_headers(&mut headers, true, allowance));
        assert_eq!(headers[GRPC_TIMEOUT], "50000000n");

        // #16.6: writing one header removes the other: a malformed (or stale) value the caller
        // set is never sent on beside the budget.
        let mut sent = HeaderMap::new();
        sent.insert(TIMEOUT_MS, HeaderValue::from_static("abc"));
        assert!(deadline.write_headers(&mut sent, true, allowance));
        assert!(sent.get(TIMEOUT_MS).is_none());
        assert_eq!(sent[GRPC_TIMEOUT], "50000000n");
        sent.insert(GRPC_TIMEOUT, HeaderValue::from_static("123456789n"));
        assert!(deadline.write_headers(&mut sent, false, allowance));
        assert!(sent.get(GRPC_TIMEOUT).is_none());
        assert_eq!(sent[TIMEOUT_MS], "50");

        // 100 ms left... then 40 ms: less than the allowance, nothing is written.
        tokio::time::advance(Duration::from_millis(60)).await;
        let mut fresh = HeaderMap::new();
        assert!(!deadline.write_headers(&mut fresh, true, allowance));
        assert!(!deadline.write_headers(&mut fresh, false, allowance));
        assert!(fresh.is_empty());

        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(deadline.is_expired());
        assert!(!deadline.write_headers(&mut fresh, false, Duration::ZERO));
        assert!(fresh.is_empty());
    }
}
