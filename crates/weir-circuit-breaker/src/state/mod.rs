//! The breaker's algorithm: a state machine over atomics, with no runtime and no `Service`.
//!
//! Time is a [`Duration`] since the breaker's origin, passed in by the caller (a closure, so the
//! closed path never reads the clock when it does not need to).
//!
//! # Layout
//!
//! - `word`: the state tag (low 8 bits) and a generation (high 32 bits), bumped by every
//!   transition. A permit remembers the word it was admitted under; an outcome reported under an
//!   older word is a late result of an earlier period and is ignored (Polly #216/#219).
//! - the closed path loads `word` (admission), and on completion records the outcome into the
//!   window with a few atomic RMWs; it never takes the lock. A success never opens the circuit,
//!   so the thresholds are judged only when a failure or a slow call is recorded.
//! - every transition takes `control` (a short `std::sync::Mutex` section), re-checks that
//!   `word` is still the one it expected, and publishes the new word last.
//! - half-open probes: `probes` holds the generation (high 32 bits) and the free probe slots
//!   (low 32 bits), taken and given back by compare-and-swap, so exactly K probes are admitted per
//!   half-open period and a slot given back late never leaks into a later period.
//!
//! # Files
//!
//! - `vocabulary.rs`: [`State`], [`Reason`], the settings, a call's report and permit, the
//!   state word's layout.
//! - `window.rs`: the count and time windows.
//! - `machine.rs`: [`Breaker`], the state machine over them.

mod machine;
mod vocabulary;
mod window;

#[cfg(test)]
mod model;
#[cfg(test)]
mod reconfigure_tests;
#[cfg(test)]
mod tests;

pub(crate) use self::machine::Breaker;
pub(crate) use self::vocabulary::{
    Admit, Notice, PATTERN, Permit, Report, Settings, Verdict, WindowKind, ppm,
};
pub use self::vocabulary::{Reason, State};
