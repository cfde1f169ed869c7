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
#[cfg(feature = "reload")]
mod reload;
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
    BreakerInside, BreakerOutside, ChaosClient, Client, ClientBuilder, ClientObserver, ClientStack,
    DEFAULT_EXEMPT_PATHS, Exempt, ExemptFuture, FallbackClient, HttpClient, Mode, PerAuthority,
    ServerBuilder, ServerStack, Single,
};
#[cfg(all(feature = "presets", feature = "tonic"))]
pub use crate::presets::{Grpc, GrpcClient};
#[cfg(feature = "reload")]
pub use crate::reload::{
    ClientReloader, ClientTarget, PatternConfig, PatternReloader, PatternTarget, Reload, Reloader,
    ServerReloader, ServerTarget, Target, Watcher, reloader, watch,
};
#[cfg(feature = "retry")]
pub use crate::replay::IdempotentReplay;
#[cfg(feature = "config")]
pub use crate::settings::{
    ClientConfig, ConfigClientStack, ConfigServerStack, RefusalBodyConfig, ServerConfig,
};
/// Bulkheads: the [`weir-bulkhead`](weir_bulkhead) crate.
#[cfg(feature = "bulkhead")]
pub use weir_bulkhead as bulkhead;
/// Fault injection: the [`weir-chaos`](weir_chaos) crate.
#[cfg(feature = "chaos")]
pub use weir_chaos as chaos;
/// Circuit breakers: the [`weir-circuit-breaker`](weir_circuit_breaker) crate.
#[cfg(feature = "circuit-breaker")]
pub use weir_circuit_breaker as circuit_breaker;
/// The shared vocabulary every weir layer speaks: the [`weir-core`](weir_core) crate (its core
/// names at `weir::core::`, the rest in its modules: `weir::core::key`, `weir::core::wire`,
/// `weir::core::response`, ...).
pub use weir_core as core;
/// The one configuration error of every builder and configuration file, presets included.
pub use weir_core::ConfigError;
pub use weir_core::{BoxError, Error};
/// Fallback answers and graceful degradation: the [`weir-fallback`](weir_fallback) crate.
#[cfg(feature = "fallback")]
pub use weir_fallback as fallback;
/// Health checks and probes: the [`weir-health`](weir_health) crate.
#[cfg(feature = "health")]
pub use weir_health as health;
/// Hedged requests: the [`weir-hedge`](weir_hedge) crate.
#[cfg(feature = "hedge")]
pub use weir_hedge as hedge;
/// Server-side idempotency keys: the [`weir-idempotency`](weir_idempotency) crate.
#[cfg(feature = "idempotency")]
pub use weir_idempotency as idempotency;

/// Metrics through the `metrics` facade: weir-core's [`observer`](weir_core::observer) module,
/// with the `Metrics` observer, `record(&registry)` for a scrape handler and
/// `export(&registry, interval)`, the one line that keeps every registered layer's gauges set.
#[cfg(feature = "metrics")]
pub use weir_core::observer as metrics;
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
/// The live status page of registered layers: the [`weir-status`](weir_status) crate.
#[cfg(feature = "status")]
pub use weir_status as status;
/// Timeouts and deadline propagation: the [`weir-timeout`](weir_timeout) crate.
#[cfg(feature = "timeout")]
pub use weir_timeout as timeout;
