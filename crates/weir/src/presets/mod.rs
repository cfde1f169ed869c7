//! Presets: the standard server stack and the standard client stack, each a builder with
//! documented defaults that produces one `tower::Layer`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

mod client;
mod exempt;
mod server;

pub use self::client::{
    BreakerInside, BreakerOutside, Client, ClientBuilder, ClientObserver, ClientStack, HttpClient,
    Mode, PerAuthority, Single,
};
#[cfg(feature = "tonic")]
pub use self::client::{Grpc, GrpcClient};
pub use self::exempt::{DEFAULT_EXEMPT_PATHS, Exempt, ExemptFuture};
pub use self::server::{ServerBuilder, ServerStack};

/// A preset's configuration that breaks a rule, from `build()`; the message names the field.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timeout (`timeout`, `total_timeout` or `attempt_timeout`) was zero.
    ZeroTimeout {
        /// The field.
        field: &'static str,
    },
    /// `attempt_timeout` was longer than `total_timeout`.
    AttemptLongerThanTotal {
        /// The attempt timeout.
        attempt: Duration,
        /// The total timeout.
        total: Duration,
    },
    /// The breaker's `sampling_window` was shorter than twice `attempt_timeout`: a window that
    /// short can end before the calls it should count have timed out.
    SamplingWindowTooShort {
        /// The sampling window.
        sampling_window: Duration,
        /// The attempt timeout.
        attempt: Duration,
    },
    /// `max_in_flight` was 0.
    ZeroMaxInFlight,
    /// A status for refusals (`timeout_status`, `missing_key_status`) was not a 4xx or 5xx.
    NotAnErrorStatus {
        /// The field.
        field: &'static str,
        /// The status given.
        status: u16,
    },
    /// The load shedder (the server's `share` of a priority) broke one of its rules.
    LoadShed(weir_core::ConfigError),
    /// The bulkhead (`max_concurrent`) broke one of its rules.
    Bulkhead(weir_core::ConfigError),
    /// The retry (`max_retries`, `budget`) broke one of its rules.
    Retry(weir_retry::ConfigError),
    /// The circuit breaker (`failure_rate`, `minimum_calls`, `sampling_window`, `open_duration`)
    /// broke one of its rules.
    CircuitBreaker(weir_circuit_breaker::ConfigError),
    /// The rate limit (`server.rate_limit` in a `ServerConfig`) broke one of its rules.
    #[cfg(feature = "rate-limit")]
    RateLimit(weir_rate_limit::ConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroTimeout { field } => write!(f, "`{field}` must be greater than zero"),
            Self::AttemptLongerThanTotal { attempt, total } => write!(
                f,
                "`attempt_timeout` ({attempt:?}) must not be longer than `total_timeout` ({total:?})"
            ),
            Self::SamplingWindowTooShort {
                sampling_window,
                attempt,
            } => write!(
                f,
                "`sampling_window` ({sampling_window:?}) must be at least twice `attempt_timeout` ({attempt:?})"
            ),
            Self::ZeroMaxInFlight => f.write_str("`max_in_flight` must be at least 1"),
            Self::NotAnErrorStatus { field, status } => {
                write!(f, "`{field}` must be a 4xx or 5xx status, not {status}")
            }
            Self::LoadShed(e) => write!(f, "load shedding: {e}"),
            Self::Bulkhead(e) => write!(f, "`max_concurrent`: {e}"),
            Self::Retry(e) => write!(f, "{e}"),
            Self::CircuitBreaker(e) => write!(f, "circuit breaker: {e}"),
            #[cfg(feature = "rate-limit")]
            Self::RateLimit(e) => write!(f, "`server.rate_limit`: {e}"),
        }
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::LoadShed(e) => Some(e),
            Self::Bulkhead(e) => Some(e),
            Self::Retry(e) => Some(e),
            Self::CircuitBreaker(e) => Some(e),
            #[cfg(feature = "rate-limit")]
            Self::RateLimit(e) => Some(e),
            _ => None,
        }
    }
}

fn check_timeout(field: &'static str, timeout: Duration) -> Result<(), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout { field });
    }
    Ok(())
}
