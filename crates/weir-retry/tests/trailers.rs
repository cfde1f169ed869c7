//! #16.5: a gRPC call's status arrives in its trailers (every normal completion, and a failure
//! after the first message); retry's budget hears it there, at the end of the body, not as the
//! success its `200` head looks like. A real tonic server on 127.0.0.1.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service, ServiceBuilder};
use weir_core::backoff::Backoff;
use weir_retry::{ReplayBody, RetryBudget, RetryHandle, RetryLayer};

/// While `unavailable` is set, rewrites the `grpc-status` of every response's trailers to 14
/// (UNAVAILABLE): the head still says 200, the message is sent, the status comes last.
#[derive(Clone)]
struct TrailersSay<S> {
    inner: S,
    unavailable: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl<S> Service<http::Request<Body>> for TrailersSay<S>
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
        self.calls.fetch_add(1, Ordering::SeqCst);
        let unavailable = self.unavailable.load(Ordering::SeqCst);
        let future = self.inner.call(req);
        Box::pin(async move {
            let res = future.await?;
            if !unavailable {
                return Ok(res);
            }
            Ok(res.map(|body| {
                Body::new(body.map_frame(|mut frame| {
                    if let Some(trailers) = frame.trailers_mut() {
                        trailers.insert("grpc-status", "14".parse().unwrap());
                        trailers.insert("grpc-message", "draining".parse().unwrap());
                    }
                    frame
                }))
            }))
        })
    }
}

#[derive(Clone)]
struct TrailersSayLayer {
    unavailable: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl<S> Layer<S> for TrailersSayLayer {
    type Service = TrailersSay<S>;

    fn layer(&self, inner: S) -> TrailersSay<S> {
        TrailersSay {
            inner,
            unavailable: Arc::clone(&self.unavailable),
            calls: Arc::clone(&self.calls),
        }
    }
}

async fn server(unavailable: Arc<AtomicBool>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TrailersSayLayer {
        unavailable,
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
) -> (
    HealthClient<
        impl tonic::client::GrpcService<
            Body,
            ResponseBody = impl http_body::Body<
                Data = bytes::Bytes,
                Error = impl Into<weir_core::BoxError> + Send,
            > + Send
                           + 'static,
        > + Clone,
    >,
    RetryHandle,
) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    // gRFC A6 throttling, 2 tokens: a retry needs more than 1.
    let (retry, handle) = RetryLayer::grpc()
        .max_attempts(3)
        // No waiting: this test runs on the wall clock (real sockets).
        .backoff(Backoff::constant(Duration::ZERO))
        .budget(RetryBudget::grpc_throttle(2, 1.0))
        .build_with_handle()
        .expect("valid");
    let service = ServiceBuilder::new()
        .layer(retry)
        .map_request(|req: http::Request<ReplayBody<Body>>| req.map(Body::new))
        .service(channel);
    (HealthClient::new(service), handle)
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn a_status_in_the_trailers_is_what_the_budget_counts() {
    let unavailable = Arc::new(AtomicBool::new(true));
    let (addr, calls) = server(Arc::clone(&unavailable)).await;
    let (mut client, handle) = client(addr).await;
    assert_eq!(handle.available(), Some(1));

    // UNAVAILABLE after the message, in the trailers: a failure for the budget (2 -> 1 token,
    // no retry left), not the success the 200 head looks like. It is not retried: its body
    // went to the caller.
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "draining");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(handle.retries(), 0);
    assert_eq!(handle.available(), Some(0));

    // A normal completion (OK in the trailers) gives a token back: retries are allowed again.
    unavailable.store(false, Ordering::SeqCst);
    client.check(check()).await.expect("served");
    assert_eq!(handle.available(), Some(1));
}
