#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
#[cfg(feature = "serde")]
mod config;
mod event;
mod future;
mod handle;
mod inspect;
mod layer;
mod partition;
mod permit;
mod protocol;
mod reconfigure;
#[cfg(feature = "runtime")]
mod runtime;
mod service;
mod settings;
mod shared;
mod state;
mod sync;
mod tuning;

pub use crate::builder::BulkheadBuilder;
#[cfg(feature = "serde")]
pub use crate::config::{BorrowSpec, PartitionedConfig};
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::{BulkheadHandle, BulkheadStats};
pub use crate::layer::BulkheadLayer;
pub use crate::partition::{
    Partitioned, PartitionedBuilder, PartitionedHandle, PartitionedLayer, PartitionedTotals,
};
pub use crate::permit::Permit;
pub use crate::protocol::Protocol;
pub use crate::reconfigure::PartitionedTuning;
#[cfg(feature = "runtime")]
pub use crate::runtime::{Isolated, IsolatedBuilder, IsolatedFuture, IsolatedLayer};
pub use crate::service::Bulkhead;
pub use crate::settings::{
    BulkheadSettings, DEFAULT_MAX_CONCURRENT, DEFAULT_RETRY_AFTER, MAX_PERMITS,
};
pub use crate::state::RejectReason;
