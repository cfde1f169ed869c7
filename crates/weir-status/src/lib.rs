#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authz;
mod body;
mod json;
mod page;
mod service;

pub use crate::authz::Authz;
pub use crate::body::StatusBody;
pub use crate::service::{DEFAULT_EVENTS_EVERY, MIN_EVENTS_EVERY, StatusService};
