//! The synchronisation primitives the state machine (`state/machine.rs`, `state/window.rs`) is
//! written against: `std`'s in the library (re-exported, so every call is the plain `std`
//! operation), and in the crate's own unit tests `std`'s wrapped so that, inside a `shuttle`
//! model (`state/model.rs`), every operation is first a scheduling point of shuttle's
//! scheduler, which then explores the interleavings of those operations between threads.
//! Outside a model the wrappers behave as `std`'s (they are weir-core's `model_sync`, one copy
//! for every crate's models). Nothing here is public.
//!
//! A switch of the imports rather than a type parameter (the bulkhead's `Primitives`, the load
//! shedder's `Word`): the breaker holds seven atomics and a lock, and a parameter would run
//! through every method of the machine for the tests' sake.

#[cfg(not(test))]
pub(crate) use std::sync::Mutex;
#[cfg(not(test))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

#[cfg(test)]
pub(crate) use weir_core::model_sync::{AtomicU8, AtomicU32, AtomicU64, Mutex};
