//! `LoadShedLayer` and its presets.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::Observer;

use crate::builder::LoadShedBuilder;
use crate::classify::Uniform;
use crate::event::Event;
use crate::handle::LoadShedHandle;
use crate::limit::{Fixed, Limit};
use crate::protocol::{Http, Plain};
use crate::service::LoadShed;
use crate::shared::{Finish, Shared};

/// Applies [`LoadShed`]: refuse at once, by priority, when the calls in flight reach a fixed or
/// adaptive limit.
///
/// The counters and the limit are created when the layer is built and shared by every service it
/// makes and every clone. `P` is the [`Protocol`](crate::Protocol) mode: [`Plain`] (the slot
/// ends with the response future) or [`Http`] (it ends with the response body).
pub struct LoadShedLayer<L = Fixed, C = Uniform, O = (), P = Plain> {
    shared: Arc<Shared<L, C, O>>,
    _protocol: PhantomData<fn() -> P>,
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

    /// For an HTTP server or client: refuses calls beyond `max_in_flight` in flight, each call
    /// in flight until its response body ends ([`Http`] mode). Chain `.limit(..)` for an
    /// adaptive limit, which then measures each call up to the end of its body.
    pub fn http(max_in_flight: usize) -> LoadShedBuilder<Fixed, Uniform, (), Http> {
        Self::builder().max_in_flight(max_in_flight).http()
    }
}

impl<L, C, O, P> LoadShedLayer<L, C, O, P> {
    pub(crate) fn from_shared(shared: Shared<L, C, O>) -> Self {
        Self {
            shared: Arc::new(shared),
            _protocol: PhantomData,
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

impl<S, L, C, O, P> Layer<S> for LoadShedLayer<L, C, O, P> {
    type Service = LoadShed<S, L, C, O, P>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed::new(inner, Arc::clone(&self.shared))
    }
}

impl<L, C, O, P> Clone for LoadShedLayer<L, C, O, P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _protocol: PhantomData,
        }
    }
}

impl<L, C, O, P> fmt::Debug for LoadShedLayer<L, C, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadShedLayer")
            .field("name", &self.shared.name)
            .field("core", &self.shared.core)
            .finish_non_exhaustive()
    }
}
