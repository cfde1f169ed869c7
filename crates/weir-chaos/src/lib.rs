#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod builder;
#[cfg(feature = "serde")]
mod config;
mod event;
mod fault;
mod future;
mod handle;
mod inspect;
mod layer;
mod optional;
mod protocol;
mod service;
mod settings;
mod shared;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod state;

pub use crate::body::{BodyFault, ChaosBody};
pub use crate::builder::ChaosBuilder;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use crate::config::ChaosConfig;
pub use crate::event::Event;
pub use crate::fault::{AnyClient, Behaviour, MakeError, NoBehaviour, NoError, OnlyKeys, Select};
pub use crate::future::ResponseFuture;
pub use crate::handle::ChaosHandle;
pub use crate::layer::ChaosLayer;
pub use crate::optional::OptionalChaosLayer;
pub use crate::protocol::{FAULT_HEADER, Protocol};
pub use crate::service::Chaos;
pub use crate::settings::{
    ChaosSettings, DEFAULT_BODY_AFTER, DEFAULT_GRPC_CODE, DEFAULT_LATENCY, DEFAULT_STATUS, Latency,
};
pub use crate::state::Fault;
