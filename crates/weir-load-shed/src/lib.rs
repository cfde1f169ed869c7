#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod classify;
#[cfg(feature = "serde")]
mod config;
mod event;
mod future;
mod handle;
mod inspect;
mod layer;
mod level;
mod limit;
mod protocol;
mod reconfigure;
mod service;
mod settings;
mod shared;
mod state;
mod sync;
mod tuning;

pub use crate::builder::LoadShedBuilder;
pub use crate::classify::{Prioritize, Uniform};
#[cfg(feature = "serde")]
pub use crate::config::{AimdSpec, Gradient2Spec, LimitSpec, LoadShedConfig, VegasSpec};
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::{LoadShedHandle, LoadShedStats};
pub use crate::layer::LoadShedLayer;
pub use crate::level::{LoadLevelLayer, LoadLevelService};
pub use crate::limit::{Aimd, ConfigLimit, Fixed, Gradient2, Limit, Sample, Vegas};
pub use crate::protocol::Protocol;
pub use crate::service::LoadShed;
pub use crate::settings::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_RETRY_AFTER, Levels, LoadShedSettings, Shares,
};
pub use crate::shared::InFlight;
pub use crate::state::{LoadLevel, Priority};
pub use crate::tuning::LoadShedTuning;
