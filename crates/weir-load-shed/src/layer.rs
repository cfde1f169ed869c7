//! `LoadShedLayer` and its presets.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use weir_core::Observer;

use weir_core::protocol::Plain;

use crate::classify::Uniform;
use crate::event::Event;
use crate::handle::LoadShedHandle;
use crate::limit::{Fixed, Limit};
use crate::service::LoadShed;
use crate::settings::LoadShedSettings;
use crate::shared::{Finish, Shared};

/// Applies [`LoadShed`]: refuse at once, by priority, when the calls in flight reach a fixed or
/// adaptive limit.
///
/// The counters and the limit are created when the layer is built and shared by every service it
/// makes and every clone. `P` is the [`Protocol`](crate::Protocol) mode:
/// `weir_core::protocol::Plain` (the slot ends with the response future) or
/// `weir_core::protocol::Http` (it ends with the response body).
pub struct LoadShedLayer<L = Fixed, C = Uniform, O = (), P = Plain> {
    shared: Arc<Shared<L, C, O>>,
    _protocol: PhantomData<fn() -> P>,
}

impl LoadShedLayer {
    /// Refuses calls beyond `max_in_flight` in flight, everything else default, `Plain` mode. A
    /// `max_in_flight` of 0 is raised to 1, and one above `u32::MAX` lowered to it (the rule of
    /// every `new` in weir).
    #[must_use]
    pub fn new(max_in_flight: usize) -> Self {
        Self::from_shared(Shared::new(
            LoadShedSettings::default(),
            Fixed::new(max_in_flight),
            Uniform,
            (),
        ))
    }
}

impl<L, C, O, P> LoadShedLayer<L, C, O, P> {
    pub(crate) fn from_shared(shared: Shared<L, C, O>) -> Self {
        Self {
            shared: Arc::new(shared),
            _protocol: PhantomData,
        }
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
