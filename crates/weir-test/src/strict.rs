//! `StrictService`: a service that enforces the readiness contract.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tower_service::Service;

/// The panic message of a call on an instance that was not readied.
pub(crate) const UNREADY_CALL: &str = "called without a successful poll_ready";

/// A service that panics when `call` runs on an instance whose last `poll_ready` did not return
/// `Ready(Ok(()))`.
///
/// Readiness belongs to one instance and is consumed by `call`: every call needs its own
/// `poll_ready` first. A clone starts **not** ready, whatever the state of the original, so a
/// layer that clones its inner service and calls the clone without readying it panics here, as it
/// would misbehave against a real service with limited capacity (tower's `Buffer`,
/// `ConcurrencyLimit`). `poll_ready` is always `Ready(Ok(()))`.
///
/// The response comes at once from the closure given to [`StrictService::new`]. Clones share the
/// closure and the counters ([`calls`](Self::calls), [`poll_ready_calls`](Self::poll_ready_calls),
/// [`clones`](Self::clones)), readable from any of them.
///
/// ```
/// use std::convert::Infallible;
/// use tower::{Service, ServiceExt};
/// use weir_test::StrictService;
///
/// # tokio_test::block_on(async {
/// let mut svc = StrictService::new(|n: u32| Ok::<_, Infallible>(n * 2));
/// let answer = svc.ready().await.unwrap().call(21).await.unwrap();
/// assert_eq!(answer, 42);
/// assert_eq!(svc.calls(), 1);
/// # });
/// ```
pub struct StrictService<F> {
    respond: Arc<F>,
    counters: Arc<Counters>,
    ready: bool,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicUsize,
    poll_ready_calls: AtomicUsize,
    clones: AtomicUsize,
}

impl<F> StrictService<F> {
    /// A service answering every request with `respond(request)`; the new instance is not ready.
    pub fn new(respond: F) -> Self {
        Self {
            respond: Arc::new(respond),
            counters: Arc::new(Counters::default()),
            ready: false,
        }
    }

    /// Whether this instance was readied and has not been called since.
    #[must_use]
    pub const fn is_ready(&self) -> bool {
        self.ready
    }

    /// Calls made on this instance and every clone.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.counters.calls.load(Ordering::SeqCst)
    }

    /// `poll_ready` calls made on this instance and every clone.
    #[must_use]
    pub fn poll_ready_calls(&self) -> usize {
        self.counters.poll_ready_calls.load(Ordering::SeqCst)
    }

    /// Clones made of this instance and of every clone.
    #[must_use]
    pub fn clones(&self) -> usize {
        self.counters.clones.load(Ordering::SeqCst)
    }
}

impl<F> Clone for StrictService<F> {
    /// A clone shares the closure and the counters; it is not ready.
    fn clone(&self) -> Self {
        self.counters.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            respond: Arc::clone(&self.respond),
            counters: Arc::clone(&self.counters),
            ready: false,
        }
    }
}

impl<F> fmt::Debug for StrictService<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StrictService")
            .field("ready", &self.ready)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<F, Req, Res, E> Service<Req> for StrictService<F>
where
    F: Fn(Req) -> Result<Res, E>,
{
    type Response = Res;
    type Error = E;
    type Future = Ready<Result<Res, E>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.counters
            .poll_ready_calls
            .fetch_add(1, Ordering::SeqCst);
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        assert!(
            self.ready,
            "StrictService::call {UNREADY_CALL}: poll_ready must return Ready(Ok) on this very \
             instance before each call (readiness is consumed by call, and a clone is not ready)"
        );
        self.ready = false;
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        ready((self.respond)(req))
    }
}
