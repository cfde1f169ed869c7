//! The Redis store's settings: for now only the pattern name its [`ConfigError`]s carry. The
//! rest is still held by [`RedisStoreBuilder`](crate::RedisStoreBuilder) field by field.
//!
//! [`ConfigError`]: weir_core::ConfigError

/// The pattern name of weir-redis's [`ConfigError`](weir_core::ConfigError)s.
pub(crate) const PATTERN: &str = "redis";
