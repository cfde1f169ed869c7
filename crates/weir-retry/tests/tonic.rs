//! A real tonic server (tonic-health) on 127.0.0.1 whose first calls fail with a chosen status,
//! and a tonic client behind `RetryLayer::grpc()`: retried on UNAVAILABLE, not on
//! INVALID_ARGUMENT.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service, ServiceBuilder};
use weir_core::Backoff;
use weir_retry::{ReplayBody, RetryLayer};

/// Answers the first `failures` calls with `code` (a trailers-only gRPC response), then passes
/// calls to the real service; counts every call.
#[derive(Clone)]
struct FailFirst<S> {
    inner: S,
    code: tonic::Code,
    failures: usize,
    calls: Arc<AtomicUsize>,
}

impl<S> Service<http::Request<Body>> for FailFirst<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            let status = tonic::Status::new(self.code, "injected");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(req))
    }
}

#[derive(Clone)]
struct FailFirstLayer {
    code: tonic::Code,
    failures: usize,
    calls: Arc<AtomicUsize>,
}

impl<S> Layer<S> for FailFirstLayer {
    type Service = FailFirst<S>;

    fn layer(&self, inner: S) -> FailFirst<S> {
        FailFirst {
            inner,
            code: self.code,
            failures: self.failures,
            calls: Arc::clone(&self.calls),
        }
    }
}

async fn server(code: tonic::Code, failures: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = FailFirstLayer {
        code,
        failures,
        calls: Arc::clone(&calls),
    };
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    });
    (addr, calls)
}

async fn client(
    addr: SocketAddr,
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
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
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
        .service(channel);
    HealthClient::new(service)
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn unavailable_is_retried_until_the_server_answers() {
    let (addr, calls) = server(tonic::Code::Unavailable, 2).await;
    let mut client = client(addr).await;
    let response = client
        .check(check())
        .await
        .expect("served on the third call");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn unavailable_past_max_attempts_is_returned() {
    let (addr, calls) = server(tonic::Code::Unavailable, 10).await;
    let mut client = client(addr).await;
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn invalid_argument_is_not_retried() {
    let (addr, calls) = server(tonic::Code::InvalidArgument, 1).await;
    let mut client = client(addr).await;
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "injected");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
