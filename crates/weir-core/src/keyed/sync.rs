//! The synchronisation primitives the keyed map (`map.rs`) is written against: `std`'s in the
//! library (re-exported, so every call is the plain `std` operation), and in the crate's own
//! unit tests `std`'s wrapped so that, inside a `shuttle` model (`model.rs`), every operation
//! is first a scheduling point of shuttle's scheduler, which then explores the interleavings of those operations between threads.
//! Outside a model the wrappers behave as `std`'s (they are weir-core's `model_sync`, one copy
//! for every crate's models). Nothing here is public.
//!
//! A switch of the imports rather than a type parameter (the bulkhead's `Primitives`, the load
//! shedder's `Word`): the map is public and generic already, and a parameter for its
//! primitives would show in its type for the tests' sake.

#[cfg(not(test))]
pub(crate) use std::sync::RwLock;
#[cfg(not(test))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

#[cfg(test)]
pub(crate) use crate::model_sync::{AtomicU64, AtomicUsize, RwLock};
