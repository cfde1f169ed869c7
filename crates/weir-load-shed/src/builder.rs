//! `LoadShedBuilder` and the configuration errors `build()` reports.

use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use weir_core::{Name, Observer};

use crate::classify::Uniform;
use crate::event::Event;
use crate::handle::LoadShedHandle;
use crate::layer::LoadShedLayer;
use crate::limit::{Fixed, Limit};
use crate::protocol::{Http, Plain};
use crate::shared::{Core, Flight, Shared};
use crate::state::Priority;

/// The default fixed limit of calls in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100;

/// Configures a [`LoadShedLayer`]; from [`LoadShedLayer::builder`] or a preset.
///
/// Defaults: a fixed limit of 100 calls in flight; every request [`Priority::Normal`]; shares of
/// the limit critical 100%, normal 100%, sheddable 50%, so the limit a user sets is what the
/// default priority is admitted up to, and a share applies only to a priority the
/// [`priority`](Self::priority) classifier gives (lower the normal share to keep room for
/// critical requests); load levels elevated from 70% and critical
/// from 90% of the limit; `Retry-After: 1s` on refusals; no observer.
#[derive(Debug)]
#[must_use]
pub struct LoadShedBuilder<L = Fixed, C = Uniform, O = (), P = Plain> {
    name: Name,
    limit: L,
    classifier: C,
    observer: O,
    shares: [f64; 3],
    elevated_at: f64,
    critical_at: f64,
    retry_after: Duration,
    max_ready_wait: Option<Duration>,
    _protocol: PhantomData<fn() -> P>,
}

impl LoadShedBuilder {
    pub(crate) fn new() -> Self {
        Self {
            name: Name::default(),
            limit: Fixed::new(DEFAULT_MAX_IN_FLIGHT),
            classifier: Uniform,
            observer: (),
            shares: [0.5, 1.0, 1.0],
            elevated_at: 0.7,
            critical_at: 0.9,
            retry_after: Duration::from_secs(1),
            max_ready_wait: None,
            _protocol: PhantomData,
        }
    }
}

impl<L, C, O, P> LoadShedBuilder<L, C, O, P> {
    /// Names this layer in errors and events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// A fixed limit of `max` calls in flight (at least 1; above `u32::MAX`, `u32::MAX`).
    pub fn max_in_flight(self, max: usize) -> LoadShedBuilder<Fixed, C, O, P> {
        self.limit(Fixed::new(max))
    }

    /// The limit algorithm: [`Fixed`], [`Aimd`](crate::Aimd), [`Vegas`](crate::Vegas) or
    /// [`Gradient2`](crate::Gradient2) (or your own [`Limit`]).
    pub fn limit<L2: Limit>(self, limit: L2) -> LoadShedBuilder<L2, C, O, P> {
        LoadShedBuilder {
            name: self.name,
            limit,
            classifier: self.classifier,
            observer: self.observer,
            shares: self.shares,
            elevated_at: self.elevated_at,
            critical_at: self.critical_at,
            retry_after: self.retry_after,
            max_ready_wait: self.max_ready_wait,
            _protocol: PhantomData,
        }
    }

    /// Gives each request a priority: a closure `Fn(&Req) -> Priority`.
    pub fn priority<C2>(self, classifier: C2) -> LoadShedBuilder<L, C2, O, P> {
        LoadShedBuilder {
            name: self.name,
            limit: self.limit,
            classifier,
            observer: self.observer,
            shares: self.shares,
            elevated_at: self.elevated_at,
            critical_at: self.critical_at,
            retry_after: self.retry_after,
            max_ready_wait: self.max_ready_wait,
            _protocol: PhantomData,
        }
    }

    /// The share of the limit requests of `priority` may use, in `(0, 1]`.
    pub const fn share(mut self, priority: Priority, share: f64) -> Self {
        self.shares[priority.index()] = share;
        self
    }

    /// The utilisation (calls in flight / limit) from which the load level is elevated, and
    /// from which it is critical.
    pub const fn levels(mut self, elevated_at: f64, critical_at: f64) -> Self {
        self.elevated_at = elevated_at;
        self.critical_at = critical_at;
        self
    }

    /// Sheds by queue time too: when the inner service has not been ready for `max` (it sits
    /// behind a buffer, a backpressure bulkhead, a connection pool), `poll_ready` turns ready
    /// and the next call is refused at once with `overloaded`, instead of waiting longer.
    /// Unset (the default), `poll_ready` waits for the inner service as long as it takes.
    pub const fn max_ready_wait(mut self, max: Duration) -> Self {
        self.max_ready_wait = Some(max);
        self
    }

    /// The `Retry-After` every refusal carries (default 1 s).
    pub const fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Reports sheds and limit changes to `observer`.
    pub fn observer<O2>(self, observer: O2) -> LoadShedBuilder<L, C, O2, P>
    where
        O2: for<'a> Observer<Event<'a>>,
    {
        LoadShedBuilder {
            name: self.name,
            limit: self.limit,
            classifier: self.classifier,
            observer,
            shares: self.shares,
            elevated_at: self.elevated_at,
            critical_at: self.critical_at,
            retry_after: self.retry_after,
            max_ready_wait: self.max_ready_wait,
            _protocol: PhantomData,
        }
    }

    /// [`Http`] mode, for `http::Response`s: a successful call stays in flight until its
    /// response body has been sent to its end, has failed or has been dropped (the body holds
    /// the slot, a [`EndBody`](weir_core::EndBody)), and an adaptive limit measures
    /// its round-trip time to that point. Without it ([`Plain`], the default), the slot is
    /// released when the response head is returned.
    pub fn http(self) -> LoadShedBuilder<L, C, O, Http> {
        LoadShedBuilder {
            name: self.name,
            limit: self.limit,
            classifier: self.classifier,
            observer: self.observer,
            shares: self.shares,
            elevated_at: self.elevated_at,
            critical_at: self.critical_at,
            retry_after: self.retry_after,
            max_ready_wait: self.max_ready_wait,
            _protocol: PhantomData,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (share, priority) in
            self.shares
                .iter()
                .zip([Priority::Sheddable, Priority::Normal, Priority::Critical])
        {
            if !(*share > 0.0 && *share <= 1.0) {
                return Err(ConfigError::ShareOutOfRange(priority));
            }
        }
        if !(self.shares[0] <= self.shares[1] && self.shares[1] <= self.shares[2]) {
            return Err(ConfigError::SharesOutOfOrder);
        }
        if !(self.elevated_at > 0.0
            && self.elevated_at <= self.critical_at
            && self.critical_at <= 1.0)
        {
            return Err(ConfigError::LevelsOutOfOrder);
        }
        if self.retry_after.is_zero() {
            return Err(ConfigError::ZeroRetryAfter);
        }
        if self.max_ready_wait.is_some_and(|max| max.is_zero()) {
            return Err(ConfigError::ZeroReadyWait);
        }
        Ok(())
    }
}

impl<L: Limit, C, O, P> LoadShedBuilder<L, C, O, P> {
    /// Builds the layer; every service it makes and every clone share one set of counters and
    /// one limit.
    pub fn build(self) -> Result<LoadShedLayer<L, C, O, P>, ConfigError> {
        self.validate()?;
        let limit = self.limit.limit().max(1);
        let layer = LoadShedLayer::from_shared(Shared {
            core: Core {
                flight: Flight::default(),
                limit: AtomicUsize::new(limit),
                caps: [0; 3].map(AtomicUsize::new),
                shed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                ignored: AtomicU64::new(0),
                elevated_at: self.elevated_at,
                critical_at: self.critical_at,
            },
            name: self.name,
            shares: self.shares,
            retry_after: self.retry_after,
            max_ready_wait: self.max_ready_wait,
            algorithm: Mutex::new(self.limit),
            classifier: self.classifier,
            observer: self.observer,
        });
        layer.core().set_limit(limit, &self.shares);
        Ok(layer)
    }

    /// Builds the layer and a handle reading its figures and load level.
    pub fn build_with_handle(
        self,
    ) -> Result<(LoadShedLayer<L, C, O, P>, LoadShedHandle), ConfigError>
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        let layer = self.build()?;
        let handle = layer.handle();
        Ok((layer, handle))
    }
}

/// A load-shed configuration `build()` refused; the message names the field and the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A priority's `share` was not in `(0, 1]`.
    ShareOutOfRange(Priority),
    /// The shares did not rise from sheddable to normal to critical.
    SharesOutOfOrder,
    /// The `levels` were not `0 < elevated_at <= critical_at <= 1`.
    LevelsOutOfOrder,
    /// `retry_after` was zero.
    ZeroRetryAfter,
    /// `max_ready_wait` was zero.
    ZeroReadyWait,
    /// A setting read from a configuration file broke a rule the builder cannot check (a
    /// limit algorithm's parameter out of range, `max_in_flight` with `limit`): `field` is the
    /// setting's path in the file, `rule` what it must be.
    InvalidSetting {
        /// The setting, as written in the file (`limit.aimd.backoff`).
        field: &'static str,
        /// The rule it broke (`must be between 0.5 and 0.99`).
        rule: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShareOutOfRange(priority) => write!(
                f,
                "load shed: the `share` of {} requests must be above 0 and at most 1",
                priority.as_str()
            ),
            Self::SharesOutOfOrder => f.write_str(
                "load shed: each `share` must be at least the one below it (sheddable <= normal <= critical)",
            ),
            Self::LevelsOutOfOrder => f.write_str(
                "load shed: `levels` must satisfy 0 < elevated_at <= critical_at <= 1",
            ),
            Self::ZeroRetryAfter => f.write_str("load shed: `retry_after` must be more than zero"),
            Self::ZeroReadyWait => f.write_str(
                "load shed: `max_ready_wait` must be more than zero (leave it unset to wait for readiness)",
            ),
            Self::InvalidSetting { field, rule } => write!(f, "load shed: `{field}` {rule}"),
        }
    }
}

impl StdError for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_its_own_error() {
        let b = LoadShedBuilder::new;
        assert_eq!(
            b().share(Priority::Normal, 0.0).build().err(),
            Some(ConfigError::ShareOutOfRange(Priority::Normal))
        );
        assert_eq!(
            b().share(Priority::Critical, 1.5).build().err(),
            Some(ConfigError::ShareOutOfRange(Priority::Critical))
        );
        assert_eq!(
            b().share(Priority::Sheddable, 0.9)
                .share(Priority::Normal, 0.8)
                .build()
                .err(),
            Some(ConfigError::SharesOutOfOrder)
        );
        assert_eq!(
            b().levels(0.9, 0.5).build().err(),
            Some(ConfigError::LevelsOutOfOrder)
        );
        assert_eq!(
            b().retry_after(Duration::ZERO).build().err(),
            Some(ConfigError::ZeroRetryAfter)
        );
        assert_eq!(
            b().max_ready_wait(Duration::ZERO).build().err(),
            Some(ConfigError::ZeroReadyWait)
        );
        assert!(b().build().is_ok());
        assert_eq!(
            ConfigError::ShareOutOfRange(Priority::Sheddable).to_string(),
            "load shed: the `share` of sheddable requests must be above 0 and at most 1"
        );
    }
}
