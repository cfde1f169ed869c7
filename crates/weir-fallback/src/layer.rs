//! `FallbackLayer`.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::classify::AnyError;
use weir_core::lanes::Lanes;
use weir_core::protocol::Plain;

use crate::handle::FallbackHandle;
use crate::service::Fallback;
use crate::shared::{Shared, Sources};
use crate::source::{Cause, FromCause, Never, NoService, NoValue};
use crate::state::Order;
use crate::state::Source;

/// Applies [`Fallback`]: a useful answer when the call cannot succeed.
///
/// The sources, the flag and the counters are created when the layer is built and shared by
/// every service it makes and every clone (axum calls `layer()` once per route: one layer, one
/// set of last good answers, one flag).
pub struct FallbackLayer<Src = Sources<NoValue, NoService, Plain, Never>, C = AnyError, O = ()> {
    shared: Arc<Shared<Src, C, O>>,
    /// The shared state's lanes, one per few threads: what a call's future clones (see
    /// `weir_core::lanes`), so two threads on one layer write no reference count in common.
    lanes: Arc<Lanes<Shared<Src, C, O>>>,
}

impl<F> FallbackLayer<Sources<FromCause<F>, NoService, Plain, Never>> {
    /// Answers every failure the default classifier sees (every error) with `value(cause)`, or
    /// passes the failure on when it returns `None`. It takes no count or duration, so it has
    /// nothing to raise: it never fails and never panics (the rule of every `new` in weir).
    pub fn new<Res, E>(value: F) -> Self
    where
        F: Fn(Cause<'_, Res, E>) -> Option<Res>,
    {
        let sources = Sources {
            value: FromCause(value),
            alternative: NoService,
            protocol: Plain,
            switch: Never,
            order: Order::default().with(Source::Value),
        };
        Self::from_shared(Shared::new(
            weir_core::Name::default(),
            sources,
            AnyError,
            (),
        ))
    }
}

impl<Src, C, O> FallbackLayer<Src, C, O> {
    pub(crate) fn from_shared(shared: Shared<Src, C, O>) -> Self {
        let shared = Arc::new(shared);
        Self {
            lanes: Arc::new(Lanes::new(Arc::clone(&shared))),
            shared,
        }
    }

    /// A handle on this layer's flag and counts.
    #[must_use]
    pub fn handle(&self) -> FallbackHandle {
        FallbackHandle::new(Arc::clone(&self.shared.control), self.shared.name.clone())
    }
}

impl<S, Src, C, O> Layer<S> for FallbackLayer<Src, C, O> {
    type Service = Fallback<S, Src, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::new(inner, Arc::clone(&self.lanes))
    }
}

impl<Src, C, O> Clone for FallbackLayer<Src, C, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            lanes: Arc::clone(&self.lanes),
        }
    }
}

impl<Src, C, O> fmt::Debug for FallbackLayer<Src, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("shared", &self.shared)
            .finish()
    }
}
