//! #20: a tonic client whose primary server answers `UNAVAILABLE` falls back to a second tonic
//! server: two tonic-health servers on 127.0.0.1, the request (a unary call's message) kept by
//! weir-retry's `HttpReplay` as a gRPC retry keeps it.

use tonic::body::Body;
use tower::ServiceBuilder;
use weir_core::classify::GrpcStatus;
use weir_fallback::{FALLBACK_HEADER, FallbackLayer, HttpReplay, ReplayBody};
use weir_test::grpc::{GrpcProbe, GrpcServer, HealthClient, ServingStatus, check};

/// The primary answers every call with `UNAVAILABLE`: the second server answers, the answer is
/// marked `weir-fallback: service` in its metadata, and each server saw the call once.
#[tokio::test]
async fn a_tonic_client_falls_back_to_a_second_server_on_unavailable() {
    let primary_probe = GrpcProbe::new().fail_first(usize::MAX, tonic::Code::Unavailable);
    let primary = GrpcServer::health_with(primary_probe.clone()).await;
    let second_probe = GrpcProbe::new();
    let second = GrpcServer::health_with(second_probe.clone()).await;

    let to_tonic = |req: http::Request<ReplayBody<Body>>| req.map(Body::new);
    let second_channel = ServiceBuilder::new()
        .map_request(to_tonic)
        .service(second.channel().await);
    let (layer, handle) = FallbackLayer::builder()
        .classify(GrpcStatus::new())
        // gRPC calls are POSTs: every method kept; a message still streaming is not waited for.
        .service_replay(
            second_channel,
            HttpReplay::new().non_idempotent(true).wait_for_body(false),
        )
        .http()
        .build_with_handle()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(layer)
        .map_request(to_tonic)
        .service(primary.channel().await);
    let mut client = HealthClient::new(service);

    let response = client
        .check(check())
        .await
        .expect("the second server answers");
    assert_eq!(
        response.metadata().get(FALLBACK_HEADER.as_str()).unwrap(),
        "service"
    );
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!((primary_probe.calls(), second_probe.calls()), (1, 1));
    assert_eq!(handle.stats().service, 1);
}

/// Without an answer from the second server (it fails too) the client gets the primary's own
/// `UNAVAILABLE`, not the second's status.
#[tokio::test]
async fn when_both_fail_the_client_gets_the_primarys_status() {
    let primary_probe = GrpcProbe::new().fail_first(usize::MAX, tonic::Code::Unavailable);
    let primary = GrpcServer::health_with(primary_probe.clone()).await;
    let second_probe = GrpcProbe::new().fail_first(usize::MAX, tonic::Code::ResourceExhausted);
    let second = GrpcServer::health_with(second_probe.clone()).await;

    let to_tonic = |req: http::Request<ReplayBody<Body>>| req.map(Body::new);
    let second_channel = ServiceBuilder::new()
        .map_request(to_tonic)
        .service(second.channel().await);
    let (layer, handle) = FallbackLayer::builder()
        .classify(GrpcStatus::new())
        .service_replay(
            second_channel,
            HttpReplay::new().non_idempotent(true).wait_for_body(false),
        )
        .build_with_handle()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(layer)
        .map_request(to_tonic)
        .service(primary.channel().await);
    let mut client = HealthClient::new(service);

    let status = client.check(check()).await.expect_err("both servers fail");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!((primary_probe.calls(), second_probe.calls()), (1, 1));
    let stats = handle.stats();
    assert_eq!((stats.service, stats.exhausted), (0, 1));
}
