#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod connection;
mod event;
mod handle;
mod key;
mod lease;
mod policy;
mod reserve;
mod script;
mod settings;
mod store;

pub use crate::builder::RedisStoreBuilder;
pub use crate::event::{Event, Reason};
pub use crate::handle::RedisHandle;
pub use crate::key::RedisKey;
pub use crate::policy::FailurePolicy;
pub use crate::script::RedisAlgorithm;
pub use crate::store::{DecisionFuture, RedisStore};
