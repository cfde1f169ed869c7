//! What a retry layer counts against the upstream, and a server's wait as a floor: #16.1 (a
//! caller's spent deadline is not retried), #16.3 (a `Retry-After` longer than
//! `max_server_delay` ends the retries, never shortened) and #27.2 (a 429 is retried after its
//! `Retry-After` but does not drain a retry budget every caller shares).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error};
use weir_retry::{Event, GiveUp, ReplayBody, RetryBudget, RetryLayer};

type HttpReq = Request<ReplayBody<Full<Bytes>>>;

/// Answers every call with `status` and `headers`; records when each call came.
fn always(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> (
    impl Service<HttpReq, Response = Response<Full<Bytes>>, Error = BoxError, Future: Send>
    + Clone
    + Send,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_req: HttpReq| {
        seen.lock().unwrap().push(Instant::now());
        let mut res = Response::builder().status(status);
        for (name, value) in headers {
            res = res.header(*name, *value);
        }
        std::future::ready(Ok::<_, BoxError>(
            res.body(Full::new(Bytes::new())).unwrap(),
        ))
    });
    (svc, calls)
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://upstream/")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// #16.3: a `Retry-After` longer than `max_server_delay` ends the retries with that answer at
/// once: weir never retries earlier than the server asked.
#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_server_delay_ends_the_retries_unshortened() {
    let (svc, calls) = always(503, &[("retry-after", "120")]);
    let gave_up = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&gave_up);
    let layer = RetryLayer::http()
        .max_server_delay(Duration::from_secs(60))
        .observer(move |event: &Event<'_>| {
            if let Event::GaveUp { reason, .. } = event {
                seen.lock().unwrap().push(*reason);
            }
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let res = layer.layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()["retry-after"],
        "120",
        "the server's answer, as sent"
    );
    assert_eq!(calls.lock().unwrap().len(), 1, "never retried before 120 s");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(*gave_up.lock().unwrap(), [GiveUp::ServerDelay]);

    // A wait within the maximum is honoured exactly.
    let (svc, calls) = always(503, &[("retry-after", "60")]);
    let layer = RetryLayer::http()
        .max_attempts(2)
        .max_server_delay(Duration::from_secs(60))
        .build()
        .unwrap();
    let _ = layer.layer(svc).oneshot(get()).await.unwrap();
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1] - calls[0], Duration::from_secs(60));
}

/// #27.2: a 429 is retried after its `Retry-After`, but it is one caller's quota: it does not
/// spend the gRPC retry-throttling tokens every caller shares, so other callers keep their
/// retries. A 503 (the upstream's failure) does spend them.
#[tokio::test(start_paused = true)]
async fn a_429_is_retried_but_does_not_drain_the_shared_budget() {
    let (svc, calls) = always(429, &[("retry-after", "1")]);
    let layer = RetryLayer::http()
        .max_attempts(3)
        .budget(RetryBudget::grpc_throttle(10, 0.1))
        .build()
        .unwrap();
    let handle = layer.handle();
    let before = handle.available();
    for _ in 0..20 {
        let res = layer.layer(svc.clone()).oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(calls.lock().unwrap().len(), 60, "each call retried twice");
    assert_eq!(
        handle.available(),
        before,
        "no token spent on one caller's quota"
    );

    let (down, _) = always(503, &[]);
    let _ = layer.layer(down).oneshot(get()).await.unwrap();
    assert!(
        handle.available() < before,
        "the upstream's failures do count"
    );
}

/// #16.1: a timeout of the caller's own deadline is not retried (no time is left) and not
/// counted against the upstream.
#[tokio::test(start_paused = true)]
async fn a_callers_spent_deadline_is_not_retried() {
    let calls = Arc::new(Mutex::new(0_u32));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_req: u32| {
        *seen.lock().unwrap() += 1;
        std::future::ready(Err::<u32, BoxError>(Error::caller_deadline().into()))
    });
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .budget(RetryBudget::grpc_throttle(10, 0.1))
        .build()
        .unwrap();
    let handle = layer.handle();
    let before = handle.available();
    let err = layer.layer(svc).oneshot(1).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_caller_deadline));
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(handle.available(), before);
}

/// #16.4: gRFC A6's limits in the gRPC preset: `max_attempts` above 5 is taken as 5, and the
/// delays are A6's `random(0, d)` of the exponential backoff (never above `d`).
#[tokio::test(start_paused = true)]
async fn the_grpc_preset_caps_attempts_at_five_with_a6_delays() {
    let (svc, calls) = always(200, &[("grpc-status", "14")]);
    let layer = RetryLayer::grpc()
        .max_attempts(10)
        .budget(RetryBudget::unlimited())
        .seed(7)
        .build()
        .unwrap();
    let res = layer.layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 5, "A6: at most 5 attempts");
    let mut bound = Duration::from_millis(100);
    let mut spread = false;
    for pair in calls.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap <= bound, "{gap:?} > {bound:?}");
        spread |= gap < bound * 8 / 10;
        bound *= 2;
    }
    assert!(spread, "random(0, d), not d +- 20 %");
}

/// #16.4: "only these codes are retryable" (A6's `retryableStatusCodes`): other failures are
/// returned at once.
#[tokio::test(start_paused = true)]
async fn only_the_listed_codes_are_retried() {
    use weir_core::{classify::GrpcStatus, wire::GrpcCode};
    let (svc, calls) = always(200, &[("grpc-status", "4")]); // DEADLINE_EXCEEDED
    let layer = RetryLayer::grpc()
        .classify(GrpcStatus::new().only_retryable(&[GrpcCode::Unavailable]))
        .build()
        .unwrap();
    let _ = layer.layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), 1);
    let (svc, calls) = always(200, &[("grpc-status", "14")]);
    let layer = RetryLayer::grpc()
        .classify(GrpcStatus::new().only_retryable(&[GrpcCode::Unavailable]))
        .build()
        .unwrap();
    let _ = layer.layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), 3);
}

/// #16.4: `HttpStatus::only_retryable` through retry: a 503 it lists is retried, a 500 it does
/// not list is returned at once (still a failure for a breaker, never retried).
#[tokio::test(start_paused = true)]
async fn only_the_listed_http_statuses_are_retried() {
    use weir_core::classify::HttpStatus;
    let only_503 = || {
        RetryLayer::http()
            .max_attempts(3)
            .budget(RetryBudget::unlimited())
            .classify(HttpStatus::new().only_retryable(&[StatusCode::SERVICE_UNAVAILABLE]))
            .build()
            .unwrap()
    };
    let (svc, calls) = always(500, &[]);
    let res = only_503().layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(calls.lock().unwrap().len(), 1, "500 is not listed");

    let (svc, calls) = always(503, &[]);
    let res = only_503().layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        calls.lock().unwrap().len(),
        3,
        "503 is listed: every attempt"
    );

    // The default classifier retries a 500.
    let (svc, calls) = always(500, &[]);
    let layer = RetryLayer::http()
        .max_attempts(3)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let _ = layer.layer(svc).oneshot(get()).await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), 3);
}
