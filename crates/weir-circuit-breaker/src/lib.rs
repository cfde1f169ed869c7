#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
#[cfg(feature = "serde")]
mod config;
mod event;
mod future;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod inspect;
mod layer;
mod reconfigure;
mod service;
mod settings;
mod shared;
mod state;
mod sync;
mod trailers;

pub use crate::builder::{CircuitBreakerBuilder, KeyedCircuitBreakerBuilder};
#[cfg(feature = "serde")]
pub use crate::config::{CircuitBreakerConfig, FailureRateSpec, SlowCallsSpec, TimeWindowSpec};
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::{CircuitBreakerHandle, KeyedCircuitBreakerHandle, Snapshot};
pub use crate::layer::{CircuitBreakerLayer, KeyedCircuitBreakerLayer};
pub use crate::service::{CircuitBreaker, KeyedCircuitBreaker};
pub use crate::state::{Reason, State};
pub use crate::trailers::{BodyGuard, Head, Protocol, Trailers};
