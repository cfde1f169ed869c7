//! `TimeoutSettings`: the plain settings a [`TimeoutBuilder`](crate::TimeoutBuilder) holds, and
//! their rules.

use std::time::Duration;

use weir_core::{ConfigError, Name};

use crate::state::BelowFloor;

/// The pattern name every timeout [`ConfigError`] carries.
pub(crate) const PATTERN: &str = "timeout";

/// The plain settings of a timeout layer: everything but its timeout policy (a duration, a
/// closure, a route table: a type of its own) and its observer. The builder holds one and its
/// methods set its fields; [`TimeoutBuilder::settings`](crate::TimeoutBuilder::settings) takes a
/// whole one. A configuration file is read by [`TimeoutConfig`](crate::TimeoutConfig) (feature
/// `serde`), which also holds the route table.
///
/// | field | default | builder method |
/// |---|---|---|
/// | `incoming` | `None` (no server mode) | `incoming` |
/// | `incoming_floor` | `None` | `incoming_floor` |
/// | `reject_malformed_incoming` | `false` | `reject_malformed_incoming` |
/// | `propagate` | `None` (no client mode) | `propagate` |
/// | `expose_deadline` | `None`: always, except in server mode | `expose_deadline` |
/// | `name` | `"default"` | `name` |
///
/// ```
/// use std::time::Duration;
/// use weir_timeout::{TimeoutLayer, TimeoutSettings};
///
/// let mut settings = TimeoutSettings::default();
/// settings.incoming = Some(Duration::from_secs(30));
/// settings.reject_malformed_incoming = true;
/// let layer = TimeoutLayer::builder()
///     .timeout(Duration::from_secs(5))
///     .settings(settings)
///     .build()?;
/// # let _ = layer;
///
/// let mut zero = TimeoutSettings::default();
/// zero.incoming = Some(Duration::ZERO);
/// assert!(zero.validate().unwrap_err().is_zero());
/// # Ok::<(), weir_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutSettings {
    /// Server mode: an incoming `grpc-timeout` or `x-timeout-ms` starts the deadline, capped at
    /// this maximum. Greater than zero.
    pub incoming: Option<Duration>,
    /// Server mode: an incoming deadline shorter than the floor is refused or raised. The
    /// floor is greater than zero and not longer than `incoming`.
    pub incoming_floor: Option<(Duration, BelowFloor)>,
    /// Server mode: a malformed incoming timeout header is answered 400 / `INVALID_ARGUMENT`
    /// instead of ignored.
    pub reject_malformed_incoming: bool,
    /// Client mode: the time left, minus this allowance, is written on outgoing requests.
    pub propagate: Option<Duration>,
    /// Whether an HTTP request's deadline is stored in its extensions even when it carried
    /// none; `None`: always, except in server mode (`incoming` without `propagate`).
    pub expose_deadline: Option<bool>,
    /// The layer's name in errors and events.
    pub name: Name,
}

impl TimeoutSettings {
    /// Checks the rules: `incoming`, when set, is greater than zero; `incoming_floor`, when
    /// set, is greater than zero and not longer than `incoming` (a floor above the cap would
    /// refuse, or raise past the cap, every deadline a client sends).
    ///
    /// # Errors
    ///
    /// The first rule broken, naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.incoming.is_some_and(|max| max.is_zero()) {
            return Err(ConfigError::zero(
                PATTERN,
                "incoming",
                "maximum must be greater than zero",
            ));
        }
        if let Some((floor, _)) = self.incoming_floor {
            if floor.is_zero() {
                return Err(ConfigError::zero(
                    PATTERN,
                    "incoming_floor",
                    "must be greater than zero",
                ));
            }
            if let Some(max) = self.incoming.filter(|max| floor > *max) {
                return Err(ConfigError::conflict(
                    PATTERN,
                    "incoming_floor",
                    format!("({floor:?}) must not be longer than `incoming` ({max:?})"),
                ));
            }
        }
        Ok(())
    }

    /// Whether a malformed incoming timeout header is refused: only in server mode.
    pub(crate) const fn rejects_malformed(&self) -> bool {
        self.reject_malformed_incoming && self.incoming.is_some()
    }

    /// Whether every HTTP request's deadline is stored (see `expose_deadline`).
    pub(crate) const fn exposes(&self) -> bool {
        match self.expose_deadline {
            Some(expose) => expose,
            None => self.incoming.is_none() || self.propagate.is_some(),
        }
    }
}
