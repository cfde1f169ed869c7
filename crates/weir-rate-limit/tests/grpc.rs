//! Real sockets: a tonic server with the rate limiter and `ErrorResponseLayer` as server layers.
//! Once over the limit, a tonic client gets `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`,
//! and the handle names the layer that refused it.

use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use weir_core::ErrorResponseLayer;
use weir_rate_limit::RateLimitLayer;

#[tokio::test]
async fn a_tonic_client_gets_resource_exhausted_with_a_pushback_once_over_the_limit() {
    let (_reporter, health) = tonic_health::server::health_reporter();
    // Two calls a minute: the test's calls come far faster than a unit comes back (one every
    // 30 s), however slow the machine.
    let (limit, handle) = RateLimitLayer::per_minute(2)
        .name("grpc-edge")
        .build_with_handle()
        .expect("valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = Server::builder()
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(limit)
                .into_inner(),
        )
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener));
    let server = tokio::spawn(server);

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };
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
    server.abort();
}
