#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod builder;
#[cfg(feature = "serde")]
mod config;
mod event;
mod future;
mod handle;
mod inspect;
mod layer;
mod protocol;
mod replay;
mod scope;
mod service;
mod settings;
mod shared;
mod state;

pub use crate::budget::{RetryBudget, SharedBudget};
pub use crate::builder::RetryBuilder;
#[cfg(feature = "serde")]
pub use crate::config::{RetryConfig, ServerScope};
pub use crate::event::{Event, GiveUp};
pub use crate::future::ResponseFuture;
pub use crate::handle::RetryHandle;
pub use crate::layer::RetryLayer;
pub use crate::protocol::{BodyGuard, Protocol};
pub use crate::replay::{
    BodyError, CloneRequest, DEFAULT_BODY_LIMIT, Filtered, FilteredPrepare, HttpCopy, HttpReplay,
    IdempotentReplay, PrepareBody, Replay, ReplayBody,
};
pub use crate::scope::{BudgetScope, PerKey};
pub use crate::service::Retry;
#[cfg(feature = "serde")]
pub use crate::settings::BudgetSpec;
pub use crate::settings::{
    DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_SERVER_DELAY, DEFAULT_MAX_SERVERS,
    GRPC_MAX_ATTEMPTS, RetrySettings,
};
