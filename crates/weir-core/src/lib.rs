#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accessors;
pub mod backoff;
pub mod body;
pub mod classify;
#[cfg(feature = "serde")]
pub mod config;
mod config_error;
mod deadline;
pub mod degrade;
mod error;
pub mod inspect;
pub mod key;
pub mod keyed;
pub mod lanes;
#[cfg(any(test, feature = "model-sync"))]
#[doc(hidden)]
pub mod model_sync;
mod name;
pub mod observer;
mod outcome;
pub mod protocol;
pub mod reconfigure;
pub mod response;
pub mod wire;

pub use crate::config_error::ConfigError;
pub use crate::deadline::Deadline;
pub use crate::error::{BoxError, Error};
pub use crate::key::extractor::KeyExtractor;
pub use crate::name::Name;
pub use crate::observer::vocab::{Event, Level, Observer};
pub use crate::outcome::{Classify, Failure, Outcome};
