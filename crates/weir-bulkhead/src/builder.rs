//! `BulkheadBuilder`, `BulkheadLayer::builder()` and the presets.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use weir_core::inspect::Registry;
use weir_core::protocol::{Http, Plain};
use weir_core::{ConfigError, Name};

use crate::event::Event;
use crate::handle::BulkheadHandle;
use crate::layer::BulkheadLayer;
use crate::partition::PartitionedBuilder;
use crate::protocol::Mode;
use crate::settings::{BulkheadSettings, PATTERN};
use crate::shared::Shared;

impl BulkheadLayer {
    /// A builder with the defaults (100 concurrent calls, no queue, `Retry-After: 1s`).
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::new()
    }

    /// At most `max_concurrent` calls at once; up to `max_queue` more wait, in order, at most
    /// `max_wait` each.
    pub fn queueing(
        max_concurrent: usize,
        max_queue: usize,
        max_wait: Duration,
    ) -> BulkheadBuilder {
        Self::builder()
            .max_concurrent(max_concurrent)
            .max_queue(max_queue)
            .max_wait(max_wait)
    }

    /// One bulkhead per key that `extractor` reads from a request (a tenant header, a
    /// downstream name), with named partitions and an optional shared pool.
    pub fn partitioned<X, K>(extractor: X) -> PartitionedBuilder<X, K> {
        PartitionedBuilder::new(extractor)
    }

    /// For an HTTP server or client: at most `max_concurrent` calls at once, each permit held
    /// until its response body ends, the queue wait bounded by the request's deadline.
    pub fn http(max_concurrent: usize) -> BulkheadBuilder<(), Http> {
        Self::builder().max_concurrent(max_concurrent).http()
    }
}

/// Configures a [`BulkheadLayer`]; from [`BulkheadLayer::builder`] or a preset.
///
/// It holds one [`BulkheadSettings`] (what a configuration file can give at once, with
/// [`settings`](Self::settings)) plus its typed parts: the observer and the mode. Defaults: 100
/// concurrent calls, no queue (a request that finds every permit taken is refused at once),
/// `Retry-After: 1s` on rejections, `weir_core::protocol::Plain` mode, no observer.
#[derive(Clone, Debug)]
#[must_use]
pub struct BulkheadBuilder<O = (), P = Plain> {
    settings: BulkheadSettings,
    observer: O,
    registry: Option<Registry>,
    _protocol: PhantomData<fn() -> P>,
}

impl BulkheadBuilder {
    pub(crate) fn new() -> Self {
        Self {
            settings: BulkheadSettings::default(),
            observer: (),
            registry: None,
            _protocol: PhantomData,
        }
    }
}

impl<O, P> BulkheadBuilder<O, P> {
    /// Takes every plain setting at once (from a configuration file, for example).
    pub fn settings(mut self, settings: BulkheadSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Names this bulkhead in errors and events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none). `build` refuses a name the registry already holds for a bulkhead
    /// ([`ConfigError::is_duplicate`]), so give each registered bulkhead a name of its own.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The maximum number of calls in flight at once (at least 1).
    pub const fn max_concurrent(mut self, max: usize) -> Self {
        self.settings.max_concurrent = max;
        self
    }

    /// How many requests may wait, in arrival order, for a permit when all are taken; 0 (the
    /// default) refuses them at once. The wait happens in the response future.
    pub const fn max_queue(mut self, max: usize) -> Self {
        self.settings.max_queue = max;
        self
    }

    /// The longest a queued request waits for a permit before it is refused. Unset, the wait is
    /// bounded only by the request's deadline (in `Http` mode). Needs a queue.
    pub const fn max_wait(mut self, max_wait: Duration) -> Self {
        self.settings.max_wait = Some(max_wait);
        self
    }

    /// The `Retry-After` every rejection carries (default 1 s).
    pub const fn retry_after(mut self, retry_after: Duration) -> Self {
        self.settings.retry_after = retry_after;
        self
    }

    /// Waits for a permit in `poll_ready` (tower's `ConcurrencyLimit` behaviour) instead of
    /// deciding in `call`: the caller sees backpressure, nothing is refused, and neither
    /// `max_queue` nor `max_wait` applies. Compose with a timeout or a load shedder.
    pub const fn backpressure(mut self) -> Self {
        self.settings.backpressure = true;
        self
    }

    /// Reports rejections to `observer` (a closure over `&Event`, `weir_core::observer::Tracing`, ...).
    pub fn observer<O2>(self, observer: O2) -> BulkheadBuilder<O2, P>
    where
        O2: for<'a> weir_core::Observer<Event<'a>>,
    {
        BulkheadBuilder {
            settings: self.settings,
            observer,
            registry: self.registry,
            _protocol: PhantomData,
        }
    }

    /// `weir_core::protocol::Http` mode: the queue wait is bounded by the request's `Deadline`
    /// too, and the permit is held until the response body ends.
    pub fn http(self) -> BulkheadBuilder<O, Http> {
        BulkheadBuilder {
            settings: self.settings,
            observer: self.observer,
            registry: self.registry,
            _protocol: PhantomData,
        }
    }

    /// Builds the layer; every service it makes and every clone share one set of permits.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first rule the settings break (see
    /// [`BulkheadSettings::validate`]); `release_at_head` set outside `Http` mode.
    pub fn build(self) -> Result<BulkheadLayer<O, P>, ConfigError>
    where
        P: Mode,
    {
        self.settings.validate()?;
        if self.settings.release_at_head && !P::HTTP {
            return Err(ConfigError::conflict(
                PATTERN,
                "release_at_head",
                "applies in HTTP mode only: call `http()` on the builder",
            ));
        }
        let layer = BulkheadLayer::from_shared(Shared::new(self.settings, self.observer));
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(layer.handle()))?;
        }
        Ok(layer)
    }

    /// Builds the layer and a handle reading its figures.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_handle(self) -> Result<(BulkheadLayer<O, P>, BulkheadHandle), ConfigError>
    where
        P: Mode,
    {
        let layer = self.build()?;
        let handle = layer.handle();
        Ok((layer, handle))
    }
}

impl<O> BulkheadBuilder<O, Http> {
    /// Releases the permit when the response head is returned instead of when the body ends
    /// (the body is still wrapped, holding nothing).
    pub const fn release_at_head(mut self) -> Self {
        self.settings.release_at_head = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_refuses_what_the_settings_refuse() {
        let ms = Duration::from_millis;
        let err = BulkheadLayer::builder()
            .max_concurrent(0)
            .build()
            .unwrap_err();
        assert!(err.is_zero() && err.field() == "max_concurrent");
        let err = BulkheadLayer::builder()
            .max_wait(ms(5))
            .build()
            .unwrap_err();
        assert!(err.is_conflict() && err.field() == "max_wait");
        assert!(BulkheadLayer::queueing(1, 3, ms(5)).build().is_ok());
    }

    #[test]
    fn release_at_head_is_for_http_mode_only() {
        let settings = BulkheadSettings {
            release_at_head: true,
            ..BulkheadSettings::default()
        };
        let err = BulkheadLayer::builder()
            .settings(settings.clone())
            .build()
            .unwrap_err();
        assert!(err.is_conflict() && err.field() == "release_at_head");
        assert!(
            BulkheadLayer::builder()
                .settings(settings)
                .http()
                .build()
                .is_ok()
        );
    }
}
