//! `BulkheadBuilder` and the configuration errors `build()` reports.

use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use weir_core::Name;

use crate::event::Event;
use crate::handle::BulkheadHandle;
use crate::layer::{BulkheadLayer, Shared};
use crate::protocol::{Http, Plain};

/// The default maximum of concurrent calls.
pub const DEFAULT_MAX_CONCURRENT: usize = 100;

/// The default `Retry-After` a rejection carries.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Configures a [`BulkheadLayer`]; from [`BulkheadLayer::builder`] or a preset.
///
/// Defaults: 100 concurrent calls, no queue (a request that finds every permit taken is refused
/// at once), `Retry-After: 1s` on rejections, [`Plain`] mode, no observer.
#[derive(Clone, Debug)]
#[must_use]
pub struct BulkheadBuilder<O = (), P = Plain> {
    name: Name,
    max_concurrent: usize,
    max_queue: usize,
    max_wait: Option<Duration>,
    retry_after: Duration,
    backpressure: bool,
    hold_body: bool,
    observer: O,
    _protocol: PhantomData<fn() -> P>,
}

impl BulkheadBuilder {
    pub(crate) fn new() -> Self {
        Self {
            name: Name::default(),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_queue: 0,
            max_wait: None,
            retry_after: DEFAULT_RETRY_AFTER,
            backpressure: false,
            hold_body: true,
            observer: (),
            _protocol: PhantomData,
        }
    }
}

impl<O, P> BulkheadBuilder<O, P> {
    /// Names this bulkhead in errors and events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// The maximum number of calls in flight at once (at least 1).
    pub const fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// How many requests may wait, in arrival order, for a permit when all are taken; 0 (the
    /// default) refuses them at once. The wait happens in the response future.
    pub const fn max_queue(mut self, max: usize) -> Self {
        self.max_queue = max;
        self
    }

    /// The longest a queued request waits for a permit before it is refused. Unset, the wait is
    /// bounded only by the request's deadline (in [`Http`] mode). Needs a queue.
    pub const fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// The `Retry-After` every rejection carries (default 1 s).
    pub const fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Waits for a permit in `poll_ready` (tower's `ConcurrencyLimit` behaviour) instead of
    /// deciding in `call`: the caller sees backpressure, nothing is refused, and neither
    /// `max_queue` nor `max_wait` applies. Compose with a timeout or a load shedder.
    pub const fn backpressure(mut self) -> Self {
        self.backpressure = true;
        self
    }

    /// Reports rejections to `observer` (a closure over `&Event`, `weir_core::Tracing`, ...).
    pub fn observer<O2>(self, observer: O2) -> BulkheadBuilder<O2, P>
    where
        O2: for<'a> weir_core::Observer<Event<'a>>,
    {
        BulkheadBuilder {
            name: self.name,
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
            max_wait: self.max_wait,
            retry_after: self.retry_after,
            backpressure: self.backpressure,
            hold_body: self.hold_body,
            observer,
            _protocol: PhantomData,
        }
    }

    /// [`Http`] mode: the queue wait is bounded by the request's `Deadline` too, and the
    /// permit is held until the response body ends.
    pub fn http(self) -> BulkheadBuilder<O, Http> {
        BulkheadBuilder {
            name: self.name,
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
            max_wait: self.max_wait,
            retry_after: self.retry_after,
            backpressure: self.backpressure,
            hold_body: self.hold_body,
            observer: self.observer,
            _protocol: PhantomData,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::ZeroMaxConcurrent);
        }
        if self.max_concurrent > MAX_PERMITS {
            return Err(ConfigError::MaxConcurrentTooLarge);
        }
        if self.retry_after.is_zero() {
            return Err(ConfigError::ZeroRetryAfter);
        }
        if self.backpressure && (self.max_queue > 0 || self.max_wait.is_some()) {
            return Err(ConfigError::QueueWithBackpressure);
        }
        if let Some(max_wait) = self.max_wait {
            if max_wait.is_zero() {
                return Err(ConfigError::ZeroMaxWait);
            }
            if self.max_queue == 0 {
                return Err(ConfigError::MaxWaitWithoutQueue);
            }
        }
        Ok(())
    }

    /// Builds the layer; every service it makes and every clone share one set of permits.
    pub fn build(self) -> Result<BulkheadLayer<O, P>, ConfigError> {
        self.validate()?;
        Ok(BulkheadLayer::from_shared(Shared {
            core: crate::permit::Core::new(self.max_concurrent),
            name: self.name,
            max_queue: self.max_queue,
            max_wait: self.max_wait,
            retry_after: self.retry_after,
            backpressure: self.backpressure,
            hold_body: self.hold_body,
            observer: self.observer,
        }))
    }

    /// Builds the layer and a handle reading its figures.
    pub fn build_with_handle(self) -> Result<(BulkheadLayer<O, P>, BulkheadHandle), ConfigError> {
        let layer = self.build()?;
        let handle = layer.handle();
        Ok((layer, handle))
    }
}

impl<O> BulkheadBuilder<O, Http> {
    /// Releases the permit when the response head is returned instead of when the body ends
    /// (the body is still wrapped, holding nothing).
    pub const fn release_at_head(mut self) -> Self {
        self.hold_body = false;
        self
    }
}

/// The most permits a bulkhead may have.
pub const MAX_PERMITS: usize = usize::MAX >> 4;

/// A bulkhead configuration `build()` refused; the message names the field and the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_concurrent` was 0.
    ZeroMaxConcurrent,
    /// `max_concurrent` was above [`MAX_PERMITS`].
    MaxConcurrentTooLarge,
    /// `max_wait` was zero.
    ZeroMaxWait,
    /// `max_wait` was set without a queue.
    MaxWaitWithoutQueue,
    /// `retry_after` was zero.
    ZeroRetryAfter,
    /// `backpressure()` was combined with `max_queue` or `max_wait`.
    QueueWithBackpressure,
    /// An isolated runtime's `worker_threads` was 0.
    ZeroWorkerThreads,
    /// The isolated runtime could not be started (the operating system refused its threads).
    RuntimeStart(std::io::ErrorKind),
    /// A setting read from a configuration file broke a rule the builder cannot check (a
    /// partition named by a key the key extractor cannot produce, `release_at_head` outside
    /// HTTP mode): `field` is the setting in the file, `rule` what it must be.
    InvalidSetting {
        /// The setting, as written in the file (`partition`).
        field: &'static str,
        /// The rule it broke.
        rule: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Self::RuntimeStart(kind) = self {
            return write!(
                f,
                "isolated bulkhead: the dedicated runtime could not start: {kind}"
            );
        }
        if let Self::InvalidSetting { field, rule } = self {
            return write!(f, "bulkhead: `{field}` {rule}");
        }
        f.write_str(match self {
            Self::ZeroMaxConcurrent => "bulkhead: `max_concurrent` must be at least 1",
            Self::MaxConcurrentTooLarge => {
                "bulkhead: `max_concurrent` must be at most `MAX_PERMITS` (usize::MAX / 16)"
            }
            Self::ZeroMaxWait => {
                "bulkhead: `max_wait` must be more than zero (leave it unset to wait until the deadline)"
            }
            Self::MaxWaitWithoutQueue => {
                "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
            }
            Self::ZeroRetryAfter => "bulkhead: `retry_after` must be more than zero",
            Self::QueueWithBackpressure => {
                "bulkhead: `backpressure()` waits in `poll_ready`: `max_queue` and `max_wait` do not apply"
            }
            Self::ZeroWorkerThreads => "isolated bulkhead: `worker_threads` must be at least 1",
            Self::RuntimeStart(_) => "isolated bulkhead: the dedicated runtime could not start",
            Self::InvalidSetting { .. } => "bulkhead: a setting broke its rule",
        })
    }
}

impl StdError for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_its_own_error() {
        let b = BulkheadBuilder::new;
        let ms = Duration::from_millis;
        assert_eq!(
            b().max_concurrent(0).build().err(),
            Some(ConfigError::ZeroMaxConcurrent)
        );
        assert_eq!(
            b().max_concurrent(usize::MAX).build().err(),
            Some(ConfigError::MaxConcurrentTooLarge)
        );
        assert_eq!(
            b().max_queue(1).max_wait(ms(0)).build().err(),
            Some(ConfigError::ZeroMaxWait)
        );
        assert_eq!(
            b().max_wait(ms(5)).build().err(),
            Some(ConfigError::MaxWaitWithoutQueue)
        );
        assert_eq!(
            b().retry_after(ms(0)).build().err(),
            Some(ConfigError::ZeroRetryAfter)
        );
        assert_eq!(
            b().backpressure().max_queue(3).build().err(),
            Some(ConfigError::QueueWithBackpressure)
        );
        assert!(b().max_queue(3).max_wait(ms(5)).build().is_ok());
        assert!(b().max_queue(3).build().is_ok());
    }

    #[test]
    fn messages_name_the_field() {
        assert_eq!(
            ConfigError::MaxWaitWithoutQueue.to_string(),
            "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
        );
        assert!(
            ConfigError::ZeroMaxConcurrent
                .to_string()
                .contains("`max_concurrent`")
        );
    }
}
