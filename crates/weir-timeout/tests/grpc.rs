//! grpc-timeout over real sockets: a tonic client, wrapped in weir's timeout in client mode,
//! calls a tonic server (the standard health service) whose weir timeout runs in server mode.
//! A capturing layer on the server records the header and the deadline the handler got.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::layer::layer_fn;
use tower::{Service, ServiceBuilder};
use weir_core::{Deadline, GRPC_TIMEOUT, decode_grpc_timeout};
use weir_timeout::TimeoutLayer;

/// What the server saw: the `grpc-timeout` header and the deadline in the extensions.
type Seen = Arc<Mutex<Vec<(Option<Duration>, Option<Duration>)>>>;

#[derive(Clone)]
struct Capture<S> {
    inner: S,
    seen: Seen,
}

impl<S, B> Service<http::Request<B>> for Capture<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> S::Future {
        let header = req
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(|v| decode_grpc_timeout(v.as_bytes()).ok());
        let deadline = Deadline::get(req.extensions()).map(Deadline::remaining);
        self.seen.lock().expect("lock").push((header, deadline));
        self.inner.call(req)
    }
}

#[tokio::test]
async fn the_tonic_server_sees_the_clients_grpc_timeout() {
    let seen = Seen::default();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let capture_seen = Arc::clone(&seen);
    let server = Server::builder()
        .layer(
            ServiceBuilder::new()
                .layer(
                    TimeoutLayer::server(Duration::from_millis(800))
                        .name("health-server")
                        .build()
                        .expect("valid"),
                )
                .layer(layer_fn(move |inner| Capture {
                    inner,
                    seen: Arc::clone(&capture_seen),
                }))
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
    let timed_channel = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(1500))
                .propagate(Duration::from_millis(100))
                .name("health-client")
                .build()
                .expect("valid"),
        )
        .service(channel);
    let mut client = HealthClient::new(timed_channel);

    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answered");
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

    server.abort();
}

#[tokio::test]
async fn a_tonic_call_with_a_short_budget_is_honoured_not_capped() {
    let seen = Seen::default();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let capture_seen = Arc::clone(&seen);
    let server = Server::builder()
        .layer(
            ServiceBuilder::new()
                .layer(
                    TimeoutLayer::server(Duration::from_secs(30))
                        .build()
                        .expect("valid"),
                )
                .layer(layer_fn(move |inner| Capture {
                    inner,
                    seen: Arc::clone(&capture_seen),
                }))
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
    let timed_channel = ServiceBuilder::new()
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_secs(2))
                .propagate(Duration::ZERO)
                .build()
                .expect("valid"),
        )
        .service(channel);
    let mut client = HealthClient::new(timed_channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answered");

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

    server.abort();
}

/// Starts a tonic server on 127.0.0.1 with the health service behind `layer`; returns its
/// address.
async fn health_server<L>(layer: L) -> std::net::SocketAddr
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + Sync + 'static,
    L::Service: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Error:
        Into<weir_core::BoxError> + Send,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = Server::builder()
        .layer(layer)
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(async move {
        // Keep the reporter alive as long as the server.
        let _reporter = reporter;
        server.await
    });
    addr
}

#[tokio::test]
async fn a_relaying_tonic_server_passes_the_reduced_budget_on() {
    // B: the health service, recording what it receives.
    let seen = Seen::default();
    let capture_seen = Arc::clone(&seen);
    let b = health_server(layer_fn(move |inner| Capture {
        inner,
        seen: Arc::clone(&capture_seen),
    }))
    .await;

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
        .service(
            Endpoint::from_shared(format!("http://{b}"))
                .expect("valid uri")
                .connect_lazy(),
        );
    let a = health_server(
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
    let channel = Endpoint::from_shared(format!("http://{a}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
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
