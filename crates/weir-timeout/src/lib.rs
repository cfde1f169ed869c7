#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
#[cfg(feature = "serde")]
mod config;
mod event;
mod future;
mod handle;
mod layer;
mod policy;
mod reconfigure;
mod service;
mod settings;
mod shared;
mod state;

pub use crate::builder::{TimeoutBuilder, check_attempt_within_total};
#[cfg(feature = "serde")]
pub use crate::config::TimeoutConfig;
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::TimeoutHandle;
pub use crate::layer::TimeoutLayer;
pub use crate::policy::{RouteTimeouts, TimeoutPolicy};
pub use crate::service::Timeout;
pub use crate::settings::TimeoutSettings;
pub use crate::state::BelowFloor;
