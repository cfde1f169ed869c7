#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod builder;
mod event;
mod future;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod inspect;
mod key;
mod layer;
mod service;
mod settings;
mod shared;
mod state;
mod store;

pub use crate::body::{BodyMode, HandlerBody, IdempotencyBody, Wrapped};
pub use crate::builder::IdempotencyBuilder;
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::{IdempotencyHandle, IdempotencyStats};
pub use crate::layer::IdempotencyLayer;
pub use crate::service::Idempotency;
pub use crate::settings::{
    DEFAULT_LEASE, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_KEY_LEN,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETRY_AFTER, DEFAULT_TTL,
    IdempotencySettings, MAX_KEY_LEN_LIMIT, Required,
};
pub use crate::state::{Claim, Digest, StoredResponse, Token};
#[cfg(feature = "redis")]
pub use crate::store::{FailurePolicy, RedisFuture, RedisStore, RedisStoreBuilder};
pub use crate::store::{IdempotencyStore, MemoryStore};
