#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder_ext;
#[cfg(all(feature = "presets", feature = "tonic"))]
mod grpc;
#[cfg(feature = "config")]
mod optional;
#[cfg(feature = "presets")]
mod presets;
#[cfg(feature = "retry")]
mod replay;
#[cfg(feature = "config")]
mod settings;

pub use crate::builder_ext::ServiceBuilderExt;
#[cfg(all(feature = "presets", feature = "tonic"))]
pub use crate::grpc::{
    GrpcStatusFuture, GrpcStatusLayer, GrpcStatusService, TonicBody, TonicBodyLayer, grpc_status,
};
#[cfg(feature = "config")]
pub use crate::optional::{Optional, OptionalFuture, OptionalLayer};
#[cfg(feature = "presets")]
pub use crate::presets::{
    BreakerInside, BreakerOutside, Client, ClientBuilder, ClientObserver, ClientStack, ConfigError,
    DEFAULT_EXEMPT_PATHS, Exempt, ExemptFuture, HttpClient, Mode, PerAuthority, ServerBuilder,
    ServerStack, Single,
};
#[cfg(all(feature = "presets", feature = "tonic"))]
pub use crate::presets::{Grpc, GrpcClient};
#[cfg(feature = "retry")]
pub use crate::replay::IdempotentReplay;
#[cfg(feature = "config")]
pub use crate::settings::{ClientConfig, ConfigServerStack, RefusalBodyConfig, ServerConfig};
/// Bulkheads: the [`weir-bulkhead`](weir_bulkhead) crate.
#[cfg(feature = "bulkhead")]
pub use weir_bulkhead as bulkhead;
/// Circuit breakers: the [`weir-circuit-breaker`](weir_circuit_breaker) crate.
#[cfg(feature = "circuit-breaker")]
pub use weir_circuit_breaker as circuit_breaker;
/// The shared vocabulary every weir layer speaks: re-exported from [`weir_core`].
pub use weir_core::*;
/// Fallback answers and graceful degradation: the [`weir-fallback`](weir_fallback) crate.
#[cfg(feature = "fallback")]
pub use weir_fallback as fallback;
/// Health checks and probes: the [`weir-health`](weir_health) crate.
#[cfg(feature = "health")]
pub use weir_health as health;
/// Hedged requests: the [`weir-hedge`](weir_hedge) crate.
#[cfg(feature = "hedge")]
pub use weir_hedge as hedge;

/// Load shedding and adaptive concurrency: the [`weir-load-shed`](weir_load_shed) crate.
#[cfg(feature = "load-shed")]
pub use weir_load_shed as load_shed;
/// Rate limiting: the [`weir-rate-limit`](weir_rate_limit) crate.
#[cfg(feature = "rate-limit")]
pub use weir_rate_limit as rate_limit;
/// The Redis store for the rate limiter: the [`weir-redis`](weir_redis) crate.
#[cfg(feature = "redis")]
pub use weir_redis as redis;
/// Retry with backoff, budgets and body replay: the [`weir-retry`](weir_retry) crate.
#[cfg(feature = "retry")]
pub use weir_retry as retry;
/// Timeouts and deadline propagation: the [`weir-timeout`](weir_timeout) crate.
#[cfg(feature = "timeout")]
pub use weir_timeout as timeout;
