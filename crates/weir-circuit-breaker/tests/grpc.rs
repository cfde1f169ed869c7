//! Real sockets: a tonic server whose service fails with UNAVAILABLE, behind a breaker with the
//! gRPC classifier; once the circuit opens, the tonic client still gets UNAVAILABLE, now from the
//! breaker (a trailers-only response), and the failing service is no longer called.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::layer::layer_fn;
use tower::{Service, ServiceBuilder};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::{ErrorResponseLayer, GrpcStatus};

/// Answers every call with UNAVAILABLE and counts the calls.
#[derive(Clone)]
struct Unavailable<S> {
    _inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S, B> Service<http::Request<B>> for Unavailable<S> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<B>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(tonic::Status::unavailable("backend down").into_http()) })
    }
}

#[tokio::test]
async fn a_tonic_client_gets_unavailable_from_the_open_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .classifier(GrpcStatus::new())
        .build_with_handle()
        .expect("valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let injected = Arc::clone(&calls);
    let server = Server::builder()
        .layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new())
                .layer(breaker)
                .layer(layer_fn(move |inner| Unavailable {
                    _inner: inner,
                    calls: Arc::clone(&injected),
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
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    for _ in 0..2 {
        let status = client.check(check()).await.expect_err("unavailable");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "backend down");
    }
    assert_eq!(handle.state(), State::Open);
    let status = client.check(check()).await.expect_err("rejected");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "circuit open");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.abort();
}

#[tokio::test]
async fn a_breaker_around_a_tonic_channel_stops_calling_a_failing_server() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let injected = Arc::clone(&calls);
    let server = Server::builder()
        .layer(layer_fn(move |inner| Unavailable {
            _inner: inner,
            calls: Arc::clone(&injected),
        }))
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener));
    let server = tokio::spawn(server);

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect");
    let (breaker, handle) = CircuitBreakerLayer::consecutive_failures(2)
        .classifier(GrpcStatus::new())
        .build_with_handle()
        .expect("valid");
    let mut client = HealthClient::new(ServiceBuilder::new().layer(breaker).service(channel));
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    for _ in 0..2 {
        let status = client.check(check()).await.expect_err("unavailable");
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(handle.state(), State::Open);
    // The breaker's error reaches the tonic client as a `Status` built from a `BoxError`; tonic
    // does not know weir's error, so the code is UNKNOWN, with weir's error as the source.
    let status = client.check(check()).await.expect_err("rejected");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let weir = std::error::Error::source(&status)
        .and_then(weir_core::Error::find)
        .expect("weir's error in the source chain");
    assert!(weir.is_circuit_open());
    assert_eq!(status.code(), Code::Unknown);
    server.abort();
}
