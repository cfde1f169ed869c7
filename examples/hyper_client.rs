//! weir in front of a hyper client: a weir client stack (total deadline → HTTP retry → circuit
//! breaker → bulkhead → attempt timeout writing `x-timeout-ms`) around
//! `hyper_util::client::legacy::Client`, against a hyper server on 127.0.0.1 that answers 503
//! with `Retry-After: 1` to its first calls, then serves, then has an outage that opens the
//! breaker. Prints each call's outcome, its retries and the `x-timeout-ms` the server saw.
//!
//! The breaker opens for as long as the server's `Retry-After` asks (1 s here) instead of its own
//! 30 s, so the retry layer, which waits that same second, sends its next attempt as the
//! breaker's half-open probe.
//!
//! ```sh
//! cargo run --release --example hyper_client   # about 6 s, then exits
//! ```
//!
//! `tests/hyper_client.rs` runs the same stack with assertions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use weir::circuit_breaker::{CircuitBreakerLayer, Event as BreakerEvent};
use weir::retry::{Event, ReplayBody, RetryLayer};
use weir::timeout::TimeoutLayer;
use weir::{Backoff, BoxError, Error, HttpStatus, ServiceBuilderExt};

/// The breaker opens after this many failed attempts in a row.
const BREAKER_THRESHOLD: u32 = 4;

/// What the server does and what it saw.
#[derive(Debug, Default)]
struct Upstream {
    /// Calls answered so far.
    calls: AtomicUsize,
    /// Calls numbered below this are answered 503 (`usize::MAX`: an outage).
    fail_until: AtomicUsize,
    /// The `x-timeout-ms` of each call, in order, until taken.
    timeouts: Mutex<Vec<String>>,
}

impl Upstream {
    /// The `x-timeout-ms` values seen since the last call, emptied.
    fn take_timeouts(&self) -> Vec<String> {
        std::mem::take(&mut *self.timeouts.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A hyper server on 127.0.0.1 answering 503 + `Retry-After: 1` while `fail_until` says so,
/// 200 otherwise.
async fn server(upstream: Arc<Upstream>) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let upstream = Arc::clone(&upstream);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let n = upstream.calls.fetch_add(1, Ordering::SeqCst);
                let timeout = req
                    .headers()
                    .get("x-timeout-ms")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("(none)")
                    .to_owned();
                upstream
                    .timeouts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(timeout);
                let failing = n < upstream.fail_until.load(Ordering::SeqCst);
                async move {
                    if failing {
                        Response::builder()
                            .status(StatusCode::SERVICE_UNAVAILABLE)
                            .header(http::header::RETRY_AFTER, "1")
                            .body(Full::new(Bytes::from_static(b"try again later")))
                    } else {
                        Response::builder()
                            .status(StatusCode::OK)
                            .body(Full::new(Bytes::from_static(b"hello")))
                    }
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Prints the retry layer's events as they happen.
fn print_event(event: &Event<'_>) {
    match event {
        Event::Retry {
            attempt,
            delay,
            hinted,
            failure,
            ..
        } => {
            let source = if *hinted { "Retry-After" } else { "backoff" };
            println!(
                "    attempt {attempt} failed ({failure:?}); retrying in {delay:?} (from {source})"
            );
        }
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
    let upstream = Arc::new(Upstream::default());
    upstream.fail_until.store(2, Ordering::SeqCst);
    let addr = server(Arc::clone(&upstream)).await?;

    let transport = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let (retry, retries) = RetryLayer::http()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(50)))
        .observer(print_event)
        .build_with_handle()?;
    let (breaker, breaker_handle) = CircuitBreakerLayer::consecutive_failures(BREAKER_THRESHOLD)
        .classifier(HttpStatus::new())
        .open_duration(Duration::from_secs(30))
        .observer(print_breaker_event)
        .build_with_handle()?;
    let client = ServiceBuilder::new()
        .deadline(Duration::from_secs(5))
        .layer(retry)
        .layer(breaker)
        .bulkhead(4)
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_millis(500))
                .propagate(Duration::from_millis(10))
                .build()?,
        )
        .service(transport);

    println!("hyper server on http://{addr}/ (503 + Retry-After: 1 for the first 2 calls)");
    println!(
        "client: deadline 5s -> retry (HTTP, 3 attempts) -> breaker (opens after {BREAKER_THRESHOLD} \
         failures in a row) -> bulkhead 4 -> attempt timeout 500ms (writes x-timeout-ms, 10ms allowance) -> hyper\n"
    );

    for call in 1..=5 {
        if call == 3 {
            println!("-- outage: the server answers 503 to everything from now on --");
            upstream.fail_until.store(usize::MAX, Ordering::SeqCst);
        }
        let calls_before = upstream.calls.load(Ordering::SeqCst);
        let retries_before = retries.retries();
        println!("call {call}: GET /items");
        let started = Instant::now();
        let request = Request::get(format!("http://{addr}/items")).body(Full::default())?;
        let outcome = match client.clone().oneshot(request).await {
            Ok(response) => format!("HTTP {}", response.status()),
            Err(err) => match Error::find(&*err) {
                Some(weir) => format!("refused in the client: {weir}"),
                None => format!("error: {err}"),
            },
        };
        let elapsed = started.elapsed();
        println!(
            "  -> {outcome} in {} ms; server saw {} attempt(s), retries {}, x-timeout-ms {:?}, breaker {:?}",
            elapsed.as_millis(),
            upstream.calls.load(Ordering::SeqCst) - calls_before,
            retries.retries() - retries_before,
            upstream.take_timeouts(),
            breaker_handle.state(),
        );
    }

    println!(
        "\ndone: the server saw {} calls in all, the retry layer made {} retries and gave up {} time(s); \
         the breaker is {:?}",
        upstream.calls.load(Ordering::SeqCst),
        retries.retries(),
        retries.gave_up(),
        breaker_handle.state(),
    );
    Ok(())
}
