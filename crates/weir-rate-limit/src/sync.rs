//! The synchronisation primitives the algorithms' states (`state.rs`, and `config.rs`'s
//! states of a named algorithm) are written against: `std`'s in the library (re-exported, so
//! every call is the plain `std` operation, and the public `Algorithm::State` types are
//! `std`'s), and in the crate's own unit tests `std`'s wrapped so that, inside a `shuttle` model
//! (`state/model.rs`), every operation is first a scheduling point of shuttle's scheduler,
//! which then explores the interleavings of those operations between threads. Outside a model
//! the wrappers behave as `std`'s (they are weir-core's `model_sync`, one copy for every crate's
//! models). Nothing here is public.
//!
//! A switch of the imports rather than a type parameter (the bulkhead's `Primitives`, the load
//! shedder's `Word`): the states are public types of the `Algorithm` trait, and a parameter
//! for their primitives would show in the public API for the tests' sake.

#[cfg(not(test))]
pub(crate) use std::sync::Mutex;
#[cfg(not(test))]
pub(crate) use std::sync::atomic::AtomicU64;

#[cfg(test)]
pub(crate) use weir_core::model_sync::{AtomicU64, Mutex};
