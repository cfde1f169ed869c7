//! #22.4: `grpc.health.v1.Health` over real sockets: a tonic client sees `NOT_SERVING` while a
//! critical dependency's breaker is open and `SERVING` after it recovers, through `Check` and
//! `Watch`.
#![cfg(all(feature = "tonic", feature = "circuit-breaker"))]

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use weir_circuit_breaker::CircuitBreakerLayer;
use weir_health::{BreakerCheck, GrpcHealth, HealthRegistry};

fn req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

fn status(res: &HealthCheckResponse) -> ServingStatus {
    ServingStatus::try_from(res.status).expect("a known status")
}

/// Real sockets: bounds are generous, never asserted as timings.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn check_and_watch_follow_the_breaker() {
    let (_layer, breaker) = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(600))
        .build_with_handle()
        .expect("valid");
    let registry = HealthRegistry::new();
    registry
        .register("upstream", BreakerCheck::critical(breaker.clone()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()
        .expect("valid");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let health = GrpcHealth::new(registry.clone())
        .watch_period(Duration::from_millis(10))
        .into_server();
    let server = tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);

    let check = async |client: &mut HealthClient<_>, name: &str| {
        status(client.check(req(name)).await.expect("known").get_ref())
    };
    assert_eq!(check(&mut client, "").await, ServingStatus::Serving);
    assert_eq!(check(&mut client, "upstream").await, ServingStatus::Serving);
    let unknown = client.check(req("nope")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut whole = client.watch(req("")).await.expect("watch").into_inner();
    let first = tokio::time::timeout(BOUND, whole.message())
        .await
        .expect("in time");
    assert_eq!(status(&first.unwrap().unwrap()), ServingStatus::Serving);

    breaker.open();
    assert_eq!(check(&mut client, "").await, ServingStatus::NotServing);
    assert_eq!(
        check(&mut client, "upstream").await,
        ServingStatus::NotServing
    );
    let next = tokio::time::timeout(BOUND, whole.message())
        .await
        .expect("in time");
    assert_eq!(status(&next.unwrap().unwrap()), ServingStatus::NotServing);

    breaker.reset();
    let next = tokio::time::timeout(BOUND, whole.message())
        .await
        .expect("in time");
    assert_eq!(status(&next.unwrap().unwrap()), ServingStatus::Serving);
    assert_eq!(check(&mut client, "").await, ServingStatus::Serving);

    // Draining turns the whole server NOT_SERVING, the check itself stays SERVING.
    registry.lifecycle().draining();
    assert_eq!(check(&mut client, "").await, ServingStatus::NotServing);
    assert_eq!(check(&mut client, "upstream").await, ServingStatus::Serving);

    let mut unknown = client.watch(req("nope")).await.expect("watch").into_inner();
    let first = tokio::time::timeout(BOUND, unknown.message())
        .await
        .expect("in time");
    assert_eq!(
        status(&first.unwrap().unwrap()),
        ServingStatus::ServiceUnknown
    );
    server.abort();
}
