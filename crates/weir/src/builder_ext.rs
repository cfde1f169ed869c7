//! `ServiceBuilderExt`: weir's layers as `tower::ServiceBuilder` methods.

use tower::ServiceBuilder;
use tower_layer::Stack;
use weir_core::ErrorResponseLayer;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// weir's layers as methods on [`tower::ServiceBuilder`].
///
/// Sealed: implemented for `ServiceBuilder` only, so methods can be added without breaking
/// anyone. Each pattern crate adds its method here when its feature is on.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use weir::ServiceBuilderExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .error_responses()
///     .service(service_fn(|_req: Request<String>| async {
///         Err::<Response<String>, _>(weir::Error::circuit_open())
///     }));
/// // The error type is `Infallible`: every weir error is already a response.
/// let Ok(response) = service.oneshot(Request::new(String::new())).await;
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Turns every error of the services below into an HTTP (or gRPC) response, with
    /// [`ErrorResponseLayer::new`]: the resulting service's error is `Infallible`, so it mounts on an
    /// axum `Router` as it is. Put it outermost.
    #[must_use]
    fn error_responses(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn error_responses(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>> {
        self.layer(ErrorResponseLayer::new())
    }
}
