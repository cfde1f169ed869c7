//! grpc-timeout over real sockets: a tonic client, wrapped in weir's timeout in client mode,
//! calls a tonic server (the standard health service) whose weir timeout runs in server mode.
//! A probe on the server records the header and the deadline the handler got.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::ServiceBuilder;
use tower::layer::layer_fn;
use weir_core::{Deadline, wire::GRPC_TIMEOUT, wire::decode_grpc_timeout};
use weir_test::grpc::{GrpcProbe, GrpcServer, HealthClient, check};
use weir_timeout::TimeoutLayer;

/// What the server saw: the `grpc-timeout` header and the deadline in the extensions.
type Seen = Arc<Mutex<Vec<(Option<Duration>, Option<Duration>)>>>;

/// A server probe that records each call's `grpc-timeout` and the deadline a layer above set.
fn capture(seen: &Seen) -> GrpcProbe {
    let seen = Arc::clone(seen);
    GrpcProbe::new().inspect(move |req| {
        let header = req
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(|v| decode_grpc_timeout(v.as_bytes()).ok());
        let deadline = Deadline::get(req.extensions()).map(Deadline::remaining);
        seen.lock().expect("lock").push((header, deadline));
    })
}

#[tokio::test]
async fn the_tonic_server_sees_the_clients_grpc_timeout() {
    let seen = Seen::default();
    let server = GrpcServer::health_with(
        ServiceBuilder::new()
            .layer(
                TimeoutLayer::server(Duration::from_millis(800))
                    .name("health-server")
                    .build()
                    .expect("valid"),
            )
            .layer(capture(&seen))
            .into_inner(),
    )
    .await;

    let timed_channel = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(1500))
                .propagate(Duration::from_millis(100))
                .name("health-client")
                .build()
                .expect("valid"),
        )
        .service(server.channel().await);
    let mut client = HealthClient::new(timed_channel);

    let response = client.check(check()).await.expect("health answered");
    assert_eq!(response.into_inner().status, 1); // SERVING

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (header, deadline) = seen[0];
    // The client wrote its 1500 ms timeout minus the 100 ms allowance (minus the time to build
    // and send the request).
    let header = header.expect("the client sent grpc-timeout");
    assert!(header <= Duration::from_millis(1400), "{header:?}");
    assert!(header > Duration::from_millis(900), "{header:?}");
    // The server capped it at its own maximum, 800 ms.
    let deadline = deadline.expect("the server set a deadline");
    assert!(deadline <= Duration::from_millis(800), "{deadline:?}");
    assert!(deadline > Duration::from_millis(300), "{deadline:?}");
}

#[tokio::test]
async fn a_tonic_call_with_a_short_budget_is_honoured_not_capped() {
    let seen = Seen::default();
    let server = GrpcServer::health_with(
        ServiceBuilder::new()
            .layer(
                TimeoutLayer::server(Duration::from_secs(30))
                    .build()
                    .expect("valid"),
            )
            .layer(capture(&seen))
            .into_inner(),
    )
    .await;

    let timed_channel = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_secs(2))
                .propagate(Duration::ZERO)
                .build()
                .expect("valid"),
        )
        .service(server.channel().await);
    let mut client = HealthClient::new(timed_channel);
    client.check(check()).await.expect("health answered");

    let (header, deadline) = seen.lock().expect("lock")[0];
    let header = header.expect("grpc-timeout sent");
    let deadline = deadline.expect("deadline set");
    assert!(
        header <= Duration::from_secs(2) && header > Duration::from_secs(1),
        "{header:?}"
    );
    // Not capped (30 s is more): the server's deadline is the client's budget.
    assert!(deadline <= header, "{deadline:?} vs {header:?}");
    assert!(deadline > Duration::from_secs(1), "{deadline:?}");
}

#[tokio::test]
async fn a_relaying_tonic_server_passes_the_reduced_budget_on() {
    // B: the health service, recording what it receives.
    let seen = Seen::default();
    let b = GrpcServer::health_with(capture(&seen)).await;

    // A: honours the caller's grpc-timeout (up to 10 s) and relays every call to B through a
    // channel wrapped in weir's timeout in client mode (allowance 100 ms).
    let to_b = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder()
                .propagate(Duration::from_millis(100))
                .name("to-b")
                .build()
                .expect("valid"),
        )
        .service(b.lazy_channel());
    let a = GrpcServer::health_with(
        ServiceBuilder::new()
            .layer(
                TimeoutLayer::server(Duration::from_secs(10))
                    .name("a")
                    .build()
                    .expect("valid"),
            )
            .layer(layer_fn(move |_routes| to_b.clone()))
            .into_inner(),
    )
    .await;

    // The caller: a plain tonic client, whose own `set_timeout` sends grpc-timeout: 2 s.
    let mut client = HealthClient::new(a.channel().await);
    let mut request = tonic::Request::new(check());
    request.set_timeout(Duration::from_secs(2));
    let response = client.check(request).await.expect("relayed and answered");
    assert_eq!(response.into_inner().status, 1); // SERVING

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let header = seen[0].0.expect("B received grpc-timeout");
    // 2 s, minus the 100 ms allowance, minus the time A took to relay.
    assert!(header <= Duration::from_millis(1900), "{header:?}");
    assert!(header > Duration::from_millis(1400), "{header:?}");
}
