//! Presets: the standard server stack and the standard client stack, each a builder with
//! documented defaults that produces one `tower::Layer`.

use std::error::Error as StdError;
use std::time::Duration;

use weir_core::ConfigError;

mod client;
mod exempt;
mod server;

pub use self::client::{
    BreakerInside, BreakerOutside, ChaosClient, Client, ClientBuilder, ClientObserver, ClientStack,
    FallbackClient, HttpClient, Mode, PerAuthority, Single,
};
#[cfg(feature = "tonic")]
pub use self::client::{Grpc, GrpcClient};
pub use self::exempt::{DEFAULT_EXEMPT_PATHS, Exempt, ExemptFuture};
pub use self::server::{ServerBuilder, ServerStack};

/// The pattern name of the client preset's own rules in a [`ConfigError`].
pub(crate) const CLIENT: &str = "client stack";
/// The pattern name of the server preset's own rules in a [`ConfigError`].
pub(crate) const SERVER: &str = "server stack";

/// A zero `timeout` is refused, naming `field`.
fn check_timeout(
    pattern: &'static str,
    field: &'static str,
    timeout: Duration,
) -> Result<(), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::zero(
            pattern,
            field,
            "must be greater than zero",
        ));
    }
    Ok(())
}

/// A pattern builder's refusal as weir-core's [`ConfigError`]: as it is when the pattern
/// already answers with it; otherwise (a pattern crate's own error, until it moves to weir-core's)
/// as an invalid `field` of `pattern` whose rule is that error's message.
fn adopt<E>(pattern: &'static str, field: &'static str, err: E) -> ConfigError
where
    E: StdError + Send + Sync + 'static,
{
    let err: Box<dyn StdError + Send + Sync> = Box::new(err);
    match err.downcast::<ConfigError>() {
        Ok(err) => *err,
        Err(err) => ConfigError::invalid(pattern, field, err.to_string()),
    }
}
