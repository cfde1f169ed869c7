//! `HedgeLayer`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::{Name, classify::AnyError};
use weir_retry::IdempotentReplay;

use crate::handle::HedgeHandle;
use crate::service::Hedge;
use crate::settings::{
    DEFAULT_BUDGET_BURST, DEFAULT_BUDGET_MIN_PER_SECOND, DEFAULT_BUDGET_RATIO, HedgeSettings,
};
use crate::shared::Shared;
use crate::state::Budget;

/// Applies [`Hedge`] to a service. Every service it makes, and every clone, shares one budget,
/// one latency histogram and one set of counters. Made by [`HedgeLayer::new`] or
/// [`HedgeLayer::builder`].
pub struct HedgeLayer<R = IdempotentReplay, C = AnyError, O = ()> {
    shared: Arc<Shared<R, C, O>>,
}

impl HedgeLayer {
    /// One hedge (`max_attempts` 2) after `delay`, the default budget, every `Err` a non-fatal
    /// failure; requests kept by [`IdempotentReplay`]. Every delay is valid (zero is parallel
    /// mode), so `new` never fails and never panics (the rule of every `new` in weir).
    #[must_use]
    pub fn new(delay: Duration) -> Self {
        let budget = Budget::new(
            DEFAULT_BUDGET_RATIO,
            DEFAULT_BUDGET_MIN_PER_SECOND,
            Some(DEFAULT_BUDGET_BURST),
        );
        Self::from_shared(Shared::new(
            Name::unnamed(),
            &HedgeSettings::with_delay(delay),
            (budget, None),
            None,
            IdempotentReplay::new(),
            AnyError,
            (),
        ))
    }
}

impl<R, C, O> HedgeLayer<R, C, O> {
    pub(crate) fn from_shared(shared: Shared<R, C, O>) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// A handle over the layer's shared state.
    #[must_use]
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle::new(Arc::clone(&self.shared.core), self.shared.name.clone())
    }
}

impl<R, C, O> Clone for HedgeLayer<R, C, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R, C, O> fmt::Debug for HedgeLayer<R, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.shared.name)
            .field("max_attempts", &self.shared.max_attempts)
            .field("trigger", &self.shared.trigger)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, R, C, O> Layer<S> for HedgeLayer<R, C, O> {
    type Service = Hedge<S, R, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(inner, Arc::clone(&self.shared))
    }
}
