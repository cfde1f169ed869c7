//! `RetrySettings`: the plain settings a [`RetryBuilder`](crate::RetryBuilder) holds, their
//! defaults and their rules.

use std::time::Duration;

use weir_core::{ConfigError, Name, backoff::Backoff, backoff::Jitter};

use crate::budget::RetryBudget;

/// Calls per request by default, the first one included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The backoff by default: exponential from 100 ms, doubling, capped at 5 s, full jitter (gRFC
/// A6's `random(0, d)` too).
pub const DEFAULT_BACKOFF: Backoff = Backoff::exponential(Duration::from_millis(100))
    .max(Duration::from_secs(5))
    .jitter(Jitter::Full);
/// The longest server-asked delay still retried by default.
pub const DEFAULT_MAX_SERVER_DELAY: Duration = Duration::from_secs(60);
/// gRFC A6: "maxAttempts ... values greater than 5 are treated as 5" (the gRPC preset).
pub const GRPC_MAX_ATTEMPTS: u32 = 5;
/// The most servers a layer keyed per server keeps a budget for unless set.
pub const DEFAULT_MAX_SERVERS: usize = 1_000;

/// The plain settings of a retry layer: what a configuration file can say (deserializable with
/// the `serde` feature: durations as `"250ms"`, the backoff as a
/// [`BackoffSpec`](weir_core::config::BackoffSpec) table, the budget as a [`BudgetSpec`] table).
/// The builder holds one and its methods set its fields;
/// [`RetryBuilder::settings`](crate::RetryBuilder::settings) takes a whole one. The typed parts
/// (classifier, replay, observer, the budget's scope) stay on the builder.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RetrySettings {
    /// The layer's name, in events.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "name"))]
    pub name: Name,
    /// The most calls for one request, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before each retry.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "backoff"))]
    pub backoff: Backoff,
    /// No retry starts later than this after the first call started.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "optional_duration"))]
    pub max_duration: Option<Duration>,
    /// The longest delay a server may ask for and still be retried.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "duration"))]
    pub max_server_delay: Duration,
    /// The retry budget.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "budget"))]
    pub budget: RetryBudget,
    /// Seeds the jitter's random source.
    pub seed: Option<u64>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self::new()
    }
}

impl RetrySettings {
    /// The defaults ([`DEFAULT_MAX_ATTEMPTS`], [`DEFAULT_BACKOFF`], no `max_duration`,
    /// [`DEFAULT_MAX_SERVER_DELAY`], `RetryBudget::default()`, no seed).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            name: Name::unnamed(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            max_duration: None,
            max_server_delay: DEFAULT_MAX_SERVER_DELAY,
            budget: RetryBudget::ratio(crate::budget::DEFAULT_RATIO),
            seed: None,
        }
    }

    /// Checks every rule; the error names the field as the builder method names it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::zero(
                "retry",
                "max_attempts",
                "must be at least 1 (it counts the first call)",
            ));
        }
        self.budget.validate()
    }
}

/// A [`RetryBudget`] in a configuration file, chosen by `kind`:
///
/// | TOML | budget |
/// |---|---|
/// | `{ kind = "ratio", ratio = 0.2, min_per_second = 10, window = "10s" }` | [`RetryBudget::ratio`] (each field optional: 0.2, 10 per second, 10 s) |
/// | `{ kind = "grpc_throttle", max_tokens = 10, token_ratio = 0.1 }` | [`RetryBudget::grpc_throttle`] (both required) |
/// | `{ kind = "unlimited" }` | [`RetryBudget::unlimited`] |
#[cfg(feature = "serde")]
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BudgetSpec {
    /// Retries may be `ratio` of the requests over the window, plus a floor.
    #[non_exhaustive]
    Ratio {
        /// Retries per request over the window, 0 to 1000 (0.2 when left out).
        #[serde(default)]
        ratio: Option<f64>,
        /// The floor: retries allowed per second whatever the traffic (10 when left out).
        #[serde(default)]
        min_per_second: Option<u32>,
        /// How far back requests and retries are remembered, 1 s to 60 s (10 s when left out).
        #[serde(default)]
        window: Option<weir_core::config::ConfigDuration>,
    },
    /// gRPC's `retryThrottling` (gRFC A6).
    #[non_exhaustive]
    GrpcThrottle {
        /// The token count it starts at, 1 to 1000.
        max_tokens: u32,
        /// Tokens a success gives back (above 0).
        token_ratio: f64,
    },
    /// No budget: only the attempts bound retries.
    #[non_exhaustive]
    Unlimited {},
}

#[cfg(feature = "serde")]
impl BudgetSpec {
    /// The [`RetryBudget`] it describes.
    #[must_use]
    pub fn to_budget(&self) -> RetryBudget {
        match *self {
            Self::Ratio {
                ratio,
                min_per_second,
                window,
            } => {
                let budget = ratio.map_or_else(RetryBudget::default, RetryBudget::ratio);
                let budget = min_per_second.map_or(budget, |n| budget.min_per_second(n));
                window.map_or(budget, |window| budget.window(window.get()))
            }
            Self::GrpcThrottle {
                max_tokens,
                token_ratio,
            } => RetryBudget::grpc_throttle(max_tokens, token_ratio),
            Self::Unlimited {} => RetryBudget::unlimited(),
        }
    }
}

#[cfg(feature = "serde")]
fn name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
    <String as serde::Deserialize>::deserialize(deserializer).map(Name::from)
}

#[cfg(feature = "serde")]
fn backoff<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Backoff, D::Error> {
    <weir_core::config::BackoffSpec as serde::Deserialize>::deserialize(deserializer)
        .map(|spec| spec.to_backoff())
}

#[cfg(feature = "serde")]
fn budget<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<RetryBudget, D::Error> {
    <BudgetSpec as serde::Deserialize>::deserialize(deserializer).map(|spec| spec.to_budget())
}

/// A duration written as weir's configuration files write them (`"250ms"`).
#[cfg(feature = "serde")]
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <weir_core::config::ConfigDuration as serde::Deserialize>::deserialize(deserializer)
        .map(weir_core::config::ConfigDuration::get)
}

#[cfg(feature = "serde")]
fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}
