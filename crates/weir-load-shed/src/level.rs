//! `LoadLevelLayer`: puts the load level into each HTTP request's extensions.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::handle::LoadShedHandle;

/// Inserts the current [`LoadLevel`](crate::LoadLevel) of a load shedder into each
/// `http::Request`'s extensions, so a handler can degrade gracefully (`Extension<LoadLevel>` in
/// axum). From [`LoadShedHandle`]: `LoadLevelLayer::new(handle)`.
///
/// Put it inside the load shedder, so the level counts the request itself.
#[derive(Clone, Debug)]
pub struct LoadLevelLayer {
    handle: LoadShedHandle,
}

impl LoadLevelLayer {
    /// Reads the level from `handle`'s load shedder.
    #[must_use]
    pub const fn new(handle: LoadShedHandle) -> Self {
        Self { handle }
    }
}

impl<S> Layer<S> for LoadLevelLayer {
    type Service = LoadLevelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadLevelService {
            inner,
            handle: self.handle.clone(),
        }
    }
}

/// The service of a [`LoadLevelLayer`].
#[derive(Clone, Debug)]
pub struct LoadLevelService<S> {
    inner: S,
    handle: LoadShedHandle,
}

impl<S> LoadLevelService<S> {
    weir_core::inner_accessors!(inner: S);
}

impl<S, B> Service<http::Request<B>> for LoadLevelService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.handle.load_level());
        self.inner.call(req)
    }
}
