//! The rate limiter's settings: for now only the pattern name its [`ConfigError`]s carry. Its
//! quotas, mode and key bounds are still held by [`RateLimitBuilder`](crate::RateLimitBuilder)
//! field by field (a `RateLimitSettings` struct is #17.4's remaining step for this crate).
//!
//! [`ConfigError`]: weir_core::ConfigError

/// The pattern name of the rate limiter's [`ConfigError`](weir_core::ConfigError)s.
pub(crate) const PATTERN: &str = "rate limit";
