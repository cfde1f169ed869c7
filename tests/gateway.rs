//! End to end over real sockets on 127.0.0.1: the gateway example's own stacks (axum edge, weir
//! client stack over hyper, axum upstream), built by the example's functions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use weir::circuit_breaker::State;

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

async fn get(client: &TestClient, addr: SocketAddr, key: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(format!("http://{addr}/api/items")).header("x-api-key", key);
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
    config.free.per_day = 10_000;
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
    for call in calls {
        let (key, answer) = call.await.expect("no panic");
        *by_status.entry(answer.status.as_u16()).or_default() += 1;
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
    // free: a burst of 5 of 60; basic: 10 of 60; the rest was admitted, shed, or failed upstream.
    assert!(by_status[&429] >= 100, "{by_status:?}");
    assert!(by_status.contains_key(&200), "{by_status:?}");
    assert!(by_status.contains_key(&503), "{by_status:?}");
    let rate_limited = gateway.stats.rate_limited.lock().unwrap().clone();
    assert!(rate_limited.contains_key(&("default".to_owned(), "per-second".to_owned())));
    assert!(rate_limited.contains_key(&("basic".to_owned(), "per-second".to_owned())));
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
    tokio::time::sleep(config.open_duration + Duration::from_millis(50)).await;
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
    assert_eq!(answer.body, "timed out");
    // Loose (real sockets on a shared machine), but well short of the upstream's 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not the upstream's 5 s"
    );
    assert!(seen().is_some_and(|ms| ms < 80));
}
