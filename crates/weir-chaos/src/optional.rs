//! `OptionalChaosLayer`: a chaos layer that is there or not, decided at run time (a stack built
//! from a configuration file, whose `[chaos]` table may be absent), with one service type.

use std::fmt;

use tower_layer::Layer;
use weir_core::Name;
use weir_core::protocol::Plain;

use crate::fault::{AnyClient, NoBehaviour, NoError};
use crate::handle::ChaosHandle;
use crate::layer::ChaosLayer;
use crate::service::Chaos;
use crate::settings::ChaosSettings;
use crate::shared::{Parts, Shared};

/// A [`ChaosLayer`] (with the default typed parts: no error, no behaviour, every client, no
/// observer, as a configuration file builds it) or none, with one service type: what weir's
/// stacks built from a configuration file put in their chaos slot, so a file without a `[chaos]`
/// table has no chaos layer to reach, no handle and no switch to turn on.
///
/// Without a layer, the services it makes are [`Chaos`] services over a switch that is off and
/// that nothing can reach ([`get`](Self::get) and [`handle`](Self::handle) are `None`, nothing is
/// registered): each call costs the disabled path's check (a load and a branch) and the
/// pass-through future. An enum of the two service types (the chaos service, or the inner one
/// alone) cost more in a stack, where the retry cloned the service below it on every call (until
/// #18): 1 011
/// instructions a call of `weir::ClientStack` against 976 (`benches/README.md`, "Chaos").
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// use weir_chaos::{ChaosLayer, OptionalChaosLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let none: OptionalChaosLayer = OptionalChaosLayer::new(None);
/// assert!(none.get().is_none() && none.handle().is_none());
/// let svc = none.layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
///
/// let some = OptionalChaosLayer::new(Some(ChaosLayer::builder().disabled().build().unwrap()));
/// assert!(some.handle().is_some_and(|faults| !faults.is_enabled()));
/// # }
/// ```
pub struct OptionalChaosLayer<P = Plain> {
    layer: ChaosLayer<P>,
    /// Whether `layer` is the one given (`false`: the unreachable, switched-off stand-in).
    given: bool,
}

impl<P> OptionalChaosLayer<P> {
    /// `layer` when `Some`, no chaos layer when `None`.
    #[must_use]
    pub fn new(layer: Option<ChaosLayer<P>>) -> Self {
        match layer {
            Some(layer) => Self { layer, given: true },
            None => {
                let off = ChaosSettings {
                    enabled: false,
                    ..ChaosSettings::default()
                };
                let shared = Shared::new(
                    Name::default(),
                    &off,
                    Parts::default(),
                    NoError,
                    NoBehaviour,
                    AnyClient,
                    (),
                );
                Self {
                    layer: ChaosLayer::from_shared(shared),
                    given: false,
                }
            }
        }
    }

    /// The chaos layer, when there is one.
    #[must_use]
    pub fn get(&self) -> Option<&ChaosLayer<P>> {
        self.given.then_some(&self.layer)
    }

    /// A handle on the chaos layer's switch, probabilities and counts, when there is one.
    #[must_use]
    pub fn handle(&self) -> Option<ChaosHandle> {
        self.get().map(ChaosLayer::handle)
    }
}

impl<P> Default for OptionalChaosLayer<P> {
    /// No chaos layer.
    fn default() -> Self {
        Self::new(None)
    }
}

impl<P> From<ChaosLayer<P>> for OptionalChaosLayer<P> {
    fn from(layer: ChaosLayer<P>) -> Self {
        Self::new(Some(layer))
    }
}

impl<P> Clone for OptionalChaosLayer<P> {
    fn clone(&self) -> Self {
        Self {
            layer: self.layer.clone(),
            given: self.given,
        }
    }
}

impl<P> fmt::Debug for OptionalChaosLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptionalChaosLayer")
            .field("layer", &self.get())
            .finish()
    }
}

impl<S, P> Layer<S> for OptionalChaosLayer<P> {
    type Service = Chaos<S, P, NoError, NoBehaviour, AnyClient, ()>;

    fn layer(&self, inner: S) -> Self::Service {
        self.layer.layer(inner)
    }
}
