#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod event;
mod future;
mod handle;
mod last_good;
mod layer;
mod protocol;
mod service;
mod shared;
mod source;
mod state;

pub use crate::builder::{ConfigError, FallbackBuilder};
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::{FallbackHandle, FallbackStats};
pub use crate::last_good::{LastGood, LastGoodBody};
pub use crate::layer::FallbackLayer;
pub use crate::protocol::{FALLBACK_HEADER, Http, Plain, Protocol};
pub use crate::service::Fallback;
pub use crate::shared::{Plan, Sources};
pub use crate::source::{
    AltFrom, AltFuture, AltService, Alternative, AtLoad, Cause, FromCause, FromParts, Never,
    NoService, NoValue, Switch, Value,
};
pub use crate::state::{Reason, Source};
