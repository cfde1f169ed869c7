//! A real tonic server (tonic-health) on 127.0.0.1 whose first call hangs, and a tonic client
//! behind `HedgeLayer::grpc()` (gRFC A6 hedging): the hedge answers, carrying
//! `grpc-previous-rpc-attempts: 1`. Real sockets, so real time: generous bounds, nothing timed.

use std::time::Duration;

use tonic::body::Body;
use tower::ServiceBuilder;
use weir_hedge::HedgeLayer;
use weir_retry::ReplayBody;
use weir_test::grpc::{GrpcProbe, GrpcServer, HealthClient, ServingStatus, check};

/// #21 (A6): over real sockets, a hung gRPC call is hedged; the hedge's answer is taken and it
/// carried `grpc-previous-rpc-attempts: 1`.
#[tokio::test]
async fn a_hung_call_is_answered_by_its_hedge() {
    // The first call waits 30 s before it is served.
    let probe = GrpcProbe::new().delay_first(Duration::from_secs(30));
    let server = GrpcServer::health_with(probe.clone()).await;
    let (layer, handle) = HedgeLayer::grpc()
        .delay(Duration::from_millis(50))
        .build_with_handle()
        .expect("valid");
    let service = ServiceBuilder::new()
        .layer(layer)
        .map_request(|req: http::Request<ReplayBody<Body>>| req.map(Body::new))
        .service(server.channel().await);
    let mut client = HealthClient::new(service);
    let response = tokio::time::timeout(Duration::from_secs(20), client.check(check()))
        .await
        .expect("the hedge answers long before the hung call")
        .expect("a response");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!(
        probe.header("grpc-previous-rpc-attempts"),
        vec![None, Some("1".to_owned())]
    );
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (1, 1));
}
