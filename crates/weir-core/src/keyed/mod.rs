//! Per-key state for keyed layers: [`KeyedMap`], bounded in memory, evicting idle keys by itself.

mod config;
mod hasher;
mod map;
#[cfg(test)]
mod model;
mod sync;
#[cfg(test)]
mod tests;

pub use self::config::{ByState, Idleness, KeyedConfig, LastSeen};
pub use self::hasher::{Prehashed, PrehashedHasher};
pub use self::map::KeyedMap;
