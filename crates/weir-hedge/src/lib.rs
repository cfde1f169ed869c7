#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod event;
mod future;
mod grpc;
mod handle;
mod inspect;
mod layer;
mod service;
mod settings;
mod shared;
mod state;

pub use crate::builder::{HedgeBudget, HedgeBuilder};
pub use crate::event::{Event, Reason};
pub use crate::future::ResponseFuture;
pub use crate::grpc::{CountedCopy, CountedPrepare, GrpcAttempts};
pub use crate::handle::HedgeHandle;
pub use crate::layer::HedgeLayer;
pub use crate::service::Hedge;
pub use crate::settings::{
    DEFAULT_BUDGET_BURST, DEFAULT_BUDGET_MIN_PER_SECOND, DEFAULT_BUDGET_RATIO, DEFAULT_DELAY,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MIN_DELAY, DEFAULT_MIN_SAMPLES, DEFAULT_WINDOW, HedgeSettings,
    MAX_ATTEMPTS, PercentileSettings,
};
