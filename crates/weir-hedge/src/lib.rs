#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod event;
mod future;
mod grpc;
mod handle;
mod layer;
mod service;
mod shared;
mod state;

pub use crate::builder::{ConfigError, HedgeBudget, HedgeBuilder};
pub use crate::event::{Event, Reason};
pub use crate::future::ResponseFuture;
pub use crate::grpc::{CountedCopy, CountedPrepare, GrpcAttempts};
pub use crate::handle::HedgeHandle;
pub use crate::layer::HedgeLayer;
pub use crate::service::Hedge;
