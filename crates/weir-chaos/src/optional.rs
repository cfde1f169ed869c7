//! `OptionalChaosLayer`: a chaos layer that is there or not, decided at run time (a stack built
//! from a configuration file, whose `[chaos]` table may be absent), with one service type.

use std::fmt;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;
use weir_core::Observer;
use weir_core::protocol::Plain;

use crate::event::Event;
use crate::fault::{AnyClient, Behaviour, MakeError, NoBehaviour, NoError, Select};
use crate::future::ResponseFuture;
use crate::handle::ChaosHandle;
use crate::layer::ChaosLayer;
use crate::protocol::Protocol;
use crate::service::Chaos;

/// A [`ChaosLayer`] or none: with `Some(layer)` it wraps the service in the layer, with `None`
/// it hands the inner service back in [`OptionalChaos::Without`], whose call is the inner call
/// (no switch read) and whose response is the one a chaos layer that injects nothing gives (in
/// HTTP mode, the body in a pass-through [`ChaosBody`](crate::ChaosBody)). Either way the
/// service has one type, its error the inner service's, and its future a
/// [`ResponseFuture`]: what weir's stacks built from a configuration file put in their chaos
/// slot, so a file without a `[chaos]` table has no chaos layer, no handle and no switch.
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
/// use weir_chaos::{ChaosLayer, OptionalChaosLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let none: OptionalChaosLayer = OptionalChaosLayer::new(None);
/// assert!(none.handle().is_none());
/// let svc = none.layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
///
/// let some = OptionalChaosLayer::new(Some(ChaosLayer::builder().disabled().build().unwrap()));
/// assert!(some.handle().is_some_and(|faults| !faults.is_enabled()));
/// # }
/// ```
pub struct OptionalChaosLayer<P = Plain, E = NoError, B = NoBehaviour, K = AnyClient, O = ()> {
    layer: Option<ChaosLayer<P, E, B, K, O>>,
}

impl<P, E, B, K, O> OptionalChaosLayer<P, E, B, K, O> {
    /// `layer` when `Some`, no chaos layer when `None`.
    #[must_use]
    pub const fn new(layer: Option<ChaosLayer<P, E, B, K, O>>) -> Self {
        Self { layer }
    }

    /// The chaos layer, when there is one.
    #[must_use]
    pub const fn get(&self) -> Option<&ChaosLayer<P, E, B, K, O>> {
        self.layer.as_ref()
    }

    /// A handle on the chaos layer's switch, probabilities and counts, when there is one.
    #[must_use]
    pub fn handle(&self) -> Option<ChaosHandle> {
        self.layer.as_ref().map(ChaosLayer::handle)
    }
}

impl<P, E, B, K, O> Default for OptionalChaosLayer<P, E, B, K, O> {
    /// No chaos layer.
    fn default() -> Self {
        Self::new(None)
    }
}

impl<P, E, B, K, O> From<ChaosLayer<P, E, B, K, O>> for OptionalChaosLayer<P, E, B, K, O> {
    fn from(layer: ChaosLayer<P, E, B, K, O>) -> Self {
        Self::new(Some(layer))
    }
}

impl<P, E, B, K, O> Clone for OptionalChaosLayer<P, E, B, K, O> {
    fn clone(&self) -> Self {
        Self::new(self.layer.clone())
    }
}

impl<P, E, B, K: fmt::Debug, O> fmt::Debug for OptionalChaosLayer<P, E, B, K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptionalChaosLayer")
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, P, E, B, K, O> Layer<S> for OptionalChaosLayer<P, E, B, K, O> {
    type Service = OptionalChaos<S, P, E, B, K, O>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.layer {
            Some(layer) => OptionalChaos::With(layer.layer(inner)),
            None => OptionalChaos::Without(inner),
        }
    }
}

/// The service of an [`OptionalChaosLayer`]: the inner service in a [`Chaos`], or alone.
pub enum OptionalChaos<S, P, E, B, K, O> {
    /// The chaos layer is there.
    With(Chaos<S, P, E, B, K, O>),
    /// There is no chaos layer: the inner service, called directly.
    Without(S),
}

impl<S, P, E, B, K, O, Req> Service<Req> for OptionalChaos<S, P, E, B, K, O>
where
    S: Service<Req>,
    P: Protocol<Req, S::Response>,
    E: MakeError<S::Error>,
    B: Behaviour<Req>,
    K: Select<Req>,
    O: for<'a> Observer<Event<'a>>,
{
    type Response = P::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Req, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::With(chaos) => chaos.poll_ready(cx),
            Self::Without(inner) => inner.poll_ready(cx),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self {
            Self::With(chaos) => chaos.call(req),
            Self::Without(inner) => ResponseFuture::pass(inner.call(req)),
        }
    }
}

impl<S: Clone, P, E, B, K, O> Clone for OptionalChaos<S, P, E, B, K, O> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Self::With(chaos) => Self::With(chaos.clone()),
            Self::Without(inner) => Self::Without(inner.clone()),
        }
    }
}

impl<S: fmt::Debug, P, E, B, K, O> fmt::Debug for OptionalChaos<S, P, E, B, K, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::With(chaos) => f.debug_tuple("With").field(chaos).finish(),
            Self::Without(inner) => f.debug_tuple("Without").field(inner).finish(),
        }
    }
}
