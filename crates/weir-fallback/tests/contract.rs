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

/// The size of the response future for a `u64` request over a `Ready` inner future (16 bytes),
/// pinned so that growth is noticed (#18): a layer's future is moved and nested in every stack,
/// and its size is copied with it. Raise the bound only on purpose, with the reason.
#[test]
fn the_response_future_stays_small() {
    fn future_size<S: tower::Service<u64>>(_: &S) -> usize {
        size_of::<S::Future>()
    }
    let inner = tower::service_fn(|n: u64| std::future::ready(Ok::<u64, weir_core::BoxError>(n)));
    let svc = tower::Layer::layer(
        &weir_fallback::FallbackLayer::builder()
            .value(|_: weir_fallback::Cause<'_, u64, weir_core::BoxError>| Some(0))
            .build()
            .expect("valid"),
        inner,
    );
    let size = future_size(&svc);
    eprintln!("weir-fallback ResponseFuture for u64 over Ready: {size} bytes");
    assert!(size <= 80, "{size} bytes");
}

/// The HTTP mode's future over an `http::Request<String>` and a `Ready` inner future: 432 bytes,
/// 416 before #19, which keeps the request's trace id in it (an `Option<TraceId>`, read at call
/// only for an observer that wants trace ids: the request has gone to the primary when the
/// fallback reports); plain mode's trace slot is `()`, so its size above did not change.
#[test]
fn the_http_response_future_stays_small() {
    type Req = http::Request<String>;
    type Res = http::Response<String>;
    fn future_size<S: tower::Service<Req>>(_: &S) -> usize {
        size_of::<S::Future>()
    }
    let inner = tower::service_fn(|_: Req| {
        std::future::ready(Ok::<Res, weir_core::BoxError>(Res::default()))
    });
    let svc = tower::Layer::layer(
        &weir_fallback::FallbackLayer::builder()
            .value(|_: weir_fallback::Cause<'_, Res, weir_core::BoxError>| Some(Res::default()))
            .http()
            .build()
            .expect("valid"),
        inner,
    );
    let size = future_size(&svc);
    eprintln!("weir-fallback HTTP ResponseFuture for Request<String> over Ready: {size} bytes");
    assert!(size <= 432, "{size} bytes");
}
