//! A real tonic server (tonic-health) on 127.0.0.1 whose first call hangs, and a tonic client
//! behind `HedgeLayer::grpc()` (gRFC A6 hedging): the hedge answers, carrying
//! `grpc-previous-rpc-attempts: 1`. Real sockets, so real time: generous bounds, nothing timed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service, ServiceBuilder};
use weir_hedge::HedgeLayer;
use weir_retry::ReplayBody;

type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// Records each call's `grpc-previous-rpc-attempts`; the first call waits 30 s before it is
/// served.
#[derive(Clone)]
struct SlowFirst<S> {
    inner: S,
    seen: Seen,
}

impl<S> Service<http::Request<Body>> for SlowFirst<S>
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
        let previous = req
            .headers()
            .get("grpc-previous-rpc-attempts")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let first = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(previous);
            seen.len() == 1
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            if first {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            future.await
        })
    }
}

#[derive(Clone)]
struct SlowFirstLayer(Seen);

impl<S> Layer<S> for SlowFirstLayer {
    type Service = SlowFirst<S>;

    fn layer(&self, inner: S) -> SlowFirst<S> {
        SlowFirst {
            inner,
            seen: Arc::clone(&self.0),
        }
    }
}

async fn server() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let seen = Seen::default();
    let layer = SlowFirstLayer(Arc::clone(&seen));
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    });
    (addr, seen)
}

/// #21 (A6): over real sockets, a hung gRPC call is hedged; the hedge's answer is taken and it
/// carried `grpc-previous-rpc-attempts: 1`.
#[tokio::test]
async fn a_hung_call_is_answered_by_its_hedge() {
    let (addr, seen) = server().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let (layer, handle) = HedgeLayer::grpc()
        .delay(Duration::from_millis(50))
        .build_with_handle()
        .expect("valid");
    let service = ServiceBuilder::new()
        .layer(layer)
        .map_request(|req: http::Request<ReplayBody<Body>>| req.map(Body::new))
        .service(channel);
    let mut client = HealthClient::new(service);
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        client.check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .expect("the hedge answers long before the hung call")
    .expect("a response");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
    assert_eq!(*seen.lock().unwrap(), vec![None, Some("1".to_owned())]);
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (1, 1));
}
