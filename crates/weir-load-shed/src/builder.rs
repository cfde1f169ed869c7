//! `LoadShedBuilder`, `LoadShedLayer::builder()` and the presets.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use weir_core::inspect::Registry;
use weir_core::protocol::{Http, Plain};
use weir_core::{ConfigError, Name, Observer};

use crate::classify::Uniform;
use crate::event::Event;
use crate::handle::LoadShedHandle;
use crate::layer::LoadShedLayer;
use crate::limit::{Fixed, Limit};
use crate::settings::{DEFAULT_MAX_IN_FLIGHT, LoadShedSettings};
use crate::shared::Shared;
use crate::state::Priority;

impl LoadShedLayer {
    /// A builder with the defaults.
    pub fn builder() -> LoadShedBuilder {
        LoadShedBuilder::new()
    }

    /// An adaptive limit: `limit` is [`Aimd`](crate::Aimd), [`Vegas`](crate::Vegas) or
    /// [`Gradient2`](crate::Gradient2).
    pub fn adaptive<L: Limit>(limit: L) -> LoadShedBuilder<L> {
        Self::builder().limit(limit)
    }

    /// For an HTTP server or client: refuses calls beyond `max_in_flight` in flight, each call
    /// in flight until its response body ends (`weir_core::protocol::Http` mode). Chain
    /// `.limit(..)` for an adaptive limit, which then measures each call up to the end of its
    /// body.
    pub fn http(max_in_flight: usize) -> LoadShedBuilder<Fixed, Uniform, (), Http> {
        Self::builder().max_in_flight(max_in_flight).http()
    }
}

/// Configures a [`LoadShedLayer`]; from [`LoadShedLayer::builder`] or a preset.
///
/// It holds one [`LoadShedSettings`] (what a configuration file can give at once, with
/// [`settings`](Self::settings)) plus its typed parts: the limit algorithm, the priority
/// classifier, the observer and the mode. Defaults: a fixed limit of 100 calls in flight; every
/// request [`Priority::Normal`]; shares of the limit critical 100%, normal 100%, sheddable 50%,
/// so the limit a user sets is what the default priority is admitted up to, and a share applies
/// only to a priority the [`priority`](Self::priority) classifier gives (lower the normal share
/// to keep room for critical requests); load levels elevated from 70% and critical from 90% of
/// the limit; `Retry-After: 1s` on refusals; no observer; `weir_core::protocol::Plain` mode.
#[derive(Debug)]
#[must_use]
pub struct LoadShedBuilder<L = Fixed, C = Uniform, O = (), P = Plain> {
    settings: LoadShedSettings,
    limit: L,
    classifier: C,
    observer: O,
    registry: Option<Registry>,
    _protocol: PhantomData<fn() -> P>,
}

impl LoadShedBuilder {
    pub(crate) fn new() -> Self {
        Self {
            settings: LoadShedSettings::default(),
            limit: Fixed::new(DEFAULT_MAX_IN_FLIGHT),
            classifier: Uniform,
            observer: (),
            registry: None,
            _protocol: PhantomData,
        }
    }
}

impl<L, C, O, P> LoadShedBuilder<L, C, O, P> {
    /// Takes every plain setting at once (from a configuration file, for example).
    pub fn settings(mut self, settings: LoadShedSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Names this layer in errors and events.
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Shows the layer in `registry` (a status page, a metrics exporter) once built: its
    /// handle is registered under the layer's [`name`](Self::name) (`"default"` when given
    /// none). `build` refuses a name the registry already holds for a load shedder
    /// ([`ConfigError::is_duplicate`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
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
            settings: self.settings,
            limit,
            classifier: self.classifier,
            observer: self.observer,
            registry: self.registry,
            _protocol: PhantomData,
        }
    }

    /// Gives each request a priority: a closure `Fn(&Req) -> Priority`.
    pub fn priority<C2>(self, classifier: C2) -> LoadShedBuilder<L, C2, O, P> {
        LoadShedBuilder {
            settings: self.settings,
            limit: self.limit,
            classifier,
            observer: self.observer,
            registry: self.registry,
            _protocol: PhantomData,
        }
    }

    /// The share of the limit requests of `priority` may use, in `(0, 1]`.
    pub const fn share(mut self, priority: Priority, share: f64) -> Self {
        self.settings.share.set(priority, share);
        self
    }

    /// The utilisation (calls in flight / limit) from which the load level is elevated, and
    /// from which it is critical.
    pub const fn levels(mut self, elevated_at: f64, critical_at: f64) -> Self {
        self.settings.levels.elevated_at = elevated_at;
        self.settings.levels.critical_at = critical_at;
        self
    }

    /// Sheds by queue time too: when the inner service has not been ready for `max` (it sits
    /// behind a buffer, a backpressure bulkhead, a connection pool), `poll_ready` turns ready
    /// and the next call is refused at once with `overloaded`, instead of waiting longer.
    /// Unset (the default), `poll_ready` waits for the inner service as long as it takes.
    pub const fn max_ready_wait(mut self, max: Duration) -> Self {
        self.settings.max_ready_wait = Some(max);
        self
    }

    /// The `Retry-After` every refusal carries (default 1 s).
    pub const fn retry_after(mut self, retry_after: Duration) -> Self {
        self.settings.retry_after = retry_after;
        self
    }

    /// Reports sheds and limit changes to `observer`.
    pub fn observer<O2>(self, observer: O2) -> LoadShedBuilder<L, C, O2, P>
    where
        O2: for<'a> Observer<Event<'a>>,
    {
        LoadShedBuilder {
            settings: self.settings,
            limit: self.limit,
            classifier: self.classifier,
            observer,
            registry: self.registry,
            _protocol: PhantomData,
        }
    }

    /// `weir_core::protocol::Http` mode, for `http::Response`s: a successful call stays in
    /// flight until its response body has been sent to its end, has failed or has been dropped
    /// (the body holds the slot, a [`EndBody`](weir_core::body::EndBody)), and an adaptive limit
    /// measures its round-trip time to that point. Without it (`Plain`, the default), the slot
    /// is released when the response head is returned.
    pub fn http(self) -> LoadShedBuilder<L, C, O, Http> {
        LoadShedBuilder {
            settings: self.settings,
            limit: self.limit,
            classifier: self.classifier,
            observer: self.observer,
            registry: self.registry,
            _protocol: PhantomData,
        }
    }
}

impl<L: Limit, C, O, P> LoadShedBuilder<L, C, O, P> {
    /// These settings as a running layer's handle takes them
    /// ([`Reconfigure::apply`](weir_core::reconfigure::Reconfigure::apply) on a
    /// [`LoadShedHandle`]): for example a configuration file read again,
    /// `config.builder()?.tuning()`. Not validated here: `apply` checks them.
    #[must_use]
    pub fn tuning(&self) -> crate::LoadShedTuning {
        crate::LoadShedTuning::new(self.settings.clone(), self.limit.to_config())
    }

    /// Builds the layer; every service it makes and every clone share one set of counters and
    /// one limit.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first rule the settings break (see
    /// [`LoadShedSettings::validate`]); with a [`registry`](Self::registry), a duplicate
    /// `name`.
    pub fn build(self) -> Result<LoadShedLayer<L, C, O, P>, ConfigError>
    where
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        self.settings.validate()?;
        let layer = LoadShedLayer::from_shared(Shared::new(
            self.settings,
            self.limit,
            self.classifier,
            self.observer,
        ));
        if let Some(registry) = self.registry {
            registry.register_unique(Arc::new(layer.handle()))?;
        }
        Ok(layer)
    }

    /// Builds the layer and a handle reading its figures and load level.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_refuses_what_the_settings_refuse() {
        let err = LoadShedLayer::builder()
            .share(Priority::Normal, 0.0)
            .build()
            .unwrap_err();
        assert!(
            err.is_out_of_range() && err.field() == "share.normal",
            "{err}"
        );
        let err = LoadShedLayer::builder()
            .max_ready_wait(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.is_zero() && err.field() == "max_ready_wait");
        assert!(LoadShedLayer::builder().build().is_ok());
    }
}
