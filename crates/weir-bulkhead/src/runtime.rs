//! The thread-pool bulkhead: the inner service's futures run on a dedicated multi-thread Tokio
//! runtime, so a CPU-heavy or blocking dependency cannot starve the caller's runtime.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;
use tower_layer::Layer;
use tower_service::Service;
use weir_core::{BoxError, ConfigError};

/// Owns the dedicated runtime; the last clone to go shuts it down in the background.
struct Owner {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks (dropping a runtime from async code would panic): running tasks are
            // cancelled at their next await, and the worker threads exit on their own.
            runtime.shutdown_background();
        }
    }
}

/// Configures an [`IsolatedLayer`]; from [`IsolatedLayer::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct IsolatedBuilder {
    worker_threads: usize,
    thread_name: String,
}

impl IsolatedBuilder {
    /// The runtime's worker threads (default 2).
    pub const fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n;
        self
    }

    /// The name of the runtime's threads (default `"weir-isolated"`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the runtime.
    ///
    /// # Errors
    ///
    /// `worker_threads` of 0 ([`ConfigError::is_zero`]), or the operating system refused the
    /// runtime's threads ([`ConfigError::is_unavailable`], the I/O error as its source).
    pub fn build(self) -> Result<IsolatedLayer, ConfigError> {
        if self.worker_threads == 0 {
            return Err(ConfigError::zero(
                "isolated bulkhead",
                "worker_threads",
                "must be at least 1",
            ));
        }
        let runtime = Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .thread_name(self.thread_name)
            .enable_all()
            .build()
            .map_err(|e: io::Error| {
                ConfigError::unavailable(
                    "isolated bulkhead",
                    "worker_threads",
                    "the dedicated runtime could not start",
                    e,
                )
            })?;
        Ok(IsolatedLayer {
            owner: Arc::new(Owner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
            }),
        })
    }
}

/// Runs the inner service's response futures on a dedicated multi-thread Tokio runtime (the
/// thread-pool bulkhead): a dependency that blocks or burns CPU occupies only that runtime's
/// threads. Put a [`BulkheadLayer`](crate::BulkheadLayer) outside it to bound the work queued
/// there.
///
/// `poll_ready` and `call` still run on the caller's runtime; the future `call` returns is
/// spawned onto the dedicated runtime and awaited through its `JoinHandle`, so each call
/// allocates a task (this layer is not allocation-free, by nature). Dropping the response future
/// aborts the task. The runtime is shut down, in the background, when the layer and every
/// service it made are dropped.
#[derive(Clone)]
pub struct IsolatedLayer {
    owner: Arc<Owner>,
}

impl IsolatedLayer {
    /// A builder: 2 worker threads named `weir-isolated`.
    pub fn builder() -> IsolatedBuilder {
        IsolatedBuilder {
            worker_threads: 2,
            thread_name: "weir-isolated".to_owned(),
        }
    }

    /// The dedicated runtime's handle (to spawn more work onto it, or to inspect it).
    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.owner.handle
    }
}

impl fmt::Debug for IsolatedLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsolatedLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for IsolatedLayer {
    type Service = Isolated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Isolated {
            inner,
            owner: Arc::clone(&self.owner),
        }
    }
}

/// The service of an [`IsolatedLayer`].
#[derive(Clone)]
pub struct Isolated<S> {
    inner: S,
    owner: Arc<Owner>,
}

impl<S> Isolated<S> {
    weir_core::inner_accessors!(inner: S);
}

impl<S: fmt::Debug> fmt::Debug for Isolated<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Isolated")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Isolated<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = IsolatedFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let future = self.inner.call(req);
        IsolatedFuture {
            task: self.owner.handle.spawn(future),
            done: false,
        }
    }
}

/// The response future of an [`Isolated`] service: the task on the dedicated runtime. Dropping
/// it before it completes aborts the task.
pub struct IsolatedFuture<T, E> {
    task: JoinHandle<Result<T, E>>,
    done: bool,
}

impl<T, E: Into<BoxError>> Future for IsolatedFuture<T, E> {
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let joined = ready!(Pin::new(&mut self.task).poll(cx));
        self.done = true;
        Poll::Ready(match joined {
            Ok(result) => result.map_err(Into::into),
            // The task panicked, or the runtime was shut down under it.
            Err(join_error) => Err(BoxError::from(join_error)),
        })
    }
}

impl<T, E> Drop for IsolatedFuture<T, E> {
    fn drop(&mut self) {
        if !self.done {
            self.task.abort();
        }
    }
}

impl<T, E> fmt::Debug for IsolatedFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsolatedFuture")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
