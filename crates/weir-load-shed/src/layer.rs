//! `LoadShedLayer` and its presets.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::Observer;

use crate::builder::LoadShedBuilder;
use crate::classify::Uniform;
use crate::event::Event;
use crate::handle::LoadShedHandle;
use crate::limit::{Fixed, Limit};
use crate::service::LoadShed;
use crate::shared::{Finish, Shared};

/// Applies [`LoadShed`]: refuse at once, by priority, when the calls in flight reach a fixed or
/// adaptive limit.
///
/// The counters and the limit are created when the layer is built and shared by every service it
/// makes and every clone.
pub struct LoadShedLayer<L = Fixed, C = Uniform, O = ()> {
    shared: Arc<Shared<L, C, O>>,
}

impl LoadShedLayer {
    /// Refuses calls beyond `max_in_flight` in flight (0 is taken as 1), everything else default.
    #[must_use]
    pub fn new(max_in_flight: usize) -> Self {
        Self::builder()
            .max_in_flight(max_in_flight)
            .build()
            .expect("the defaults are a valid configuration")
    }

    /// A builder with the defaults.
    pub fn builder() -> LoadShedBuilder {
        LoadShedBuilder::new()
    }

    /// An adaptive limit: `limit` is [`Aimd`](crate::Aimd), [`Vegas`](crate::Vegas) or
    /// [`Gradient2`](crate::Gradient2).
    pub fn adaptive<L: Limit>(limit: L) -> LoadShedBuilder<L> {
        Self::builder().limit(limit)
    }
}

impl<L, C, O> LoadShedLayer<L, C, O> {
    pub(crate) fn from_shared(shared: Shared<L, C, O>) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    pub(crate) fn core(&self) -> &crate::shared::Core {
        &self.shared.core
    }

    /// A handle reading this layer's figures and load level.
    #[must_use]
    pub fn handle(&self) -> LoadShedHandle
    where
        L: Limit,
        C: Send + Sync + 'static,
        O: for<'a> Observer<Event<'a>> + Send + Sync + 'static,
    {
        LoadShedHandle::new(Arc::clone(&self.shared) as Arc<dyn Finish>)
    }
}

impl<S, L, C, O> Layer<S> for LoadShedLayer<L, C, O> {
    type Service = LoadShed<S, L, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed::new(inner, Arc::clone(&self.shared))
    }
}

impl<L, C, O> Clone for LoadShedLayer<L, C, O> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<L, C, O> fmt::Debug for LoadShedLayer<L, C, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadShedLayer")
            .field("name", &self.shared.name)
            .field("core", &self.shared.core)
            .finish_non_exhaustive()
    }
}
