//! gRPC's retry rules (gRFC A6), as a table: each row is the responses a server gives, in order,
//! and what the client must do: how many calls, how long it waited between them, and what it
//! returns. Through the real layer, with `RetryLayer::grpc()` and paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};
use weir_core::{BoxError, backoff::Backoff};
use weir_retry::{Event, GiveUp, ReplayBody, RetryBudget, RetryLayer};

const MS: Duration = Duration::from_millis(1);

/// One server answer: a gRPC status code and an optional `grpc-retry-pushback-ms`.
#[derive(Clone, Copy, Debug)]
struct Answer(u8, Option<&'static str>);

const OK: Answer = Answer(0, None);
const INVALID_ARGUMENT: Answer = Answer(3, None);
const UNAVAILABLE: Answer = Answer(14, None);
const fn unavailable_pushback(ms: &'static str) -> Answer {
    Answer(14, Some(ms))
}

struct Row {
    name: &'static str,
    answers: &'static [Answer],
    /// The waits between calls (so also the number of calls: one more).
    waits: &'static [u32],
    /// The status the client ends with.
    returns: u8,
    /// Why it stopped retrying, when it gave up on a retryable failure.
    gave_up: Option<GiveUp>,
}

const TABLE: &[Row] = &[
    Row {
        name: "OK is never retried",
        answers: &[OK],
        waits: &[],
        returns: 0,
        gave_up: None,
    },
    Row {
        name: "a fatal status (not retryable) is returned at once",
        answers: &[INVALID_ARGUMENT],
        waits: &[],
        returns: 3,
        gave_up: None,
    },
    Row {
        name: "a fatal status with a pushback is still not retried",
        answers: &[Answer(3, Some("10"))],
        waits: &[],
        returns: 3,
        gave_up: None,
    },
    Row {
        name: "a retryable status is retried after the backoff",
        answers: &[UNAVAILABLE, UNAVAILABLE, OK],
        waits: &[100, 200],
        returns: 0,
        gave_up: None,
    },
    Row {
        name: "retryable statuses stop at maxAttempts (the first call included)",
        answers: &[UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, OK],
        waits: &[100, 200, 400],
        returns: 14,
        gave_up: Some(GiveUp::MaxAttempts),
    },
    Row {
        name: "pushback \"do not retry\" (negative) stops at once",
        answers: &[unavailable_pushback("-1"), OK],
        waits: &[],
        returns: 14,
        gave_up: Some(GiveUp::ServerPushback),
    },
    Row {
        name: "pushback that does not parse means do not retry",
        answers: &[unavailable_pushback("soon"), OK],
        waits: &[],
        returns: 14,
        gave_up: Some(GiveUp::ServerPushback),
    },
    Row {
        name: "pushback \"retry after N\" waits exactly N ms",
        answers: &[unavailable_pushback("250"), OK],
        waits: &[250],
        returns: 0,
        gave_up: None,
    },
    Row {
        name: "after a pushback the backoff starts over from initialBackoff",
        answers: &[UNAVAILABLE, unavailable_pushback("1000"), UNAVAILABLE, OK],
        waits: &[100, 1000, 100],
        returns: 0,
        gave_up: None,
    },
    Row {
        // #16.3: the run's `max_server_delay` is the default, 60 s. A server's wait is a floor:
        // weir never retries earlier than asked, so a longer one ends the retries with the
        // last answer, at once.
        name: "pushback above max_server_delay ends the retries with that answer",
        answers: &[unavailable_pushback("120000"), OK],
        waits: &[],
        returns: 14,
        gave_up: Some(GiveUp::ServerDelay),
    },
    Row {
        name: "pushback at max_server_delay is waited out in full",
        answers: &[unavailable_pushback("60000"), OK],
        waits: &[60_000],
        returns: 0,
        gave_up: None,
    },
    Row {
        name: "pushback 0 retries at once",
        answers: &[unavailable_pushback("0"), OK],
        waits: &[0],
        returns: 0,
        gave_up: None,
    },
];

type GrpcReq = Request<ReplayBody<Full<Bytes>>>;

async fn run(row: &Row, budget: RetryBudget) -> (Vec<Duration>, u8, Option<GiveUp>) {
    let calls = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = Arc::clone(&calls);
    let answers = row.answers;
    let svc = service_fn(move |_: GrpcReq| {
        let mut calls = seen.lock().unwrap();
        calls.push(Instant::now());
        let Answer(code, pushback) = answers[calls.len() - 1];
        let mut res = Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", code.to_string());
        if let Some(ms) = pushback {
            res = res.header("grpc-retry-pushback-ms", ms);
        }
        std::future::ready(Ok::<_, BoxError>(
            res.body(Full::new(Bytes::new())).unwrap(),
        ))
    });
    let gave_up = Arc::new(Mutex::new(None));
    let log = Arc::clone(&gave_up);
    // A6's example policy, without jitter so the waits are exact: 4 attempts, 0.1 s, x2.
    let layer = RetryLayer::grpc()
        .max_attempts(4)
        .backoff(Backoff::exponential(100 * MS).max(Duration::from_secs(1)))
        .budget(budget)
        .observer(move |event: &Event<'_>| {
            if let Event::GaveUp { reason, .. } = event {
                *log.lock().unwrap() = Some(*reason);
            }
        })
        .build()
        .unwrap();
    let req = Request::post("http://server/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let res = layer.layer(svc).oneshot(req).await.unwrap();
    let status = res.headers()["grpc-status"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let calls = calls.lock().unwrap();
    let waits = calls.windows(2).map(|w| w[1] - w[0]).collect();
    let reason = *gave_up.lock().unwrap();
    (waits, status, reason)
}

#[tokio::test(start_paused = true)]
async fn grfc_a6_conformance_table() {
    for row in TABLE {
        let (waits, status, gave_up) = run(row, RetryBudget::unlimited()).await;
        let expected: Vec<_> = row.waits.iter().map(|ms| *ms * MS).collect();
        assert_eq!(waits, expected, "{}: waits", row.name);
        assert_eq!(status, row.returns, "{}: status", row.name);
        assert_eq!(gave_up, row.gave_up, "{}: gave up", row.name);
    }
}

#[tokio::test(start_paused = true)]
async fn grfc_a6_throttling_disables_retries_below_half_the_tokens() {
    // maxTokens 10, tokenRatio 0.1, as in A6's example. One layer, so one token count.
    let calls = Arc::new(Mutex::new(0_usize));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_: GrpcReq| {
        *seen.lock().unwrap() += 1;
        let res = Response::builder()
            .header("grpc-status", "14")
            .body(Full::new(Bytes::new()))
            .unwrap();
        std::future::ready(Ok::<_, BoxError>(res))
    });
    let (layer, handle) = RetryLayer::grpc()
        .max_attempts(4)
        .backoff(Backoff::constant(10 * MS))
        .budget(RetryBudget::grpc_throttle(10, 0.1))
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(svc);
    let call = || {
        svc.clone().oneshot(
            Request::post("http://server/x")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    // 10 tokens; each failed attempt takes one; retrying needs more than 5.
    // Call 1: attempts at 10, 9, 8, 7 tokens -> 4 attempts (tokens now 6).
    let _ = call().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), 4);
    // Call 2: attempt at 6 -> 5 left, not above half: no retry.
    let _ = call().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), 5);
    assert_eq!(handle.retries(), 3);
    assert_eq!(handle.budget_exhausted(), 1);
    assert_eq!(handle.available(), Some(0));
}
