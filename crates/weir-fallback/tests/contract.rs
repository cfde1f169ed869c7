//! Contract: the service is `Clone + Send + Sync` when its inner service is, and its future is
//! `Send`.

use tower::{Service, ServiceBuilder, service_fn};
use weir_core::BoxError;
use weir_fallback::{Cause, FallbackLayer};

fn assert_service<S, Req>(_: &S)
where
    S: Service<Req> + Clone + Send + Sync,
    S::Future: Send,
{
}

#[test]
fn service_and_future_are_send_sync_clone() {
    let layer = FallbackLayer::builder()
        .value(|_: Cause<'_, u32, BoxError>| Some(1))
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    assert_service::<_, u32>(&svc);
}
