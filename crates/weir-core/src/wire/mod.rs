//! What weir reads and writes on the wire: every header name it uses, declared once, and every
//! codec for them.
//!
//! | header | read | written |
//! |---|---|---|
//! | `Retry-After` (delay-seconds or HTTP-date) | [`parse_retry_after`], [`server_hint`] | by [`ErrorResponseLayer`](crate::response::ErrorResponseLayer) |
//! | `grpc-retry-pushback-ms` ([`GRPC_RETRY_PUSHBACK_MS`]) | [`parse_grpc_pushback`], [`server_hint`] | [`grpc_pushback_millis`] |
//! | `RateLimit`, `RateLimit-Policy` ([`RATELIMIT`], [`RATELIMIT_POLICY`]) | [`parse_ratelimit`], [`parse_ratelimit_policy`] (and `_lenient`) | [`RateLimitInfo::write_headers`] |
//! | `X-RateLimit-Limit`, `-Remaining`, `-Reset` | | [`RateLimitInfo::write_headers`] with [`HeaderStyle::XRateLimit`] or [`HeaderStyle::Both`] |
//! | `grpc-timeout` ([`GRPC_TIMEOUT`]) | [`decode_grpc_timeout`] | [`encode_grpc_timeout`] |
//! | `x-timeout-ms` ([`TIMEOUT_MS`]) | [`decode_timeout_ms`] | [`encode_timeout_ms`] |
//! | `weir-fallback` ([`WEIR_FALLBACK`]) | | by weir-fallback's HTTP mode on every fallback answer |
//! | `grpc-status`, `grpc-message` ([`GRPC_STATUS`], [`GRPC_MESSAGE`]) | [`GrpcCode::from_bytes`] | [`GrpcCode::as_str`]; the code of an [`Error`](crate::Error) is [`response::grpc_code`](crate::response::grpc_code) |
//!
//! Every parser here is allocation-free and panic-free on whatever a peer sends; every hint is
//! capped at [`MAX_HINT`] (one day).

mod grpc_code;
mod hint;
mod rate_limit_info;
mod ratelimit;
mod sf;
#[cfg(test)]
mod tests;
mod timeout;

use http::{HeaderMap, HeaderName};

pub(crate) use self::rate_limit_info::ceil_secs;

pub use self::grpc_code::GrpcCode;
pub use self::hint::{
    MAX_HINT, ServerHint, grpc_pushback_millis, parse_grpc_pushback, parse_retry_after, server_hint,
};
pub use self::rate_limit_info::{HeaderStyle, RateLimitInfo};
pub use self::ratelimit::{
    RateLimitItem, RateLimitPolicyItem, parse_ratelimit, parse_ratelimit_lenient,
    parse_ratelimit_policy, parse_ratelimit_policy_lenient,
};
pub use self::timeout::{
    InvalidTimeout, decode_grpc_timeout, decode_timeout_ms, encode_grpc_timeout, encode_timeout_ms,
};

/// The `grpc-timeout` request header (gRPC over HTTP/2): `TimeoutValue TimeoutUnit`, a positive
/// integer of at most 8 ASCII digits followed by one of `H` (hours), `M` (minutes), `S` (seconds),
/// `m` (milliseconds), `u` (microseconds), `n` (nanoseconds). Read and written by
/// [`decode_grpc_timeout`] and [`encode_grpc_timeout`].
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// weir's HTTP deadline header, `x-timeout-ms`: the time the client still allows, relative to when
/// the request is received, in decimal milliseconds (1 to 10 ASCII digits, nothing else). Read and
/// written by [`decode_timeout_ms`] and [`encode_timeout_ms`].
pub const TIMEOUT_MS: HeaderName = HeaderName::from_static("x-timeout-ms");

/// gRPC retry pushback (gRFC A6), `grpc-retry-pushback-ms`: how long a client should wait before
/// retrying, in milliseconds; negative means "do not retry".
pub const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static(GRPC_RETRY_PUSHBACK_MS_STR);

/// [`GRPC_RETRY_PUSHBACK_MS`] as a `&'static str`, for tonic's `MetadataKey::from_static`.
#[cfg(feature = "tonic")]
pub(crate) const GRPC_RETRY_PUSHBACK_MS_STR: &str = "grpc-retry-pushback-ms";
#[cfg(not(feature = "tonic"))]
const GRPC_RETRY_PUSHBACK_MS_STR: &str = "grpc-retry-pushback-ms";

/// gRFC A6's `grpc-previous-rpc-attempts`: how many attempts of a call were sent before this one
/// (written by a retrying or hedging client).
pub const GRPC_PREVIOUS_RPC_ATTEMPTS: HeaderName =
    HeaderName::from_static("grpc-previous-rpc-attempts");

/// `weir-fallback`: carried by every HTTP answer weir-fallback gives in place of the primary's
/// (`value`, `service` or `last_good`, the source that answered), so clients and caches can tell
/// a degraded answer from a fresh one.
pub const WEIR_FALLBACK: HeaderName = HeaderName::from_static("weir-fallback");

/// `grpc-status`: a gRPC call's status code, in the trailers (or the headers of a trailers-only
/// response).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// `grpc-message`: a gRPC call's status message, percent-encoded.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The IETF `RateLimit` field (draft-ietf-httpapi-ratelimit-headers): the state of each policy.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The IETF `RateLimit-Policy` field: the quota and window of each policy.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The common `X-RateLimit-Limit` field (before the IETF draft): the quota.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");

/// The common `X-RateLimit-Remaining` field: what is left of the quota.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// The common `X-RateLimit-Reset` field: seconds until the quota is whole again.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `X-Forwarded-For`: the client and proxies a request passed through, read by
/// [`PeerIp`](crate::key::PeerIp) only from trusted proxies.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `X-API-Key`: where [`ApiKey`](crate::key::ApiKey) looks first for an API key.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): a request that carries one may
/// be retried whatever its method.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `Idempotent-Replayed: true` (Stripe's name; the IETF draft names none): written by
/// weir-idempotency on a response replayed from its store, so a client can tell a replay from a
/// fresh execution.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Removes the headers that describe one connection rather than the message (RFC 9110 section
/// 7.6.1): `Connection` and every header it names, `Transfer-Encoding`, `TE`, `Trailer`,
/// `Upgrade`, `Proxy-Authenticate`, `Keep-Alive` and `Proxy-Connection`. For a response kept to
/// be served again on another connection (weir-fallback's last good answer, weir-idempotency's
/// replay).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    use http::header::{CONNECTION, PROXY_AUTHENTICATE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
    // The names `Connection` lists, collected first: they are removed from the same map.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        TRANSFER_ENCODING,
        TE,
        TRAILER,
        UPGRADE,
        PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}
