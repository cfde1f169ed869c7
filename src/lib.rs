#![doc = include_str!("../README.md")]
//!
//! This package (`weir-suite`, unpublished) owns the workspace's examples, integration tests and
//! benchmarks; it has no API of its own. Including the README here makes its code a doctest.
