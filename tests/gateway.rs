//! End to end over real sockets on 127.0.0.1: the gateway example's own stacks (axum edge, weir
//! client stack over hyper, axum upstream), built by the example's functions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use weir::circuit_breaker::State;
use weir::core::degrade::LoadLevel;

#[allow(dead_code)] // the example's `main`, self-drive and report are not used here
#[path = "../examples/gateway.rs"]
mod gateway;

use gateway::{BASIC_KEY, Config, FREE_KEY, Gateway, PREMIUM_KEY, Upstream};

type TestClient = Client<HttpConnector, Empty<Bytes>>;

/// An answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

/// A GET of `/api/items` with `x-api-key: key` (none when `key` is empty) and `headers`.
async fn get(client: &TestClient, addr: SocketAddr, key: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(format!("http://{addr}/api/items"));
    if !key.is_empty() {
        req = req.header("x-api-key", key);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = client
        .request(req.body(Empty::new()).expect("valid request"))
        .await
        .expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn setup(config: &Config) -> (Gateway, Arc<Upstream>, TestClient) {
    let upstream = Upstream::new();
    let (upstream_addr, _server) = gateway::start_upstream(Arc::clone(&upstream))
        .await
        .expect("upstream starts");
    let gateway = gateway::start(config, 0, upstream_addr)
        .await
        .expect("gateway starts");
    let client = Client::builder(TokioExecutor::new()).build_http();
    (gateway, upstream, client)
}

/// Moves tokio's clock, which the breaker measures its open time on, forward by `by` at once:
/// no wall-clock wait. The clock is paused only for the jump: `advance` yields once, and a yield
/// parks the runtime without letting paused time auto-advance, so no timer of a request in
/// flight on the real sockets fires early (a test paused throughout would auto-advance to the
/// next timer whenever it waits on a socket, and time out the attempts). Current-thread
/// runtimes only (`#[tokio::test]`).
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

fn breaker_state(gateway: &Gateway) -> Option<State> {
    let mut state = None;
    gateway
        .breakers
        .for_each(|_key, snapshot| state = Some(snapshot.state()));
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_stack_answers_only_expected_statuses() {
    let mut config = Config::demo();
    // Each tier's daily quota is its burst, so the limiter admits exactly the burst however
    // long the load takes on a slow machine: a per-second quota refills while the requests
    // trickle in (5 and 10 units a second), a daily one of 5 or 10 does not (a unit every
    // 2.4 hours at the most).
    config.free.per_day = config.free.per_second;
    config.basic.per_day = config.basic.per_second;
    config.max_in_flight = 8;
    let (gateway, upstream, client) = setup(&config).await;
    upstream.error_every.store(4, Ordering::Relaxed);
    // Each admitted request holds its place for 100 ms, so the burst is shed beyond 8.
    upstream.spike_ms.store(100, Ordering::Relaxed);
    upstream.spike.store(true, Ordering::Relaxed);

    // 60 requests per tier at once: free (5/s) and basic (10/s) are mostly refused, premium
    // (100/s) mostly admitted, and 8 in flight at most, so some are shed.
    let mut calls = Vec::new();
    for key in [FREE_KEY, BASIC_KEY, PREMIUM_KEY] {
        for _ in 0..60 {
            let client = client.clone();
            let addr = gateway.addr;
            calls.push(tokio::spawn(async move {
                (key, get(&client, addr, key, &[]).await)
            }));
        }
    }
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    let mut refused_by_key = std::collections::BTreeMap::<&str, u64>::new();
    for call in calls {
        let (key, answer) = call.await.expect("no panic");
        *by_status.entry(answer.status.as_u16()).or_default() += 1;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            *refused_by_key.entry(key).or_default() += 1;
        }
        if key == PREMIUM_KEY {
            // 100/s: never rate limited here, admitted or shed.
            assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        }
        assert!(
            [200, 429, 503, 504].contains(&answer.status.as_u16()),
            "unexpected status {} ({})",
            answer.status,
            answer.body
        );
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = answer.headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("whole seconds");
            assert!(retry_after >= 1, "Retry-After is never 0");
            assert!(answer.headers.contains_key("ratelimit"));
            assert!(answer.headers.contains_key("ratelimit-policy"));
            assert_eq!(answer.body, "rate limited");
        }
    }
    // The limiter is the outermost layer, so it judges every request: free admits its burst of
    // 5 of 60, basic 10 of 60, and refuses the rest; what it admitted was answered, shed, or
    // failed upstream.
    assert_eq!(refused_by_key.get(FREE_KEY), Some(&55), "{by_status:?}");
    assert_eq!(refused_by_key.get(BASIC_KEY), Some(&50), "{by_status:?}");
    assert_eq!(by_status[&429], 105, "{by_status:?}");
    assert!(by_status.contains_key(&200), "{by_status:?}");
    assert!(by_status.contains_key(&503), "{by_status:?}");
    // Each 429 is a refusal the limiter's observer saw, reported by the quota that refused it:
    // the per-second one while it is empty, the daily one once the per-second one has refilled.
    let rate_limited = gateway.stats.rate_limited.lock().unwrap().clone();
    let refused_in = |tier: &str| -> u64 {
        rate_limited
            .iter()
            .filter(|((t, _), _)| t == tier)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(refused_in("default"), 55, "{rate_limited:?}");
    assert_eq!(refused_in("basic"), 50, "{rate_limited:?}");
    assert!(
        rate_limited
            .keys()
            .all(|(_, policy)| policy == "per-second" || policy == "daily"),
        "{rate_limited:?}"
    );
    assert!(!rate_limited.keys().any(|(tier, _)| tier == "premium"));
}

#[tokio::test]
async fn an_outage_opens_the_breaker_which_answers_without_the_upstream_then_recovers() {
    let mut config = Config::demo();
    config.open_duration = Duration::from_millis(600);
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;

    let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(breaker_state(&gateway), Some(State::Closed));

    // The outage: every attempt fails until the breaker (50 % of at least 10 calls) opens.
    upstream.set_outage(true);
    let mut opened_after = None;
    for request in 1..=20 {
        let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        if answer.body == "circuit open" {
            opened_after = Some(request);
            break;
        }
    }
    let opened_after = opened_after.expect("the breaker opens during the outage");
    assert!(opened_after <= 6, "opened after {opened_after} requests");
    assert_eq!(breaker_state(&gateway), Some(State::Open));

    // While open: 503s with Retry-After, and the upstream sees nothing.
    let hits = upstream.hits();
    for _ in 0..10 {
        let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.body, "circuit open");
        assert!(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(upstream.hits(), hits, "no request reached the upstream");

    // After the outage and the open time, probes go through and the breaker closes.
    upstream.set_outage(false);
    skip(config.open_duration + Duration::from_millis(50)).await;
    for _ in 0..5 {
        let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    assert_eq!(breaker_state(&gateway), Some(State::Closed));
    assert!(upstream.hits() > hits);
    let transitions: Vec<(State, State)> = gateway
        .stats
        .transitions()
        .into_iter()
        .map(|(_, from, to)| (from, to))
        .collect();
    assert_eq!(
        transitions,
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[tokio::test]
async fn a_client_deadline_propagates_through_two_hops() {
    let config = Config::demo();
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;
    let seen = || *upstream.last_timeout_ms.lock().unwrap();

    // client -> gateway: 200 ms (less than the 300 ms attempt timeout); gateway -> upstream:
    // what is left of it, less the allowance.
    let answer = get(&client, addr, PREMIUM_KEY, &[("x-timeout-ms", "200")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let budget = seen().expect("the upstream got x-timeout-ms");
    assert!((150..200).contains(&budget), "the upstream saw {budget} ms");

    // A long client deadline is capped by the edge (2 s), the total deadline and the attempt
    // timeout (300 ms).
    let answer = get(&client, addr, PREMIUM_KEY, &[("x-timeout-ms", "60000")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let budget = seen().expect("the upstream got x-timeout-ms");
    let attempt = u64::try_from(config.attempt_timeout.as_millis()).unwrap();
    assert!(budget < attempt, "the upstream saw {budget} ms");

    // A deadline shorter than the upstream's latency: a 504, in about that deadline.
    upstream.spike_ms.store(5_000, Ordering::SeqCst);
    upstream.spike.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let answer = get(&client, addr, PREMIUM_KEY, &[("x-timeout-ms", "80")]).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    // The client's own deadline ran out, not a timeout of the gateway's.
    assert_eq!(answer.body, "deadline exceeded");
    // Loose (real sockets on a shared machine), but well short of the upstream's 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not the upstream's 5 s"
    );
    assert!(seen().is_some_and(|ms| ms < 80));
}

/// #16.1: hostile clients sending `x-timeout-ms: 1`, each request with a fresh API key, beside a
/// well-behaved premium client on the same upstream: every hostile request times out on its own
/// deadline (504), none counts against the upstream, so the breaker never opens and the premium
/// client keeps getting 200. Before #16.1, seven such requests opened the shared breaker and
/// the premium client got 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_client_deadlines_never_open_the_breaker_for_others() {
    let mut config = Config::demo();
    // Unknown keys are the free tier, one bucket per address: wide enough here that every
    // hostile request reaches the client stack, and no request is shed.
    config.free.per_second = 100_000;
    config.free.per_day = 1_000_000;
    config.max_in_flight = 1_000;
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;
    // Every upstream answer takes 20 ms, so a 1 ms deadline always runs out (before sending,
    // or during the attempt).
    upstream.spike_ms.store(20, Ordering::SeqCst);
    upstream.spike.store(true, Ordering::SeqCst);

    let hostile = (0..4)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..20 {
                    let key = format!("fresh-key-{task}-{i}");
                    let answer = get(&client, addr, &key, &[("x-timeout-ms", "1")]).await;
                    statuses.push((answer.status, answer.body));
                }
                statuses
            })
        })
        .collect::<Vec<_>>();
    for _ in 0..20 {
        let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    for task in hostile {
        for (status, body) in task.await.expect("no panic") {
            assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
            assert_eq!(body, "deadline exceeded");
        }
    }
    // And after the 80 hostile requests, still served.
    let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    assert_eq!(breaker_state(&gateway), Some(State::Closed));
    let mut failures = 0;
    gateway
        .breakers
        .for_each(|_key, snapshot| failures += snapshot.failures());
    assert_eq!(
        failures, 0,
        "no caller's deadline counted against the upstream"
    );
    assert_eq!(gateway.stats.circuit_rejected.load(Ordering::SeqCst), 0);
    assert!(gateway.stats.transitions().is_empty());
}

/// #16 (gateway): 2 000 connections that never finish their headers (slowloris) are all closed
/// within a few header timeouts, the ones over the connection cap at once; the gateway then
/// serves a well-behaved client. With `axum::serve` they stayed open for 45 s and more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut config = Config::demo();
    config.header_read_timeout = Duration::from_millis(500);
    config.max_connections = 64;
    let (gateway, _upstream, client) = setup(&config).await;
    let addr = gateway.addr;

    let mut sockets = Vec::new();
    for _ in 0..2_000 {
        let mut socket = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the listener accepts");
        // A request line and one header, never the blank line that ends the headers. A socket
        // the gateway closed already may refuse the write: that is the point.
        let _ = socket
            .write_all(b"GET /api/items HTTP/1.1\r\nhost: gateway\r\nx-slow: ")
            .await;
        sockets.push(socket);
    }
    let started = tokio::time::Instant::now();
    let mut closing = Vec::new();
    for mut socket in sockets {
        closing.push(tokio::spawn(async move {
            let mut buf = [0_u8; 1024];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a 408 or similar before the close is fine
                }
            }
        }));
    }
    // Generous (real sockets on a shared machine): 40 header timeouts.
    let bound = Duration::from_secs(20);
    for task in closing {
        let left = bound.saturating_sub(started.elapsed());
        tokio::time::timeout(left, task)
            .await
            .expect("every unfinished connection is closed by the gateway")
            .expect("no panic");
    }

    let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// #16 (gateway): requests without a known API key are limited per client address (through
/// `PeerIp`'s trusted-proxy rules), not in one bucket every key-less client shares; inventing
/// keys buys no new bucket, and a client that connects directly cannot choose its address with
/// `X-Forwarded-For`.
#[tokio::test]
async fn requests_without_a_key_are_limited_by_client_address() {
    let mut config = Config::demo();
    // The test client plays the load balancer.
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let (gateway, _upstream, client) = setup(&config).await;
    let addr = gateway.addr;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let burst = config.free.per_second;

    for _ in 0..burst {
        let answer = get(&client, addr, "", &from("203.0.113.1")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let answer = get(&client, addr, "", &from("203.0.113.1")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // Invented keys are no key: still that address's bucket.
    let answer = get(&client, addr, "invented-1", &from("203.0.113.1")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // Another client has its own bucket.
    let answer = get(&client, addr, "", &from("203.0.113.2")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // Without trusted proxies the header is ignored: the peer (127.0.0.1) is the key.
    let config = Config::demo();
    let (gateway, _upstream, client) = setup(&config).await;
    let addr = gateway.addr;
    for n in 0..burst {
        let ip = format!("198.51.100.{n}");
        let answer = get(&client, addr, "", &[("x-forwarded-for", &ip)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let answer = get(&client, addr, "", &from("198.51.100.200")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
}

/// #16 (gateway): the proxy forwards the client's method, headers (without the hop-by-hop ones,
/// with the client's address appended to `X-Forwarded-For`) and body; a body over the limit is a
/// 413 that never reaches the upstream.
#[tokio::test]
async fn the_proxy_forwards_headers_and_body() {
    let mut config = Config::demo();
    config.max_body_bytes = 64;
    let (gateway, upstream, _client) = setup(&config).await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let post = |body: String| {
        Request::post(format!("http://{}/api/orders?pay=later", gateway.addr))
            .header("x-api-key", PREMIUM_KEY)
            .header("content-type", "application/json")
            .header("x-custom", "42")
            .header("connection", "x-hop")
            .header("x-hop", "for the gateway only")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(body)))
            .expect("valid request")
    };

    let response = client
        .request(post(r#"{"item":"tea","qty":3}"#.to_owned()))
        .await
        .expect("the gateway answers");
    // The upstream's order handler (behind weir-idempotency) takes it.
    assert_eq!(response.status(), StatusCode::CREATED);
    let (method, headers, body) = upstream
        .last_request
        .lock()
        .unwrap()
        .take()
        .expect("the upstream got the request");
    assert_eq!(method, http::Method::POST);
    assert_eq!(body, r#"{"item":"tea","qty":3}"#);
    assert_eq!(headers["x-custom"], "42");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-api-key"], PREMIUM_KEY);
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    for hop in ["x-hop", "te"] {
        assert!(!headers.contains_key(hop), "{hop} was forwarded");
    }
    assert_ne!(
        headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"x-hop"[..])
    );

    let hits = upstream.hits();
    let response = client
        .request(post("x".repeat(65)))
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        upstream.hits(),
        hits,
        "a refused body never reaches the upstream"
    );
}

/// An order (`POST /api/orders`) and its answer, through the gateway.
async fn order(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    key: Option<&str>,
) -> Answer {
    let mut req = Request::post(format!("http://{addr}/api/orders"))
        .header("x-api-key", PREMIUM_KEY)
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let response = client
        .request(
            req.body(Full::new(Bytes::from_static(br#"{"item":"tea"}"#)))
                .unwrap(),
        )
        .await
        .expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// #23 (gateway): a `POST` is safe to retry end to end. The client stack gives an order without
/// an `Idempotency-Key` one before its retry layer; the upstream takes the order, keeps the
/// answer, and the answer is lost on the way back (a 503 after the handler ran). The retry sends
/// the same key, the upstream answers from its store, and the order was taken once. A client's
/// own key is kept: its repeat gets the stored answer, marked `Idempotent-Replayed: true`.
#[tokio::test]
async fn a_retried_order_is_taken_once_and_a_repeat_is_replayed() {
    let (gateway, upstream, _client) = setup(&Config::demo()).await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();

    upstream.lose_order_answers.store(1, Ordering::SeqCst);
    let first = order(&client, gateway.addr, None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body, "{\"order\":1,\"bytes\":14}\n");
    assert_eq!(
        upstream.lose_order_answers.load(Ordering::SeqCst),
        0,
        "the first attempt's answer was lost"
    );
    assert_eq!(upstream.orders.load(Ordering::SeqCst), 1, "taken once");
    assert_eq!(
        gateway.stats.retries.load(Ordering::SeqCst),
        1,
        "retried once"
    );
    assert_eq!(
        first.headers["idempotent-replayed"], "true",
        "the retry was answered from the store"
    );
    let (_, headers, _) = upstream.last_request.lock().unwrap().take().unwrap();
    assert!(
        headers["idempotency-key"]
            .to_str()
            .unwrap()
            .starts_with("gateway-"),
        "the client stack gave the POST a key"
    );

    // Another order without a key is another order.
    let second = order(&client, gateway.addr, None).await;
    assert_eq!(second.body, "{\"order\":2,\"bytes\":14}\n");
    assert!(!second.headers.contains_key("idempotent-replayed"));

    // A client's own key goes through unchanged; its repeat is the stored answer.
    let mine = order(&client, gateway.addr, Some("order-from-a-client")).await;
    let again = order(&client, gateway.addr, Some("order-from-a-client")).await;
    assert_eq!(mine.status, StatusCode::CREATED);
    assert!(!mine.headers.contains_key("idempotent-replayed"));
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, mine.body);
    assert_eq!(upstream.orders.load(Ordering::SeqCst), 3);
}

/// #16 (gateway): the gateway's log subscriber shows breaker transitions as they happen, by
/// default (no `RUST_LOG`), and `RUST_LOG` chooses what is logged.
#[tokio::test]
async fn breaker_transitions_are_logged() {
    use tracing_subscriber::filter::LevelFilter;

    let default = gateway::log_filter(None);
    assert!(default.would_enable("gateway", &tracing::Level::INFO));
    assert!(default.would_enable("weir_redis", &tracing::Level::INFO));
    assert!(!default.would_enable("hyper", &tracing::Level::INFO));
    let chosen = gateway::log_filter(Some("weir=debug,error"));
    assert!(chosen.would_enable("weir", &tracing::Level::DEBUG));
    assert!(!chosen.would_enable("gateway", &tracing::Level::INFO));
    assert_eq!(
        gateway::log_filter(Some("=^not a filter")).default_level(),
        Some(LevelFilter::WARN)
    );

    let logs = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = Arc::clone(&logs);
        move || LogWriter(Arc::clone(&logs))
    };
    // The global subscriber, as `main` installs it (a scoped one misses events when other tests
    // of this binary register the same callsites first, on other threads, without one). Other
    // tests' logs may land in the buffer too; this one only looks for its own breaker.
    tracing::subscriber::set_global_default(gateway::log_subscriber(None, writer))
        .expect("the only test here that installs a subscriber");
    let (gateway, upstream, client) = setup(&Config::demo()).await;
    upstream.set_outage(true);
    for _ in 0..20 {
        if get(&client, gateway.addr, PREMIUM_KEY, &[]).await.body == "circuit open" {
            break;
        }
    }
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    let logs = String::from_utf8(logs.lock().unwrap().clone()).expect("UTF-8");
    let upstream = gateway.upstream.to_string();
    assert!(
        logs.lines().any(|line| line.contains("WARN")
            && line.contains("circuit breaker opened")
            && line.contains(&upstream)),
        "no line says the breaker of {upstream} opened:\n{logs}"
    );
}

/// Appends what the subscriber writes to a shared buffer.
struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// #15.16 (gateway): with Redis unreachable, each gateway instance limits locally with its share
/// of every quota (`1 / instances`), so a fleet of two stays within the limit instead of
/// doubling it. (Port 1 on loopback refuses at once: the store falls back from the first call.)
#[tokio::test]
async fn without_redis_an_instance_keeps_its_share_of_the_limit() {
    let mut config = Config::demo();
    config.redis_url = Some("redis://127.0.0.1:1".to_owned());
    config.instances = 2;
    let (gateway, _upstream, client) = setup(&config).await;
    let mut admitted = 0;
    for _ in 0..config.basic.per_second {
        let answer = get(&client, gateway.addr, BASIC_KEY, &[]).await;
        assert!(
            [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(&answer.status),
            "{} {}",
            answer.status,
            answer.body
        );
        admitted += u32::from(answer.status == StatusCode::OK);
    }
    // Half the burst of 10, give or take what refills while the requests run (5/s).
    let share = config.basic.per_second / 2;
    assert!(
        (share - 1..=share + 2).contains(&admitted),
        "admitted {admitted} of a burst of {} shared by two instances",
        config.basic.per_second
    );
}

/// A GET of `path` (a health probe): status and body.
async fn probe(client: &TestClient, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let response = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .expect("valid request"),
        )
        .await
        .expect("the gateway answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// #22: the gateway serves `/livez`, `/readyz` and `/startupz` from its own layers' state:
/// readiness turns 503 while the upstream's breaker is open and back to 200 after, liveness
/// stays 200 throughout, and the probes answer a client the edge's rate limit refuses.
#[tokio::test]
async fn readiness_follows_the_upstream_breaker() {
    let mut config = Config::demo();
    config.open_duration = Duration::from_millis(600);
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;

    for path in ["/livez", "/readyz", "/startupz"] {
        assert_eq!(
            probe(&client, addr, path).await,
            (StatusCode::OK, r#"{"status":"pass"}"#.to_owned()),
            "{path}"
        );
    }
    let (status, body) = probe(&client, addr, "/readyz?verbose").await;
    assert_eq!(status, StatusCode::OK);
    for check in ["lifecycle", "upstream", "upstream-bulkhead", "edge-load"] {
        assert!(body.contains(&format!("\"{check}\"")), "{check} in {body}");
    }

    // The outage opens the breaker: readiness fails (the gateway cannot serve its API), liveness
    // passes (restarting it would not help).
    upstream.set_outage(true);
    for _ in 0..20 {
        if get(&client, addr, PREMIUM_KEY, &[]).await.body == "circuit open" {
            break;
        }
    }
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    let (status, body) = probe(&client, addr, "/readyz?verbose").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("circuit open"), "{body}");
    assert_eq!(probe(&client, addr, "/livez").await.0, StatusCode::OK);

    // A client the rate limit refuses still gets the probes: they sit beside the edge stack.
    while get(&client, addr, FREE_KEY, &[]).await.status != StatusCode::TOO_MANY_REQUESTS {}
    assert_eq!(probe(&client, addr, "/livez").await.0, StatusCode::OK);

    // The upstream recovers; once the open time is over readiness passes again (degraded while
    // the breaker may probe), and after a few good calls the breaker is closed and it is a pass.
    upstream.set_outage(false);
    skip(config.open_duration + Duration::from_millis(50)).await;
    assert_eq!(probe(&client, addr, "/readyz").await.0, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(
            get(&client, addr, PREMIUM_KEY, &[]).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(breaker_state(&gateway), Some(State::Closed));
    assert_eq!(
        probe(&client, addr, "/readyz").await,
        (StatusCode::OK, r#"{"status":"pass"}"#.to_owned())
    );

    // Draining (Ctrl-C / SIGTERM): readiness fails first, liveness still passes.
    gateway.health.lifecycle().draining();
    assert_eq!(
        probe(&client, addr, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(probe(&client, addr, "/livez").await.0, StatusCode::OK);
}

/// A GET of `path` with `x-api-key: key`.
async fn get_path(client: &TestClient, addr: SocketAddr, path: &str, key: &str) -> Answer {
    let response = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .header("x-api-key", key)
                .body(Empty::new())
                .expect("valid request"),
        )
        .await
        .expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// #20: `/api/recommendations` degrades rather than fails: while the upstream is down (its 503s,
/// then the open circuit) it answers the static bestsellers with `weir-fallback: value`, and the
/// upstream's own answer again once it is back; a client over its quota still gets its 429.
#[tokio::test]
async fn recommendations_fall_back_while_the_upstream_is_down() {
    const PATH: &str = "/api/recommendations";
    let mut config = Config::demo();
    config.open_duration = Duration::from_millis(600);
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;

    let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.body.starts_with(r#"{"items":[1,2,3]"#),
        "{}",
        answer.body
    );
    assert!(!answer.headers.contains_key("weir-fallback"));

    upstream.set_outage(true);
    for _ in 0..12 {
        let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.headers["weir-fallback"], "value");
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.body, "{\"items\":[\"bestsellers\"]}\n");
    }
    // The breaker outside the fallback's view still saw the failures: it opened, and the
    // fallback kept answering without the upstream.
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    let stats = gateway.fallbacks.stats();
    assert_eq!((stats.value, stats.service, stats.last_good), (12, 0, 0));
    let hits = upstream.hits();
    let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
    assert_eq!(answer.headers["weir-fallback"], "value");
    assert_eq!(
        upstream.hits(),
        hits,
        "the open circuit spared the upstream"
    );

    // The rate limit sits outside the fallback: a client over its quota gets a 429, unmarked.
    let mut refused = None;
    for _ in 0..20 {
        let answer = get_path(&client, addr, PATH, FREE_KEY).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.headers["weir-fallback"], "value");
    }
    let refused = refused.expect("the free tier runs out");
    assert!(!refused.headers.contains_key("weir-fallback"));

    // The upstream is back: after the open time, its own answer again.
    upstream.set_outage(false);
    skip(config.open_duration + Duration::from_millis(50)).await;
    let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.body.starts_with(r#"{"items":[1,2,3]"#),
        "{}",
        answer.body
    );
    assert!(!answer.headers.contains_key("weir-fallback"));
}

/// #20: `/api/recommendations` degrades first while the edge's load level is critical: with 14
/// requests held in flight at the upstream (15 of the shedder's 16 with this one), the static
/// bestsellers answer with `weir-fallback: value` and the upstream is not called (its hit count
/// does not move, its breaker stays closed); once the held requests are answered, the upstream's
/// own answer again. The held requests wait on the upstream's `release`, not on a timer, and the
/// timeouts are long enough never to cut them.
#[tokio::test]
async fn recommendations_degrade_first_while_the_load_level_is_critical() {
    const PATH: &str = "/api/recommendations";
    const HELD: u64 = 14;
    let mut config = Config::demo();
    config.edge_timeout = Duration::from_secs(600);
    config.total_timeout = Duration::from_secs(600);
    config.attempt_timeout = Duration::from_secs(300);
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;
    assert_eq!(config.max_in_flight, 16);

    let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
    assert!(
        answer.body.starts_with(r#"{"items":[1,2,3]"#),
        "{}",
        answer.body
    );
    assert!(!answer.headers.contains_key("weir-fallback"));

    let held: Vec<_> = (0..HELD)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get_path(&client, addr, "/api/held", PREMIUM_KEY).await })
        })
        .collect();
    let mut arrived = upstream.held.subscribe();
    arrived
        .wait_for(|n| *n == HELD)
        .await
        .expect("the upstream lives");
    let shed = gateway.shedder.stats();
    assert_eq!(shed.in_flight, 14, "{shed:?}");
    // 14 of 16: elevated; the next request admitted makes it 15 of 16, critical (0.9).
    assert_eq!(gateway.shedder.load_level(), LoadLevel::Elevated);

    let hits = upstream.hits();
    for _ in 0..3 {
        let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.headers["weir-fallback"], "value");
        assert_eq!(answer.body, "{\"items\":[\"bestsellers\"]}\n");
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "degraded before the upstream was called"
    );
    let stats = gateway.fallbacks.stats();
    assert_eq!((stats.value, stats.switched), (3, 3), "{stats:?}");
    assert_eq!(breaker_state(&gateway), Some(State::Closed));

    upstream.release.send_replace(true);
    for request in held {
        let answer = request.await.expect("the held request's task");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, "{\"held\":true}\n");
    }
    let answer = get_path(&client, addr, PATH, PREMIUM_KEY).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.body.starts_with(r#"{"items":[1,2,3]"#),
        "{}",
        answer.body
    );
    assert!(!answer.headers.contains_key("weir-fallback"));
    assert_eq!(upstream.hits(), hits + 1);
    assert_eq!(gateway.fallbacks.stats().switched, 3);
}

/// The gateway's configuration file with `premium_per_second` for the premium tier.
fn gateway_file(premium_per_second: u32) -> String {
    format!(
        "[free]\nper_second = 5\nper_day = 10000\n\n[basic]\nper_second = 10\nper_day = 5000\n\n\
         [premium]\nper_second = {premium_per_second}\nper_day = 100000\n"
    )
}

/// #25: the gateway started from a file, with `weir::watch` on it, while premium traffic runs:
/// the file edited (premium 100/s to 250/s), the watcher applies it and the next responses'
/// `RateLimit-Policy` advertises the new quota; every response advertises the old quota or the
/// new one, whole. Then a broken file (a zero quota) keeps 250/s, counted and reported with its
/// field. The watcher's poll is an hour: each look is triggered by `Watcher::check` (no sleep).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reloads_its_config_file_while_traffic_runs() {
    let dir = std::env::temp_dir().join(format!("weir-gateway-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, gateway_file(100)).expect("write the file");
    let file = gateway::GatewayFile::parse(&std::fs::read_to_string(&path).expect("read"))
        .expect("parses");
    let config = Config::demo().with_file(&file).expect("valid file");
    let (gateway, _upstream, client) = setup(&config).await;
    let watcher = weir::watch(
        path.clone(),
        gateway.limits.clone(),
        Duration::from_secs(3_600),
        gateway::GatewayFile::parse,
    );
    let policy = |answer: &Answer| {
        answer.headers["ratelimit-policy"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let old = r#""per-second";q=100;w=1"#;
    let new = r#""per-second";q=250;w=1"#;
    let first = get(&client, gateway.addr, PREMIUM_KEY, &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(policy(&first).contains(old), "{}", policy(&first));

    // Premium traffic runs while the file is edited and reloaded.
    let traffic = {
        let (client, addr) = (client.clone(), gateway.addr);
        tokio::spawn(async move {
            let mut policies = Vec::new();
            for _ in 0..40 {
                let answer = get(&client, addr, PREMIUM_KEY, &[]).await;
                assert!(
                    [200, 429].contains(&answer.status.as_u16()),
                    "unexpected status {}",
                    answer.status
                );
                policies.push(policy(&answer));
            }
            policies
        })
    };
    std::fs::write(&path, gateway_file(250)).expect("edit the file");
    assert_eq!(watcher.check().await, 1, "the edited file is applied");
    for seen in traffic.await.expect("no panic") {
        assert!(
            seen.contains(old) || seen.contains(new),
            "a policy of neither version: {seen}"
        );
    }
    let after = get(&client, gateway.addr, PREMIUM_KEY, &[]).await;
    assert!(policy(&after).contains(new), "{}", policy(&after));

    // A broken file: the running quotas are kept, the failure counted, the field named.
    std::fs::write(&path, gateway_file(0)).expect("break the file");
    assert_eq!(watcher.check().await, 1, "nothing applied");
    assert_eq!(watcher.failed(), 1);
    let error = watcher.last_error().expect("an error");
    assert!(error.contains("premium.per_second"), "{error}");
    let kept = get(&client, gateway.addr, PREMIUM_KEY, &[]).await;
    assert!(policy(&kept).contains(new), "{}", policy(&kept));
    gateway.server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request of `method` to `path` with `headers`: status and body.
async fn send(
    client: &TestClient,
    method: http::Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = client
        .request(req.body(Empty::new()).expect("valid request"))
        .await
        .expect("the gateway answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The layer `pattern/layer` of the status JSON.
fn layer<'a>(doc: &'a serde_json::Value, pattern: &str, name: &str) -> &'a serde_json::Value {
    doc["layers"]
        .as_array()
        .expect("layers[]")
        .iter()
        .find(|l| l["pattern"] == pattern && l["layer"] == name)
        .unwrap_or_else(|| panic!("{pattern}/{name} not in {doc}"))
}

async fn status_json(client: &TestClient, addr: SocketAddr) -> serde_json::Value {
    let (status, body) = probe(client, addr, "/weir/status.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// #19: the status page's JSON over the socket: every layer the gateway registered, the
/// upstream breaker open after an outage with the handles' own numbers, the page beside the edge
/// stack (a client the rate limit refuses still gets it), and no admin action without a token.
#[tokio::test]
async fn the_status_json_shows_the_gateway_layers_and_the_open_breaker() {
    let mut config = Config::demo();
    config.open_duration = Duration::from_secs(60);
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;

    let doc = status_json(&client, addr).await;
    assert_eq!(doc["actions_enabled"], false);
    let breaker = layer(&doc, "circuit_breaker", "upstream");
    assert_eq!(breaker["gauges"]["open"], 0.0, "{breaker}");
    layer(&doc, "bulkhead", "upstream");
    layer(&doc, "retry", "upstream");
    layer(&doc, "load_shed", "edge");
    layer(&doc, "fallback", "recommendations");
    let limit = layer(&doc, "rate_limit", "edge");
    assert_eq!(limit["actions"], serde_json::json!(["reset"]), "{limit}");

    upstream.set_outage(true);
    for _ in 0..20 {
        if get(&client, addr, PREMIUM_KEY, &[]).await.body == "circuit open" {
            break;
        }
    }
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    let doc = status_json(&client, addr).await;
    let breaker = layer(&doc, "circuit_breaker", "upstream");
    assert_eq!(breaker["gauges"]["open"], 1.0, "{breaker}");
    let recent = breaker["recent"].as_array().expect("recent[]");
    let last = recent.last().expect("a transition");
    assert_eq!(
        (&last["from"], &last["to"]),
        (&"closed".into(), &"open".into())
    );
    assert!(last["at_ms"].as_u64().expect("a time") > 1_700_000_000_000);
    // The JSON's numbers are the handles' own.
    for snapshot in gateway.registry.snapshot() {
        let shown = layer(&doc, snapshot.pattern, snapshot.layer.as_str());
        for (name, value) in &snapshot.counters {
            assert_eq!(
                shown["counters"][*name], *value,
                "{} {name}",
                snapshot.pattern
            );
        }
    }
    assert!(breaker["counters"]["rejected"].as_u64().unwrap() >= 1);

    // Beside the edge stack: a client the rate limit refuses still gets the page.
    while get(&client, addr, FREE_KEY, &[]).await.status != StatusCode::TOO_MANY_REQUESTS {}
    let doc = status_json(&client, addr).await;
    let refused = gateway
        .registry
        .find("rate_limit", "edge")
        .expect("registered")
        .snapshot()
        .counter_value("rejected");
    assert!(refused >= Some(1), "{refused:?}");
    assert_eq!(
        layer(&doc, "rate_limit", "edge")["counters"]["rejected"].as_u64(),
        refused
    );
    let (status, html) = send(
        &client,
        http::Method::GET,
        addr,
        "/weir/status",
        &[("x-api-key", FREE_KEY)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>weir status</title>"));

    // No token: no actions, and the breaker stays open.
    let reset = "/weir/status/actions/circuit_breaker/upstream/reset_all";
    let (status, _) = send(&client, http::Method::POST, addr, reset, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    upstream.set_outage(false);
}

/// #19: with `WEIR_STATUS_TOKEN` (`Config::status_token`) the admin actions take that bearer
/// token: none is 401, another 403 (nothing changes either way), the right one resets the open
/// breaker.
#[tokio::test]
async fn status_actions_take_the_token() {
    let mut config = Config::demo();
    config.open_duration = Duration::from_secs(60);
    config.status_token = Some("s3cret".into());
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;
    assert_eq!(status_json(&client, addr).await["actions_enabled"], true);

    upstream.set_outage(true);
    for _ in 0..20 {
        if get(&client, addr, PREMIUM_KEY, &[]).await.body == "circuit open" {
            break;
        }
    }
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    upstream.set_outage(false);

    let reset = "/weir/status/actions/circuit_breaker/upstream/reset_all";
    let (status, _) = send(&client, http::Method::POST, addr, reset, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &client,
        http::Method::POST,
        addr,
        reset,
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        breaker_state(&gateway),
        Some(State::Open),
        "refused: nothing changed"
    );

    let (status, body) = send(
        &client,
        http::Method::POST,
        addr,
        reset,
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(breaker_state(&gateway), Some(State::Open), "reset");
    assert_eq!(
        get(&client, addr, PREMIUM_KEY, &[]).await.status,
        StatusCode::OK
    );
}

/// One sample of Prometheus text: its name and labels.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of a Prometheus text page (`name{k="v",...} value`); comments skipped. weir's
/// label values hold no `,`, `"` or `}`.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let labels = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("k=\"v\"");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
            }
        })
        .collect()
}

/// #19: after traffic that is rate limited, retried and opens the upstream's breaker, `/metrics`
/// (scraped over a socket) has every family of weir-core's naming table the gateway's layers
/// emit: the event counters by outcome and reason, the transitions, the backoff histogram, and a
/// gauge, a total and the one-hot state for each registered layer's snapshot.
#[tokio::test]
async fn metrics_has_every_family_after_refusals_retries_and_an_open_breaker() {
    let mut config = Config::demo();
    config.open_duration = Duration::from_secs(60);
    let (gateway, upstream, client) = setup(&config).await;
    let addr = gateway.addr;

    let mut limited = false;
    for _ in 0..2 * config.free.per_second {
        if get(&client, addr, FREE_KEY, &[]).await.status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the free tier's per-second quota refuses");
    upstream.set_outage(true);
    for _ in 0..20 {
        if get(&client, addr, PREMIUM_KEY, &[]).await.body == "circuit open" {
            break;
        }
    }
    assert_eq!(breaker_state(&gateway), Some(State::Open));
    // One more call, refused by the open breaker.
    assert_eq!(
        get(&client, addr, PREMIUM_KEY, &[]).await.body,
        "circuit open"
    );

    let (status, text) = probe(&client, addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let all = samples(&text);
    let has = |name: &str, labels: &[(&str, &str)]| {
        all.iter()
            .any(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    };
    let rate_limit = [("pattern", "rate_limit"), ("layer", "edge")];
    assert!(
        has(
            "weir_events_total",
            &[rate_limit[0], rate_limit[1], ("event", "rejected")]
        ),
        "{text}"
    );
    assert!(
        has(
            "weir_calls_total",
            &[
                rate_limit[0],
                rate_limit[1],
                ("outcome", "rejected"),
                ("reason", "rate_limited")
            ]
        ),
        "{text}"
    );
    assert!(
        has(
            "weir_calls_total",
            &[
                ("pattern", "retry"),
                ("layer", "upstream"),
                ("outcome", "retried")
            ]
        ),
        "{text}"
    );
    assert!(
        has(
            "weir_calls_total",
            &[
                ("pattern", "circuit_breaker"),
                ("outcome", "rejected"),
                ("reason", "open")
            ]
        ),
        "{text}"
    );
    assert!(
        has(
            "weir_transitions_total",
            &[
                ("pattern", "circuit_breaker"),
                ("from", "closed"),
                ("to", "open")
            ]
        ),
        "{text}"
    );
    // A histogram renders as a summary: quantiles, `_sum` and `_count`.
    assert!(
        has("weir_backoff_delay_seconds_count", &[("pattern", "retry")]),
        "{text}"
    );

    // Every registered layer: each gauge, each total, and its state one-hot and as a number.
    let snapshots = gateway.registry.snapshot();
    assert!(!snapshots.is_empty());
    for snapshot in &snapshots {
        let (pattern, layer) = (snapshot.pattern, snapshot.layer.as_str());
        for (gauge, _) in &snapshot.gauges {
            let name = format!("weir_{pattern}_{gauge}");
            assert!(has(&name, &[("layer", layer)]), "no {name}:\n{text}");
        }
        for (counter, _) in &snapshot.counters {
            let name = format!("weir_{pattern}_{}", counter.trim_end_matches("_total"));
            let name = format!("{name}_total");
            assert!(has(&name, &[("layer", layer)]), "no {name}:\n{text}");
        }
        if let Some(state) = snapshot.state {
            let name = format!("weir_{pattern}_state");
            assert!(
                has(&name, &[("layer", layer), ("state", state.name)]),
                "{text}"
            );
            assert!(has(&format!("{name}_value"), &[("layer", layer)]), "{text}");
        }
    }
    // No client key is ever a label.
    assert!(
        !text.contains(PREMIUM_KEY) && !text.contains(FREE_KEY),
        "{text}"
    );
}
