//! Real sockets: a tonic server whose service fails with UNAVAILABLE, behind a breaker with the
//! gRPC classifier; once the circuit opens, the tonic client still gets UNAVAILABLE, now from the
//! breaker (a trailers-only response), and the failing service is no longer called.

use tonic::Code;
use tower::ServiceBuilder;
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::{classify::GrpcStatus, response::ErrorResponseLayer};
use weir_test::grpc::{GrpcProbe, GrpcServer, HealthClient, check};

#[tokio::test]
async fn a_tonic_client_gets_unavailable_from_the_open_breaker() {
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .classifier(GrpcStatus::new())
        .build_with_handle()
        .expect("valid");
    let unavailable = GrpcProbe::new().fail_first(usize::MAX, Code::Unavailable);
    let server = GrpcServer::health_with(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(breaker)
            .layer(unavailable.clone())
            .into_inner(),
    )
    .await;

    let mut client = HealthClient::new(server.channel().await);
    for _ in 0..2 {
        let status = client.check(check()).await.expect_err("unavailable");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "injected");
    }
    assert_eq!(handle.state(), State::Open);
    let status = client.check(check()).await.expect_err("rejected");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "circuit open");
    assert_eq!(unavailable.calls(), 2);
}

#[tokio::test]
async fn a_breaker_around_a_tonic_channel_stops_calling_a_failing_server() {
    let unavailable = GrpcProbe::new().fail_first(usize::MAX, Code::Unavailable);
    let server = GrpcServer::health_with(unavailable.clone()).await;

    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .classifier(GrpcStatus::new())
        .build_with_handle()
        .expect("valid");
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(breaker)
            .service(server.channel().await),
    );
    for _ in 0..2 {
        let status = client.check(check()).await.expect_err("unavailable");
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(handle.state(), State::Open);
    // The breaker's error reaches the tonic client as a `Status` built from a `BoxError`; tonic
    // does not know weir's error, so the code is UNKNOWN, with weir's error as the source.
    let status = client.check(check()).await.expect_err("rejected");
    assert_eq!(unavailable.calls(), 2);
    let weir = std::error::Error::source(&status)
        .and_then(weir_core::Error::find)
        .expect("weir's error in the source chain");
    assert!(weir.is_circuit_open());
    assert_eq!(status.code(), Code::Unknown);
}
