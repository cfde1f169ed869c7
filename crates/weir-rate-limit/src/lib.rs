#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod clock;
#[cfg(feature = "serde")]
mod config;
mod event;
mod future;
mod handle;
mod inspect;
mod layer;
mod live;
mod protocol;
mod quota;
mod reconfigure;
mod service;
mod settings;
mod shared;
mod state;
mod store;
mod sync;
mod tier;
mod top;

pub use crate::builder::RateLimitBuilder;
#[cfg(feature = "serde")]
pub use crate::config::{
    ConfigAlgorithm, ConfigAlgorithmState, ConfigBuilder, ConfigLayer, ConfigMode, ConfigTiers,
    QuotaConfig, RateLimitConfig,
};
pub use crate::event::Event;
pub use crate::future::ResponseFuture;
pub use crate::handle::RateLimitHandle;
pub use crate::layer::RateLimitLayer;
pub use crate::protocol::{AnyProtocol, Http, Protocol};
pub use crate::quota::Quota;
pub use crate::service::RateLimit;
pub use crate::settings::RateLimitSettings;
pub use crate::state::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, SlidingLog, SlidingLogState, SlidingWindow,
    TokenBucket, TokenBucketState, Verdict, WindowState,
};
pub use crate::store::{AdminStore, Ask, Decision, InspectStore, MemoryStore, Now, Store, Tier};
pub use crate::tier::{Cost, DefaultTier, TierOf, UnitCost};
pub use crate::top::Limited;
