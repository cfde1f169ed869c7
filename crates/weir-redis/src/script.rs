//! The Lua scripts, one per algorithm, and what each is told per quota.

use std::time::Duration;

use redis::Script;
use weir_rate_limit::{FixedWindow, Gcra, Quota, SlidingWindow, TokenBucket};

macro_rules! script {
    ($file:literal) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!($file),
            include_str!("lua/epilogue.lua")
        )
    };
}

/// The Lua source of the GCRA script.
pub(crate) const GCRA: &str = script!("lua/gcra.lua");
/// The Lua source of the token-bucket script.
pub(crate) const TOKEN_BUCKET: &str = script!("lua/token_bucket.lua");
/// The Lua source of the fixed-window script.
pub(crate) const FIXED_WINDOW: &str = script!("lua/fixed_window.lua");
/// The Lua source of the sliding-window-counter script.
pub(crate) const SLIDING_WINDOW: &str = script!("lua/sliding_window.lua");

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A period in whole microseconds (the resolution of Redis's `TIME`), rounded up, at least 1.
fn micros(d: Duration) -> u64 {
    nanos(d).div_ceil(1_000).max(1)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for weir_rate_limit::Gcra {}
    impl Sealed for weir_rate_limit::TokenBucket {}
    impl Sealed for weir_rate_limit::FixedWindow {}
    impl Sealed for weir_rate_limit::SlidingWindow {}
}

/// An algorithm of weir-rate-limit that the Redis store can run as one Lua script:
/// [`Gcra`] (the default), [`TokenBucket`], [`FixedWindow`] and [`SlidingWindow`].
///
/// The sliding-window log (a timestamp per request) and the leaky-bucket smoother (a queue in
/// wait mode) are not offered on Redis.
pub trait RedisAlgorithm: weir_rate_limit::Algorithm + sealed::Sealed {
    /// A short tag written in every key, so two algorithms never read each other's state.
    #[doc(hidden)]
    const TAG: &'static str;

    /// The script's Lua source.
    #[doc(hidden)]
    fn source() -> &'static str;

    /// The three numbers the script reads for `quota`.
    #[doc(hidden)]
    fn args(quota: &Quota) -> [u64; 3];
}

impl RedisAlgorithm for Gcra {
    const TAG: &'static str = "g";

    fn source() -> &'static str {
        GCRA
    }

    fn args(quota: &Quota) -> [u64; 3] {
        let t = nanos(quota.emission_interval());
        [
            t,
            t.saturating_mul(u64::from(quota.burst_size())),
            nanos(quota.period()),
        ]
    }
}

impl RedisAlgorithm for TokenBucket {
    const TAG: &'static str = "t";

    fn source() -> &'static str {
        TOKEN_BUCKET
    }

    fn args(quota: &Quota) -> [u64; 3] {
        [
            u64::from(quota.rate()),
            u64::from(quota.burst_size()),
            micros(quota.period()),
        ]
    }
}

impl RedisAlgorithm for FixedWindow {
    const TAG: &'static str = "f";

    fn source() -> &'static str {
        FIXED_WINDOW
    }

    fn args(quota: &Quota) -> [u64; 3] {
        [u64::from(quota.rate()), micros(quota.period()), 0]
    }
}

impl RedisAlgorithm for SlidingWindow {
    const TAG: &'static str = "s";

    fn source() -> &'static str {
        SLIDING_WINDOW
    }

    fn args(quota: &Quota) -> [u64; 3] {
        [u64::from(quota.rate()), micros(quota.period()), 0]
    }
}

/// The script object (its SHA1 computed once) of `A`.
pub(crate) fn script<A: RedisAlgorithm>() -> Script {
    Script::new(A::source())
}
