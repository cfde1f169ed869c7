//! A real tonic server (tonic-health) on 127.0.0.1 whose first calls fail with a chosen status,
//! and a tonic client behind `RetryLayer::grpc()`: retried on UNAVAILABLE, not on
//! INVALID_ARGUMENT.

use std::time::Duration;

use tonic::Code;
use tonic::body::Body;
use tower::ServiceBuilder;
use weir_core::backoff::Backoff;
use weir_retry::{ReplayBody, RetryLayer};
use weir_test::grpc::{GrpcProbe, GrpcServer, HealthClient, ServingStatus, check};

/// A health server whose first `failures` calls fail with `code`; its probe counts the calls.
async fn server(code: Code, failures: usize) -> (GrpcServer, GrpcProbe) {
    let probe = GrpcProbe::new().fail_first(failures, code);
    (GrpcServer::health_with(probe.clone()).await, probe)
}

async fn client(
    server: &GrpcServer,
) -> HealthClient<
    impl tonic::client::GrpcService<
        Body,
        ResponseBody = impl http_body::Body<
            Data = bytes::Bytes,
            Error = impl Into<weir_core::BoxError> + Send,
        > + Send
                       + 'static,
    > + Clone,
> {
    let service = ServiceBuilder::new()
        .layer(
            RetryLayer::grpc()
                .max_attempts(4)
                // No waiting: this test runs on the wall clock (real sockets).
                .backoff(Backoff::constant(Duration::ZERO))
                .build()
                .expect("valid"),
        )
        .map_request(|req: http::Request<ReplayBody<Body>>| req.map(Body::new))
        .service(server.channel().await);
    HealthClient::new(service)
}

#[tokio::test]
async fn unavailable_is_retried_until_the_server_answers() {
    let (server, probe) = server(Code::Unavailable, 2).await;
    let mut client = client(&server).await;
    let response = client
        .check(check())
        .await
        .expect("served on the third call");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!(probe.calls(), 3);
}

#[tokio::test]
async fn unavailable_past_max_attempts_is_returned() {
    let (server, probe) = server(Code::Unavailable, 10).await;
    let mut client = client(&server).await;
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(probe.calls(), 4);
}

#[tokio::test]
async fn invalid_argument_is_not_retried() {
    let (server, probe) = server(Code::InvalidArgument, 1).await;
    let mut client = client(&server).await;
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "injected");
    assert_eq!(probe.calls(), 1);
}
