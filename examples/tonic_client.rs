//! weir in front of a tonic client: a `tonic-health` `HealthClient` over a
//! `tonic::transport::Channel`, through a weir client stack (total deadline → gRPC retry →
//! circuit breaker → attempt timeout writing `grpc-timeout`), against a tonic server on
//! 127.0.0.1 whose tower layer answers its first calls with `UNAVAILABLE`, then serves, then has
//! an outage that opens the breaker. Prints each call's outcome, the attempts the server saw and
//! the `grpc-timeout` each attempt carried.
//!
//! ```sh
//! cargo run --release --example tonic_client   # about a second, then exits
//! ```
//!
//! `ErrorResponseLayer::new().grpc()` sits outermost so that a call the open breaker refuses
//! comes back as `UNAVAILABLE` with `grpc-retry-pushback-ms`, as a server's refusal would.
//! `tests/tonic_client.rs` runs the same stack with assertions. No protoc needed: the health
//! service's code ships with `tonic-health`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service, ServiceBuilder};
use weir::circuit_breaker::{CircuitBreakerLayer, Event as BreakerEvent};
use weir::retry::{Event, ReplayBody, RetryLayer};
use weir::timeout::TimeoutLayer;
use weir::{Backoff, BoxError, ErrorResponseLayer, GrpcStatus, ServiceBuilderExt};

/// The breaker opens after this many failed attempts in a row.
const BREAKER_THRESHOLD: u32 = 3;

/// What the server does and what it saw.
#[derive(Debug, Default)]
struct Script {
    /// Calls received so far.
    calls: AtomicUsize,
    /// Calls numbered below this are answered `UNAVAILABLE` (`usize::MAX`: an outage).
    fail_until: AtomicUsize,
    /// The `grpc-timeout` of each call, in order, until taken.
    timeouts: Mutex<Vec<String>>,
}

impl Script {
    /// The `grpc-timeout` values seen since the last call, emptied.
    fn take_timeouts(&self) -> Vec<String> {
        std::mem::take(&mut *self.timeouts.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A server-side tower service: records every call and its `grpc-timeout`, answers
/// `UNAVAILABLE` while the script says so and passes the call to the real service otherwise.
#[derive(Clone)]
struct Inject<S> {
    inner: S,
    script: Arc<Script>,
}

impl<S> Service<http::Request<Body>> for Inject<S>
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
        let n = self.script.calls.fetch_add(1, Ordering::SeqCst);
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        self.script
            .timeouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(timeout);
        if n < self.script.fail_until.load(Ordering::SeqCst) {
            let status = tonic::Status::unavailable("injected outage");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// Wraps the server's services in [`Inject`].
#[derive(Clone)]
struct InjectLayer {
    script: Arc<Script>,
}

impl<S> Layer<S> for InjectLayer {
    type Service = Inject<S>;

    fn layer(&self, inner: S) -> Inject<S> {
        Inject {
            inner,
            script: Arc::clone(&self.script),
        }
    }
}

/// A tonic server on 127.0.0.1 serving the health service behind [`InjectLayer`].
async fn server(script: Arc<Script>) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(async move {
        Server::builder()
            .layer(InjectLayer { script })
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    });
    Ok(addr)
}

/// Prints the retry layer's events as they happen.
fn print_event(event: &Event<'_>) {
    match event {
        Event::Retry {
            attempt,
            delay,
            failure,
            ..
        } => println!("    attempt {attempt} failed ({failure:?}); retrying in {delay:?}"),
        Event::GaveUp {
            attempts, reason, ..
        } => println!("    giving up after {attempts} attempt(s): {reason:?}"),
        _ => {}
    }
}

/// Prints the breaker's state changes as they happen.
fn print_breaker_event(event: &BreakerEvent<'_>) {
    if let BreakerEvent::StateChange {
        from, to, reason, ..
    } = event
    {
        println!("    breaker: {from:?} -> {to:?} ({reason:?})");
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let script = Arc::new(Script::default());
    script.fail_until.store(2, Ordering::SeqCst);
    let addr = server(Arc::clone(&script)).await?;

    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let (retry, retries) = RetryLayer::grpc()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(50)))
        .observer(print_event)
        .build_with_handle()?;
    let (breaker, breaker_handle) = CircuitBreakerLayer::consecutive_failures(BREAKER_THRESHOLD)
        .classifier(GrpcStatus::new())
        .open_duration(Duration::from_secs(30))
        .observer(print_breaker_event)
        .build_with_handle()?;
    let service = ServiceBuilder::new()
        // Outermost: weir's own refusals (an open circuit) reach tonic as gRPC statuses,
        // UNAVAILABLE with a pushback, instead of an opaque UNKNOWN.
        .layer(ErrorResponseLayer::new().grpc())
        .deadline(Duration::from_secs(2))
        .layer(retry)
        .layer(breaker)
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(500))
                .propagate(Duration::from_millis(10))
                .build()?,
        )
        .map_request(|req: http::Request<ReplayBody<Body>>| req.map(Body::new))
        .service(channel);
    let mut client = HealthClient::new(service);

    println!("tonic health server on http://{addr} (UNAVAILABLE for the first 2 calls)");
    println!(
        "client: deadline 2s -> retry (gRPC, 3 attempts, 50ms apart) -> breaker (opens after \
         {BREAKER_THRESHOLD} failures in a row, for 30s) -> attempt timeout 500ms (writes grpc-timeout, \
         10ms allowance) -> tonic Channel\n"
    );

    for call in 1..=4 {
        if call == 3 {
            println!("-- outage: the server answers UNAVAILABLE to everything from now on --");
            script.fail_until.store(usize::MAX, Ordering::SeqCst);
        }
        let calls_before = script.calls.load(Ordering::SeqCst);
        let retries_before = retries.retries();
        println!("call {call}: grpc.health.v1.Health/Check");
        let started = Instant::now();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let outcome = match client.check(request).await {
            Ok(response) => format!("OK, {:?}", response.into_inner().status()),
            Err(status) => match status.metadata().get("grpc-retry-pushback-ms") {
                Some(pushback) => format!(
                    "{:?}: {} (pushback {} ms)",
                    status.code(),
                    status.message(),
                    pushback.to_str().unwrap_or("?")
                ),
                None => format!("{:?}: {}", status.code(), status.message()),
            },
        };
        let elapsed = started.elapsed();
        println!(
            "  -> {outcome} in {} ms; server saw {} attempt(s), retries {}, grpc-timeout {:?}, breaker {:?}",
            elapsed.as_millis(),
            script.calls.load(Ordering::SeqCst) - calls_before,
            retries.retries() - retries_before,
            script.take_timeouts(),
            breaker_handle.state(),
        );
    }

    println!(
        "\ndone: the server saw {} calls in all, the retry layer made {} retries and gave up {} time(s); \
         the breaker is {:?}",
        script.calls.load(Ordering::SeqCst),
        retries.retries(),
        retries.gave_up(),
        breaker_handle.state(),
    );
    Ok(())
}
