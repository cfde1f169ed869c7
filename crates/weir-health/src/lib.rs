#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "circuit-breaker")]
mod breaker;
#[cfg(feature = "bulkhead")]
mod bulkhead;
mod check;
mod entry;
#[cfg(feature = "tonic")]
mod grpc;
mod http;
mod lifecycle;
#[cfg(feature = "load-shed")]
mod load;
#[cfg(feature = "redis")]
mod redis;
mod registry;
mod settings;
mod state;
mod status;
mod tag;

#[cfg(feature = "circuit-breaker")]
pub use crate::breaker::BreakerCheck;
#[cfg(feature = "bulkhead")]
pub use crate::bulkhead::BulkheadCheck;
pub use crate::check::{FnCheck, HealthCheck, from_fn};
pub use crate::entry::CheckReport;
#[cfg(feature = "tonic")]
pub use crate::grpc::{DEFAULT_WATCH_PERIOD, GrpcHealth, WatchStream};
pub use crate::http::{HEALTH_JSON, HealthService, ResponseFuture, Verbose};
pub use crate::lifecycle::{Lifecycle, Phase};
#[cfg(feature = "load-shed")]
pub use crate::load::LoadCheck;
#[cfg(feature = "redis")]
pub use crate::redis::RedisCheck;
pub use crate::registry::{HealthRegistry, Registration, Summary};
pub use crate::settings::{
    CheckSettings, DEFAULT_CACHE_FOR, DEFAULT_HEALTHY_AFTER, DEFAULT_TIMEOUT,
    DEFAULT_UNHEALTHY_AFTER,
};
pub use crate::status::{Health, Status};
pub use crate::tag::Tag;
