//! `ChaosLayer`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use weir_core::Name;
use weir_core::protocol::Plain;

use crate::fault::{AnyClient, NoBehaviour, NoError};
use crate::handle::ChaosHandle;
use crate::service::Chaos;
use crate::settings::{ChaosSettings, Latency};
use crate::shared::{Parts, Shared};

/// Applies [`Chaos`]: fault injection.
///
/// The switch, the probabilities, the seeded random source and the counts are created when the
/// layer is built and shared by every service it makes and every clone (axum calls `layer()`
/// once per route: one layer, one switch, one sequence of rolls), and by its
/// [`ChaosHandle`].
pub struct ChaosLayer<P = Plain, E = NoError, B = NoBehaviour, K = AnyClient, O = ()> {
    shared: Arc<Shared<E, B, K, O>>,
    _mode: PhantomData<fn() -> P>,
}

impl ChaosLayer {
    /// Adds `latency` to every call: the simplest fault, and the one no stack should notice.
    /// It takes nothing that can be invalid, so it never fails and never panics (the rule of
    /// every `new` in weir); the handle turns it off, or changes its probability.
    #[must_use]
    pub fn new(latency: Duration) -> Self {
        let settings = ChaosSettings {
            latency: 1.0,
            latency_distribution: Latency::fixed(latency),
            ..ChaosSettings::default()
        };
        Self::from_shared(Shared::new(
            Name::default(),
            &settings,
            Parts::default(),
            NoError,
            NoBehaviour,
            AnyClient,
            (),
        ))
    }
}

impl<P, E, B, K, O> ChaosLayer<P, E, B, K, O> {
    pub(crate) fn from_shared(shared: Shared<E, B, K, O>) -> Self {
        Self {
            shared: Arc::new(shared),
            _mode: PhantomData,
        }
    }

    /// A handle on this layer's switch, probabilities and counts.
    #[must_use]
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle::new(Arc::clone(&self.shared.control), self.shared.name.clone())
    }
}

impl<S, P, E, B, K, O> Layer<S> for ChaosLayer<P, E, B, K, O> {
    type Service = Chaos<S, P, E, B, K, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos::new(inner, Arc::clone(&self.shared))
    }
}

impl<P, E, B, K, O> Clone for ChaosLayer<P, E, B, K, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _mode: PhantomData,
        }
    }
}

impl<P, E, B, K: fmt::Debug, O> fmt::Debug for ChaosLayer<P, E, B, K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("shared", &self.shared)
            .finish()
    }
}
