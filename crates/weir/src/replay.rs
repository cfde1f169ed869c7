//! `IdempotentReplay`: the retry replay of the client presets and of
//! `ServiceBuilderExt::weir_retry`, which never sends a non-idempotent HTTP request twice. It lives
//! in weir-retry (the default replay of `RetryLayer::new` and `RetryLayer::builder`).

pub use weir_retry::IdempotentReplay;
