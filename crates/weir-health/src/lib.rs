#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "circuit-breaker")]
mod breaker;
mod check;
mod entry;
mod http;
mod lifecycle;
mod registry;
mod state;
mod status;
mod tag;

#[cfg(feature = "circuit-breaker")]
pub use crate::breaker::BreakerCheck;
pub use crate::check::{FnCheck, HealthCheck, from_fn};
pub use crate::entry::CheckReport;
pub use crate::http::{HEALTH_JSON, HealthService, ResponseFuture, Verbose};
pub use crate::lifecycle::{Lifecycle, Phase};
pub use crate::registry::{
    ConfigError, DEFAULT_CACHE_FOR, DEFAULT_TIMEOUT, HealthRegistry, Registration, Summary,
};
pub use crate::status::{Health, Status};
pub use crate::tag::Tag;
