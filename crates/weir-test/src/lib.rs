#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]

mod assert;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
mod probe;
mod strict;

pub use crate::assert::{
    assert_clone, assert_send, assert_send_sync, assert_send_sync_static, poll_ready_now,
};
pub use crate::probe::{Probe, ProbeFuture, ProbeHandle};
pub use crate::strict::StrictService;
