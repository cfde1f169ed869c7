//! The `HealthCheck` trait, checks from closures, and the type-erased form the registry stores.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::status::Health;

/// One thing that can be checked: a database connection, a queue's depth, a dependency's
/// breaker. Register it with [`HealthRegistry::register`](crate::HealthRegistry::register).
///
/// The registry bounds every run with the check's timeout, and caches the result, so an
/// implementation neither times itself out nor caches.
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> impl Future<Output = Health> + Send;
}

/// A check from a closure returning a future: see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FnCheck<F>(F);

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FnCheck").finish_non_exhaustive()
    }
}

/// A [`HealthCheck`] from a closure returning a future of [`Health`].
///
/// ```
/// use weir_health::{Health, from_fn};
/// let check = from_fn(|| async { Health::healthy() });
/// # let _ = check;
/// ```
pub const fn from_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Health> + Send,
{
    FnCheck(f)
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Health> + Send,
{
    fn check(&self) -> impl Future<Output = Health> + Send {
        (self.0)()
    }
}

/// The registry stores checks of different types side by side, so it needs one object-safe
/// form. The future is boxed once per real run of a check, never on a cached probe (and never
/// on a request of the service the probes are about).
pub(crate) trait DynCheck: Send + Sync {
    fn run(&self) -> Pin<Box<dyn Future<Output = Health> + Send + '_>>;
}

impl<T: HealthCheck> DynCheck for T {
    fn run(&self) -> Pin<Box<dyn Future<Output = Health> + Send + '_>> {
        Box::pin(self.check())
    }
}
