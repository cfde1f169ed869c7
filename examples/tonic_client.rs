//! weir in front of a tonic client, with the gRPC client preset: a `tonic-health`
//! `HealthClient` over a `tonic::transport::Channel` wrapped as it is by
//! `ClientStack::builder().grpc()` (total deadline → gRPC retry → circuit breaker → bulkhead →
//! attempt timeout writing `grpc-timeout` → tonic's body), against a tonic server on 127.0.0.1
//! whose tower layer answers its first calls with `UNAVAILABLE`, then serves, then has an
//! outage that opens the breaker. Prints every layer's events (the preset's observer), each
//! call's outcome, the attempts the server saw, the `grpc-timeout` each attempt carried and the
//! breaker's state (the preset's handles).
//!
//! ```sh
//! cargo run --release --example tonic_client   # about a second, then exits
//! ```
//!
//! Every error reaches tonic as a `tonic::Status` with its own code: the open breaker's refusal
//! is `UNAVAILABLE` with `grpc-retry-pushback-ms`, a refused connection `UNAVAILABLE`, a timeout
//! `DEADLINE_EXCEEDED`. gRPC calls are POSTs, so the preset retries them only when told they
//! are idempotent (`retry_non_idempotent()`, as a health check is). `tests/tonic_client.rs`
//! runs the same preset with assertions. No protoc needed: the health service's code ships with
//! `tonic-health`.

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
use tower::{Layer, Service};
use weir::{BoxError, ClientStack, core::Observer};

/// The breaker opens when this share of the calls in its window failed, in percent...
const FAILURE_RATE: f64 = 70.0;
/// ... once it has seen this many calls.
const MINIMUM_CALLS: u32 = 4;

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

/// Prints every event of the stack's layers (retries, give-ups, breaker transitions and
/// refusals, timeouts) as it happens.
#[derive(Clone, Copy, Debug)]
struct Print;

impl<Ev: weir::core::Event + ?Sized> Observer<Ev> for Print {
    fn on_event(&self, event: &Ev) {
        println!("    [{} {}] {event:?}", event.pattern(), event.kind());
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let script = Arc::new(Script::default());
    script.fail_until.store(2, Ordering::SeqCst);
    let addr = server(Arc::clone(&script)).await?;

    let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
    let stack = ClientStack::builder()
        .grpc()
        // Health/Check only reads: safe to send twice.
        .retry_non_idempotent()
        .total_timeout(Duration::from_secs(2))
        .attempt_timeout(Duration::from_millis(500))
        .sampling_window(Duration::from_secs(10))
        .max_retries(2)
        .failure_rate(FAILURE_RATE)
        .minimum_calls(MINIMUM_CALLS)
        .open_duration(Duration::from_secs(30))
        .observer(Print)
        .build()?;
    let mut client = HealthClient::new(stack.layer(channel));
    let retries = stack.retry_handle();
    let breaker = stack.breaker_handle();

    println!("tonic health server on http://{addr} (UNAVAILABLE for the first 2 calls)");
    println!(
        "client: ClientStack gRPC: deadline 2s -> retry (gRPC, 3 attempts) -> breaker (opens at \
         {FAILURE_RATE}% failures of at least {MINIMUM_CALLS} calls, for 30s) -> bulkhead -> attempt \
         timeout 500ms (writes grpc-timeout) -> tonic Channel\n"
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
            breaker.state(),
        );
    }

    println!(
        "\ndone: the server saw {} calls in all, the retry layer made {} retries and gave up {} time(s); \
         the breaker is {:?}",
        script.calls.load(Ordering::SeqCst),
        retries.retries(),
        retries.gave_up(),
        breaker.state(),
    );
    Ok(())
}
