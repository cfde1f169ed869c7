//! weir in front of a hyper client, with the HTTP client preset:
//! `ClientStack::builder().per_authority()` (total deadline → HTTP retry → one circuit breaker per
//! host → bulkhead → attempt timeout writing `x-timeout-ms`) around
//! `hyper_util::client::legacy::Client`, against a hyper server on 127.0.0.1 that answers 503
//! with `Retry-After: 1` to its first calls, then serves, then has an outage that opens the
//! breaker. Prints every layer's events (the preset's observer), each call's outcome, its
//! retries, the `x-timeout-ms` the server saw and the breaker's state (the preset's handles).
//!
//! A GET is retried; a POST without an `Idempotency-Key` would be sent once
//! (`retry_non_idempotent()` opts in).
//!
//! ```sh
//! cargo run --release --example hyper_client   # about 6 s, then exits
//! ```
//!
//! `tests/hyper_client.rs` runs the same preset with assertions.

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
use tower::ServiceExt;
use weir::circuit_breaker::{KeyedCircuitBreakerHandle, State};
use weir::retry::ReplayBody;
use weir::{BoxError, ClientStack, Error, core::Observer};

/// The breaker opens when this share of the calls in its window failed, in percent...
const FAILURE_RATE: f64 = 70.0;
/// ... once it has seen this many calls.
const MINIMUM_CALLS: u32 = 4;

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

/// Prints every event of the stack's layers (retries, give-ups, breaker transitions and
/// refusals, timeouts) as it happens.
#[derive(Clone, Copy, Debug)]
struct Print;

impl<Ev: weir::core::Event + ?Sized> Observer<Ev> for Print {
    fn on_event(&self, event: &Ev) {
        println!("    [{} {}] {event:?}", event.pattern(), event.kind());
    }
}

/// The state of each host's breaker.
fn breakers(handle: &KeyedCircuitBreakerHandle) -> Vec<State> {
    let mut states = Vec::new();
    handle.for_each(|_, snapshot| states.push(snapshot.state()));
    states
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream = Arc::new(Upstream::default());
    upstream.fail_until.store(2, Ordering::SeqCst);
    let addr = server(Arc::clone(&upstream)).await?;

    let stack = ClientStack::builder()
        .per_authority()
        .total_timeout(Duration::from_secs(5))
        .attempt_timeout(Duration::from_millis(500))
        .sampling_window(Duration::from_secs(10))
        .max_retries(2)
        .failure_rate(FAILURE_RATE)
        .minimum_calls(MINIMUM_CALLS)
        .open_duration(Duration::from_secs(30))
        .max_concurrent(4)
        .observer(Print)
        .build()?;
    // The transport takes the bodies retry keeps for replay: `ReplayBody<Full<Bytes>>`.
    let client =
        stack.wrap(Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>());
    let retries = stack.retry_handle();

    println!("hyper server on http://{addr}/ (503 + Retry-After: 1 for the first 2 calls)");
    println!(
        "client: ClientStack per authority: deadline 5s -> retry (HTTP, 3 attempts) -> breaker per \
         host (opens at {FAILURE_RATE}% failures of at least {MINIMUM_CALLS} calls) -> bulkhead 4 -> \
         attempt timeout 500ms (writes x-timeout-ms) -> hyper\n"
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
            breakers(stack.breaker_handle()),
        );
    }

    println!(
        "\ndone: the server saw {} calls in all, the retry layer made {} retries and gave up {} time(s); \
         the breakers are {:?}",
        upstream.calls.load(Ordering::SeqCst),
        retries.retries(),
        retries.gave_up(),
        breakers(stack.breaker_handle()),
    );
    Ok(())
}
