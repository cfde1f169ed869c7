//! Real gRPC servers and clients on 127.0.0.1 for the integration tests (feature `grpc`): a tonic
//! server on a free port (tonic-health's `grpc.health.v1.Health`, or any routes) behind the layer
//! under test, a channel to it, and [`GrpcProbe`], a server layer that fails, delays and records
//! calls as a test scripts it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::server::HealthReporter;
use tower_layer::{Identity, Layer};
use tower_service::Service;

/// The health service's client and messages (tonic-health), so a test needs no dependency of
/// its own on tonic-health.
pub use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    health_client::HealthClient,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tonic server serving on 127.0.0.1 at a free port; dropping it stops the server.
pub struct GrpcServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    reporter: Option<HealthReporter>,
}

impl GrpcServer {
    /// The standard health service (tonic-health), reporting `SERVING` for the whole server
    /// (`service: ""`), with no layer.
    pub async fn health() -> Self {
        Self::health_with(Identity::new()).await
    }

    /// The standard health service (tonic-health), reporting `SERVING` for the whole server,
    /// behind `layer` (the layer under test, a [`GrpcProbe`], or a `ServiceBuilder` stack of
    /// them).
    pub async fn health_with<L, ResBody>(layer: L) -> Self
    where
        L: Layer<Routes> + Clone + Send + Sync + 'static,
        L::Service:
            Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<BoxError> + Send,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let mut server = Self::serve_with(Routes::new(health), layer).await;
        server.reporter = Some(reporter);
        server
    }

    /// Serves `routes` (`Routes::new(service)`, `.add_service(..)` for more) behind `layer`.
    ///
    /// # Panics
    ///
    /// When no port can be bound.
    pub async fn serve_with<L, ResBody>(routes: Routes, layer: L) -> Self
    where
        L: Layer<Routes> + Clone + Send + Sync + 'static,
        L::Service:
            Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<BoxError> + Send,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = Server::builder()
            .layer(layer)
            .add_routes(routes)
            .serve_with_incoming(TcpIncoming::from(listener));
        let task = tokio::spawn(async move {
            server.await.expect("the gRPC server failed");
        });
        Self {
            addr,
            task,
            reporter: None,
        }
    }

    /// The server's address.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's URI, `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to the server, connected.
    ///
    /// # Panics
    ///
    /// When the connection fails.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.uri())
            .expect("a valid uri")
            .connect()
            .await
            .expect("connect")
    }

    /// A channel to the server that connects on its first call.
    ///
    /// # Panics
    ///
    /// Never: the URI is valid.
    #[must_use]
    pub fn lazy_channel(&self) -> Channel {
        Endpoint::from_shared(self.uri())
            .expect("a valid uri")
            .connect_lazy()
    }

    /// The health reporter of a [`health`](Self::health) server (to set another status), if it
    /// is one.
    #[must_use]
    pub const fn reporter(&self) -> Option<&HealthReporter> {
        self.reporter.as_ref()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A health check of the whole server (`service: ""`), the request every test sends.
#[must_use]
pub fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

/// A server layer scripted by the test: it answers the first calls with an error status
/// ([`fail_first`](Self::fail_first)), holds the first call back
/// ([`delay_first`](Self::delay_first)), shows each request to a closure
/// ([`inspect`](Self::inspect)), and counts and records every call (its headers) for the test to
/// read. Clones share the count and the records.
#[derive(Clone)]
pub struct GrpcProbe {
    failures: usize,
    code: tonic::Code,
    in_trailers: bool,
    delay_first: Option<Duration>,
    inspect: Option<Arc<dyn Fn(&Request<Body>) + Send + Sync>>,
    seen: Arc<Seen>,
}

#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    headers: Mutex<Vec<HeaderMap>>,
}

impl GrpcProbe {
    /// A probe that passes every call through, counting and recording it.
    #[must_use]
    pub fn new() -> Self {
        Self {
            failures: 0,
            code: tonic::Code::Ok,
            in_trailers: false,
            delay_first: None,
            inspect: None,
            seen: Arc::default(),
        }
    }

    /// Answers the first `failures` calls with `code` and the message `"injected"` (a
    /// trailers-only gRPC response), without calling the service below; later calls pass.
    /// `usize::MAX` fails every call.
    #[must_use]
    pub const fn fail_first(mut self, failures: usize, code: tonic::Code) -> Self {
        self.failures = failures;
        self.code = code;
        self.in_trailers = false;
        self
    }

    /// The first `failures` calls are served by the service below (a `200` head with
    /// `content-type: application/grpc` and the messages), but end with `code` and the message
    /// `"injected"` in their trailers, as a call that fails after its first message does; later
    /// calls pass. `usize::MAX` fails every call.
    #[must_use]
    pub const fn fail_in_trailers(mut self, failures: usize, code: tonic::Code) -> Self {
        self.failures = failures;
        self.code = code;
        self.in_trailers = true;
        self
    }

    /// The first call waits `delay` (tokio time) before the service below answers it.
    #[must_use]
    pub const fn delay_first(mut self, delay: Duration) -> Self {
        self.delay_first = Some(delay);
        self
    }

    /// Shows each request, before anything else, to `inspect` (to read its extensions, such as a
    /// deadline a layer above put there).
    #[must_use]
    pub fn inspect(mut self, inspect: impl Fn(&Request<Body>) + Send + Sync + 'static) -> Self {
        self.inspect = Some(Arc::new(inspect));
        self
    }

    /// The calls so far.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }

    /// The value of the header `name` in each call so far, in order (`None` where it was absent
    /// or not text).
    #[must_use]
    pub fn header(&self, name: &str) -> Vec<Option<String>> {
        self.seen
            .headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|headers| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect()
    }
}

impl Default for GrpcProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for GrpcProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcProbe")
            .field("failures", &self.failures)
            .field("code", &self.code)
            .field("in_trailers", &self.in_trailers)
            .field("delay_first", &self.delay_first)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for GrpcProbe {
    type Service = GrpcProbeService<S>;

    fn layer(&self, inner: S) -> GrpcProbeService<S> {
        GrpcProbeService {
            inner,
            probe: self.clone(),
        }
    }
}

/// `body` with `grpc-status: code` and `grpc-message: injected` in its trailers in place of
/// the status the service wrote there.
fn fail_trailers(body: Body, code: tonic::Code) -> Body {
    use http_body_util::BodyExt;

    let status = tonic::Status::new(code, "injected");
    Body::new(body.map_frame(move |frame| match frame.into_trailers() {
        Ok(mut trailers) => {
            trailers.remove("grpc-message");
            trailers.remove("grpc-status-details-bin");
            let mut failed = HeaderMap::new();
            status
                .add_header(&mut failed)
                .unwrap_or_else(|e| unreachable!("a fixed status is valid: {e}"));
            trailers.extend(failed);
            http_body::Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }))
}

/// The service of a [`GrpcProbe`] layer.
#[derive(Clone, Debug)]
pub struct GrpcProbeService<S> {
    inner: S,
    probe: GrpcProbe,
}

impl<S> Service<Request<Body>> for GrpcProbeService<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if let Some(inspect) = &self.probe.inspect {
            inspect(&req);
        }
        let seen = &self.probe.seen;
        let n = seen.calls.fetch_add(1, Ordering::SeqCst);
        seen.headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(req.headers().clone());
        let failure = (n < self.probe.failures).then_some(self.probe.code);
        if let Some(code) = failure.filter(|_| !self.probe.in_trailers) {
            let status = tonic::Status::new(code, "injected");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let delay = self.probe.delay_first.filter(|_| n == 0);
        let future = self.inner.call(req);
        Box::pin(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let response = future.await?;
            Ok(match failure {
                Some(code) => response.map(|body| fail_trailers(body, code)),
                None => response,
            })
        })
    }
}
