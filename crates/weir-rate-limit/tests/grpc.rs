//! Real sockets: a tonic server with the rate limiter and `ErrorResponseLayer` as server layers.
//! Once over the limit, a tonic client gets `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`,
//! and the handle names the layer that refused it.

use tonic::Code;
use tower::ServiceBuilder;
use weir_core::response::ErrorResponseLayer;
use weir_rate_limit::RateLimitLayer;
use weir_test::grpc::{GrpcServer, HealthClient, ServingStatus, check};

#[tokio::test]
async fn a_tonic_client_gets_resource_exhausted_with_a_pushback_once_over_the_limit() {
    // Two calls a minute: the test's calls come far faster than a unit comes back (one every
    // 30 s), however slow the machine.
    let (limit, handle) = RateLimitLayer::per_minute(2)
        .name("grpc-edge")
        .build_with_handle()
        .expect("valid");
    let server = GrpcServer::health_with(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(limit)
            .into_inner(),
    )
    .await;

    let mut client = HealthClient::new(server.channel().await);
    for _ in 0..2 {
        let response = client.check(check()).await.expect("admitted");
        assert_eq!(response.get_ref().status(), ServingStatus::Serving);
    }
    let status = client.check(check()).await.expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .expect("grpc-retry-pushback-ms")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("milliseconds");
    // The next unit comes back within one emission interval (30 s), never "now".
    assert!((1..=30_000).contains(&pushback), "{pushback} ms");
    assert_eq!(handle.name(), "grpc-edge");
}
