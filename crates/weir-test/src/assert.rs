//! Compile-time assertions and a one-shot readiness poll.

use std::task::{Context, Poll, Waker};

use tower_service::Service;

/// Fails to compile unless `T` is `Send + Sync`.
///
/// ```
/// weir_test::assert_send_sync::<std::sync::Arc<u32>>();
/// ```
///
/// ```compile_fail
/// weir_test::assert_send_sync::<std::rc::Rc<u32>>();
/// ```
pub const fn assert_send_sync<T: Send + Sync>() {}

/// Fails to compile unless `T` is `Send + Sync + 'static`: what `tokio::spawn` and axum need of a
/// service.
///
/// ```compile_fail
/// fn borrowed<'a>() {
///     weir_test::assert_send_sync_static::<&'a u32>();
/// }
/// ```
pub const fn assert_send_sync_static<T: Send + Sync + 'static>() {}

/// Fails to compile unless `T` is `Send`: what a response future needs to be spawned.
pub const fn assert_send<T: Send>() {}

/// Fails to compile unless `T` is `Clone`.
pub const fn assert_clone<T: Clone>() {}

/// Polls `service` for readiness once, with a waker that does nothing, and returns the answer.
///
/// Handy in contract tests to say "this instance is ready now" without a runtime. A `Pending`
/// answer registers no useful waker: poll again (or use `tokio_test::task::spawn(svc.ready())`)
/// to wait.
///
/// ```
/// use std::convert::Infallible;
/// use weir_test::{StrictService, poll_ready_now};
///
/// let mut svc = StrictService::new(|n: u8| Ok::<_, Infallible>(n));
/// assert!(poll_ready_now(&mut svc).is_ready());
/// assert!(svc.is_ready());
/// ```
pub fn poll_ready_now<S, Req>(service: &mut S) -> Poll<Result<(), S::Error>>
where
    S: Service<Req>,
{
    service.poll_ready(&mut Context::from_waker(Waker::noop()))
}
