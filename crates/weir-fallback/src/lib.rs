#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod event;
mod future;
mod handle;
mod inspect;
mod last_good;
mod layer;
mod protocol;
mod service;
mod settings;
mod shared;
mod source;
mod state;

pub use crate::builder::FallbackBuilder;
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::{FallbackHandle, FallbackStats};
pub use crate::last_good::{LastGood, LastGoodBody};
pub use crate::layer::FallbackLayer;
pub use crate::protocol::{FALLBACK_HEADER, Protocol};
pub use crate::service::Fallback;
pub use crate::settings::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_STALE,
    LastGoodSettings,
};
pub use crate::shared::{Plan, Sources};
pub use crate::source::{
    AltFrom, AltFuture, AltReplay, AltService, Alternative, AtLoad, Cause, FromCause, FromParts,
    Never, NoService, NoValue, Prepare, Switch, Value,
};
pub use crate::state::{Reason, Source};
/// weir-retry's request keeping, for [`FallbackBuilder::service_replay`].
pub use weir_retry::{HttpReplay, Replay, ReplayBody};
