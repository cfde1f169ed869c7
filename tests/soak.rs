//! #24's soak over real sockets on 127.0.0.1: many requests through `weir::ClientStack` (over a
//! hyper client) and `weir::ServerStack` (a keyed rate limit and the load shedder, over axum)
//! with a chaos layer innermost on the server (503s, added latency, bodies cut midway), another
//! innermost on the client (transport errors, around hyper) and callers giving up mid-call;
//! then every permit is back, no rate-limit key past its bound, every answer one of the
//! expected ones, and the heap where it started.
//!
//! 4 000 requests by default (a few seconds), the first 1 000 to warm up;
//! `WEIR_SOAK_REQUESTS=1000000 cargo test --release --test soak -- --nocapture` for the long run
//! (it prints its figures).
//!
//! The figures, on the shared 2-core machine (load average about 20 from other builds; the
//! test got 11 % of the CPU, so the wall times say little):
//!
//! - Short run (release, 2026-12-07): 4 000 requests, 3 000 measured in 2.1 s: 3 994 answered
//!   200, 6 callers gave up; chaos injected 313 faults on the server (79 503s, 40 bodies cut) and
//!   39 transport errors on the client, all retried by the client stack; heap 293 819 → 226 659
//!   bytes.
//! - Long run (`WEIR_SOAK_REQUESTS=1000000`, release, 2026-12-07): 1 000 000 requests, 999 000
//!   measured in 857.7 s (14 min 19 s wall, 60.3 s user and 38.9 s system CPU, 80.9 MB peak
//!   resident): 998 021 answered 200, 3 answered 503 (the client's retry budget spent), no 429,
//!   no 504, no refusal, no transport failure, no failed body, 1 976 callers gave up mid-call;
//!   chaos injected 82 191 faults on the server (20 777 503s, 10 200 bodies cut, the rest
//!   latency) and 10 417 transport errors on the client; afterwards every bulkhead and load-shed
//!   permit back (0 in flight), at most 8 rate-limit keys, and the heap 333 644 → 229 488 bytes
//!   (it ended 104 156 bytes below where the warm-up left it). Every cut body failed before
//!   hyper flushed the response head (the handler's four chunks are ready at once), so the
//!   client saw a failed connection and retried: the soak exercises the server's side of a body
//!   failure (the layer's cut, the connection's abort, the client's retry); the body's failure
//!   itself, frame by frame, is pinned in-process by `weir-chaos`'s `tests/http.rs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing;
use axum::serve::ListenerExt as _;
use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use weir::rate_limit::RateLimitLayer;
use weir::retry::ReplayBody;
use weir::{BoxError, ClientStack, ServerStack, core::key::Header};
use weir_chaos::{ChaosLayer, Fault, Latency};
use weir_test::http::ChannelBody;

/// The heap's live bytes, as the allocator below counts them.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting live bytes.
struct Counting;

// `unsafe_code` is "deny" (not "forbid") for this package only, so this one impl can be allowed:
// see the comment on `[lints.rust]` in the root Cargo.toml.
#[allow(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; every method only forwards to System"
)]
// SAFETY: every method forwards its arguments unchanged to `System`, so `System`'s guarantees are
// ours; counting touches one atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Callers at once.
const CALLERS: usize = 4;
/// Tenants the requests are spread over; the rate limit keeps at most [`MAX_KEYS`] of them.
const TENANTS: usize = 12;
const MAX_KEYS: usize = 8;

/// The handler's body: four chunks of 16 bytes, streamed (no length), so a cut shows.
fn streamed() -> Body {
    let (tx, body) = ChannelBody::channel(4);
    for _ in 0..4 {
        tx.try_send(Bytes::from_static(b"0123456789abcdef"))
            .expect("room for four chunks");
    }
    Body::new(body)
}

/// How each request ended.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    limited: AtomicU64,
    unavailable: AtomicU64,
    timed_out: AtomicU64,
    /// Any other status: must stay 0.
    unexpected: AtomicU64,
    /// A weir refusal on the client (open circuit, full bulkhead, timeout).
    refused: AtomicU64,
    /// The transport failed (the server cut a connection whose body failed).
    transport: AtomicU64,
    /// The response body failed midway.
    body_failed: AtomicU64,
    /// The caller gave up mid-call.
    cancelled: AtomicU64,
    /// A 200 whose body ended early without an error: must stay 0.
    short: AtomicU64,
}

impl Tally {
    fn total(&self) -> u64 {
        [
            &self.ok,
            &self.limited,
            &self.unavailable,
            &self.timed_out,
            &self.unexpected,
            &self.refused,
            &self.transport,
            &self.body_failed,
            &self.cancelled,
            &self.short,
        ]
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .sum()
    }
}

/// Sends requests `from..to` (shared counter `next`) through `client`, `CALLERS` at a time.
async fn drive<S>(
    client: &S,
    addr: SocketAddr,
    next: &Arc<AtomicUsize>,
    to: usize,
    tally: &Arc<Tally>,
) where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<hyper::body::Incoming>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<weir::BoxError> + Send,
    S::Future: Send,
{
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let client = client.clone();
        let next = Arc::clone(next);
        let tally = Arc::clone(tally);
        callers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= to {
                    break;
                }
                let req = Request::get(format!("http://{addr}/work"))
                    .header("x-tenant", format!("t{}", n % TENANTS))
                    .body(Empty::new())
                    .expect("valid request");
                let call = async {
                    let response = client.clone().oneshot(req).await.map_err(Into::into);
                    match response {
                        Ok(res) => {
                            let status = res.status();
                            match res.into_body().collect().await.map(|b| b.to_bytes().len()) {
                                Ok(len) if status == StatusCode::OK && len != 64 => {
                                    Err(&tally.short)
                                }
                                Ok(_) => Ok(status),
                                Err(_) => Err(&tally.body_failed),
                            }
                        }
                        Err(e) if weir::Error::find(&*e).is_some() => Err(&tally.refused),
                        Err(_) => Err(&tally.transport),
                    }
                };
                // One caller in 50 gives up after a millisecond: dropped mid-call.
                let outcome = if n % 50 == 7 {
                    match tokio::time::timeout(Duration::from_millis(1), call).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(&tally.cancelled),
                    }
                } else {
                    call.await
                };
                let counter = match outcome {
                    Ok(StatusCode::OK) => &tally.ok,
                    Ok(StatusCode::TOO_MANY_REQUESTS) => &tally.limited,
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => &tally.unavailable,
                    Ok(StatusCode::GATEWAY_TIMEOUT) => &tally.timed_out,
                    Ok(_) => &tally.unexpected,
                    Err(counter) => counter,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for caller in callers {
        caller.await.expect("a caller");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_chaos_returns_every_permit_and_all_its_memory() {
    let requests: usize = std::env::var("WEIR_SOAK_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000);
    let warmup = 1_000.min(requests / 2);

    // The server: a handler with a body, chaos innermost, the preset around it.
    let (chaos, chaos_handle) = ChaosLayer::http()
        .status(0.02, StatusCode::SERVICE_UNAVAILABLE)
        .latency(0.05, Latency::fixed(Duration::from_millis(2)))
        .failing_body(0.01, 20)
        .seed(24)
        .build_with_handle()
        .expect("valid chaos");
    let (limit, limit_handle) = RateLimitLayer::per_second(400)
        .key(Header::new(HeaderName::from_static("x-tenant")))
        .max_keys(MAX_KEYS)
        .http()
        .build_with_handle()
        .expect("valid limit");
    let server = ServerStack::builder()
        .rate_limit(limit)
        .max_in_flight(64)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid server stack");
    let shed = server.load_shed();
    let app = Router::new()
        .route("/work", routing::get(|| async { streamed() }))
        .route_layer(chaos)
        .layer(server);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The client: the preset over hyper, idle connections bounded.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let hyper = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CALLERS)
        .build::<_, ReplayBody<Empty<Bytes>>>(connector);
    let hyper = tower::util::MapErr::new(hyper, BoxError::from);
    // Chaos innermost on the client too: one call in a hundred fails as a reset connection
    // would, before it reaches hyper (the client stack retries it).
    let (transport_chaos, transport_handle) = ChaosLayer::builder()
        .error(0.01, || -> BoxError {
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "chaos").into()
        })
        .seed(42)
        .build_with_handle()
        .expect("valid chaos");
    let hyper = tower::Layer::layer(&transport_chaos, hyper);
    let stack = ClientStack::builder()
        .per_authority()
        .attempt_timeout(Duration::from_secs(1))
        .total_timeout(Duration::from_secs(3))
        .max_concurrent(2 * CALLERS)
        .seed(24)
        .build()
        .expect("valid client stack");
    let bulkhead = stack.bulkhead_handle().clone();
    let client = stack.wrap(hyper);

    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let quiet = || async {
        // Calls given up on finish on the server a little later: wait for every permit, within
        // a bound (this is not a timing assertion; the bound only stops a hang).
        let bound = Instant::now() + Duration::from_secs(30);
        while (shed.stats().in_flight > 0 || bulkhead.stats().in_flight > 0)
            && Instant::now() < bound
        {
            tokio::task::yield_now().await;
        }
    };

    drive(&client, addr, &next, warmup, &tally).await;
    quiet().await;
    // Each caller took one number past the warm-up's end to learn it was over.
    next.store(warmup, Ordering::Relaxed);
    let start_bytes = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    drive(&client, addr, &next, requests, &tally).await;
    quiet().await;
    let elapsed = started.elapsed();
    let end_bytes = LIVE.load(Ordering::Relaxed);

    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
    println!(
        "soak: {requests} requests ({warmup} to warm up, then {} in {elapsed:?}), in all: ok {}, 429 {}, 503 {}, 504 {}, refused {}, transport {}, body failed {}, cancelled {}; chaos injected on the server {} (503 {}, bodies cut {}), on the client {} transport errors; heap {start_bytes} -> {end_bytes} bytes",
        requests - warmup,
        load(&tally.ok),
        load(&tally.limited),
        load(&tally.unavailable),
        load(&tally.timed_out),
        load(&tally.refused),
        load(&tally.transport),
        load(&tally.body_failed),
        load(&tally.cancelled),
        chaos_handle.injected_total(),
        chaos_handle.injected(Fault::Status),
        chaos_handle.injected(Fault::Body),
        transport_handle.injected(Fault::Error),
    );

    assert_eq!(
        tally.total(),
        requests as u64,
        "every request accounted for"
    );
    assert_eq!(
        load(&tally.unexpected),
        0,
        "every status one of 200, 429, 503, 504"
    );
    assert!(load(&tally.ok) > requests as u64 / 2, "most succeed");
    assert_eq!(load(&tally.short), 0, "no 200 ends early without an error");
    // Cut bodies reach the client as a failed call when hyper had not flushed the head yet
    // (the client stack retries it) and as a failed body otherwise: counted on the server.
    assert!(chaos_handle.injected(Fault::Body) > 0, "bodies were cut");
    assert!(chaos_handle.injected(Fault::Status) > 0, "503s were sent");
    assert!(
        transport_handle.injected(Fault::Error) > 0,
        "transport errors were injected"
    );
    assert!(load(&tally.cancelled) > 0, "callers gave up");
    // Every permit back.
    let client_permits = bulkhead.stats();
    assert_eq!(client_permits.in_flight, 0, "{client_permits:?}");
    assert_eq!(client_permits.available, client_permits.max_concurrent);
    assert_eq!(shed.stats().in_flight, 0, "{:?}", shed.stats());
    // No key past its bound.
    assert!(
        limit_handle.keys() <= MAX_KEYS,
        "{} keys",
        limit_handle.keys()
    );
    // The heap back where it was (idle connections and the runtime's own buffers vary a little).
    let grown = end_bytes - start_bytes;
    assert!(
        grown < 256 * 1024,
        "the heap grew by {grown} bytes over {requests} requests"
    );
}
