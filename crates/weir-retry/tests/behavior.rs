//! Behaviour with paused time: the delays actually slept, server hints, deadlines, the budget,
//! idempotency, events, and what is (not) retried.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{
    BoxError, Deadline, Error, backoff::Backoff, backoff::FastRandom, backoff::Jitter,
};
use weir_retry::{Event, GiveUp, ReplayBody, RetryBudget, RetryLayer};

const MS: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct Flaky(&'static str);

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Flaky {}

/// A service that fails its first `failures` calls and records when each call started.
fn flaky(
    failures: u32,
) -> (
    impl Service<
        u32,
        Response = u32,
        Error = BoxError,
        Future = std::future::Ready<Result<u32, BoxError>>,
    > + Clone,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |req: u32| {
        let mut calls = seen.lock().unwrap();
        calls.push(Instant::now());
        let n = u32::try_from(calls.len()).unwrap();
        std::future::ready(if n <= failures {
            Err(Flaky("reset").into())
        } else {
            Ok(req + 1)
        })
    });
    (svc, calls)
}

fn gaps(calls: &[Instant]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn the_delays_slept_match_the_backoff() {
    let (svc, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .backoff(Backoff::exponential(100 * MS))
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let err = layer.layer(svc).oneshot(1).await.unwrap_err();
    // The inner error passes through unchanged.
    assert_eq!(err.downcast_ref::<Flaky>().unwrap().0, "reset");
    let calls = calls.lock().unwrap();
    assert_eq!(gaps(&calls), [100 * MS, 200 * MS, 400 * MS, 800 * MS]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_are_the_seeded_draws() {
    let backoff = Backoff::exponential(100 * MS)
        .max(300 * MS)
        .jitter(Jitter::Decorrelated);
    let (svc, calls) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .max_attempts(6)
        .backoff(backoff)
        .seed(42)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let _ = layer.layer(svc).oneshot(1).await;
    let mut rng = FastRandom::seeded(42);
    let mut previous = Duration::ZERO;
    let expected: Vec<_> = (0..5)
        .map(|n| {
            previous = backoff.delay(n, previous, &mut rng);
            previous
        })
        .collect();
    // tokio's timer has millisecond resolution: a sleep ends on the next whole millisecond.
    let slept: Vec<_> = expected
        .iter()
        .map(|d| Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap()))
        .collect();
    let calls = calls.lock().unwrap();
    assert_eq!(gaps(&calls), slept);
    assert!(expected.iter().all(|d| *d >= 100 * MS && *d <= 300 * MS));
}

#[tokio::test(start_paused = true)]
async fn a_success_after_failures_is_returned() {
    let (svc, calls) = flaky(2);
    let out = RetryLayer::new(3).layer(svc).oneshot(41).await.unwrap();
    assert_eq!(out, 42);
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn weir_rejections_are_never_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_: ()| {
        seen.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Err::<(), BoxError>(
            Error::circuit_open().with_layer("db").into(),
        ))
    });
    let err = RetryLayer::new(5).layer(svc).oneshot(()).await.unwrap_err();
    assert!(Error::find(&*err).unwrap().is_circuit_open());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

type HttpReq = Request<ReplayBody<Full<Bytes>>>;

/// An HTTP service answering from a script of (status, headers) per call, then 200.
fn scripted(
    script: Vec<(u16, Vec<(&'static str, String)>)>,
) -> (
    impl Service<
        HttpReq,
        Response = Response<Full<Bytes>>,
        Error = BoxError,
        Future = std::future::Ready<Result<Response<Full<Bytes>>, BoxError>>,
    > + Clone,
    Arc<Mutex<Vec<(Instant, Method)>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let script = Arc::new(script);
    let svc = service_fn(move |req: HttpReq| {
        let mut calls = seen.lock().unwrap();
        calls.push((Instant::now(), req.method().clone()));
        let (status, headers) = script
            .get(calls.len() - 1)
            .cloned()
            .unwrap_or((200, vec![]));
        let mut res = Response::builder().status(status);
        for (name, value) in headers {
            res = res.header(name, value);
        }
        std::future::ready(Ok(res.body(Full::new(Bytes::new())).unwrap()))
    });
    (svc, calls)
}

fn request(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://upstream/")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_is_honoured() {
    let (svc, calls) = scripted(vec![(503, vec![("retry-after", "2".into())])]);
    let layer = RetryLayer::http().build().unwrap();
    let res = layer
        .layer(svc)
        .oneshot(request(Method::GET))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].0 - calls[0].0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_is_honoured() {
    #[allow(clippy::disallowed_methods, reason = "HTTP dates are wall-clock time")]
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4));
    let (svc, calls) = scripted(vec![(429, vec![("retry-after", date)])]);
    let layer = RetryLayer::http().build().unwrap();
    let res = layer
        .layer(svc)
        .oneshot(request(Method::GET))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let calls = calls.lock().unwrap();
    let waited = calls[1].0 - calls[0].0;
    // An HTTP date has whole seconds: between 3 and 4 seconds from now.
    assert!(
        waited > Duration::from_secs(3) && waited <= Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_stops_retrying_on_time() {
    let always = vec![(503, vec![]); 100];
    let (svc, calls) = scripted(always);
    let layer = RetryLayer::http()
        .max_attempts(100)
        .backoff(Backoff::constant(100 * MS))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut req = request(Method::GET);
    Deadline::after(250 * MS).set_earliest(req.extensions_mut());
    let res = layer.layer(svc).oneshot(req).await.unwrap();
    // The last 503 is returned as soon as the next sleep would pass the deadline.
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.lock().unwrap().len(), 3);
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_ends_retrying_at_once() {
    let (svc, calls) = scripted(vec![(503, vec![("retry-after", "5".into())])]);
    let layer = RetryLayer::http().build().unwrap();
    let start = Instant::now();
    let mut req = request(Method::GET);
    Deadline::after(Duration::from_secs(2)).set_earliest(req.extensions_mut());
    let res = layer.layer(svc).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn max_duration_bounds_the_total_retry_time() {
    let (svc, calls) = scripted(vec![(500, vec![]); 100]);
    let layer = RetryLayer::http()
        .max_attempts(100)
        .backoff(Backoff::exponential(100 * MS))
        .max_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    let res = layer
        .layer(svc)
        .oneshot(request(Method::GET))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // 100 + 200 + 400 = 700 ms; the next (800 ms) would end past 1 s.
    assert_eq!(calls.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn post_without_an_idempotency_key_is_never_retried() {
    for (method, key, expected) in [
        (Method::POST, false, 1),
        (Method::PATCH, false, 1),
        (Method::POST, true, 3),
        (Method::GET, false, 3),
        (Method::PUT, false, 3),
        (Method::DELETE, false, 3),
    ] {
        let (svc, calls) = scripted(vec![(503, vec![]); 10]);
        let layer = RetryLayer::http().build().unwrap();
        let mut req = request(method.clone());
        if key {
            req.headers_mut()
                .insert("idempotency-key", "order-17".parse().unwrap());
        }
        let res = layer.layer(svc).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(calls.lock().unwrap().len(), expected, "{method} key={key}");
    }
    // Opting in retries POST too.
    let (svc, calls) = scripted(vec![(503, vec![]); 10]);
    let layer = RetryLayer::http().retry_non_idempotent().build().unwrap();
    let _ = layer
        .layer(svc)
        .oneshot(request(Method::POST))
        .await
        .unwrap();
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_storm() {
    // 1 000 requests against a dead service, all at once, each allowed 3 attempts and waiting
    // 1 s between them: the budget allows 10/s × 10 s + 20 % × 1 000 = 300 retries in all,
    // counted when scheduled (all of them are waiting in backoff together).
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_: u32| {
        seen.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Err::<u32, BoxError>(Flaky("down").into()))
    });
    let gave_up_on_budget = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&gave_up_on_budget);
    let (layer, handle) = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .observer(move |event: &Event<'_>| {
            if let Event::GaveUp {
                reason: GiveUp::Budget,
                ..
            } = event
            {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build_with_handle()
        .unwrap();
    let svc = layer.layer(svc);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        tasks.spawn(svc.clone().oneshot(i));
    }
    let mut failed = 0;
    while let Some(result) = tasks.join_next().await {
        // Every request gets the service's own error back, never a budget error.
        let err = result.unwrap().unwrap_err();
        assert!(err.downcast_ref::<Flaky>().is_some());
        failed += 1;
    }
    assert_eq!(failed, 1000);
    assert_eq!(handle.retries(), 300);
    assert_eq!(calls.load(Ordering::Relaxed), 1300);
    // 700 requests are refused their first retry, the 300 others their second.
    assert_eq!(handle.budget_exhausted(), 1000);
    assert_eq!(
        gave_up_on_budget.load(Ordering::Relaxed) as u64,
        handle.budget_exhausted()
    );
    assert_eq!(handle.available(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn events_report_each_retry_and_the_give_up() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let (svc, _) = flaky(u32::MAX);
    let layer = RetryLayer::builder()
        .name("payments")
        .max_attempts(3)
        .backoff(Backoff::constant(10 * MS))
        .observer(move |event: &Event<'_>| {
            let line = match event {
                Event::Retry {
                    layer,
                    attempt,
                    delay,
                    failure,
                    ..
                } => format!(
                    "{layer} retry {attempt} {delay:?} {}",
                    failure.is_transient()
                ),
                Event::GaveUp {
                    layer,
                    attempts,
                    reason,
                    ..
                } => format!("{layer} gave up {attempts} {reason}"),
                _ => "other".into(),
            };
            log.lock().unwrap().push(line);
        })
        .build()
        .unwrap();
    let _ = layer.layer(svc).oneshot(1).await;
    assert_eq!(
        *events.lock().unwrap(),
        [
            "payments retry 1 10ms true",
            "payments retry 2 10ms true",
            "payments gave up 3 max_attempts",
        ]
    );
}

/// A response body that counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(start_paused = true)]
async fn the_failed_response_is_dropped_before_the_sleep() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::clone(&dropped);
    let svc = service_fn(move |_: HttpReq| {
        let res = Response::builder()
            .status(503)
            .body(Tracked(Arc::clone(&bodies)))
            .unwrap();
        std::future::ready(Ok::<_, BoxError>(res))
    });
    let at_retry = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&at_retry);
    let seen = Arc::clone(&dropped);
    let layer = RetryLayer::http()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .observer(move |event: &Event<'_>| {
            if let Event::Retry { attempt, .. } = event {
                log.lock()
                    .unwrap()
                    .push((*attempt, seen.load(Ordering::Relaxed)));
            }
        })
        .build()
        .unwrap();
    let res = layer
        .layer(svc)
        .oneshot(request(Method::GET))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // When retry n is announced (before its sleep), n failed responses are already gone.
    assert_eq!(*at_retry.lock().unwrap(), [(1, 1), (2, 2)]);
    drop(res);
    assert_eq!(dropped.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_result_predicate_is_a_closure_classifier() {
    use weir_core::{Failure, Outcome};
    // Retry only errors that say "reset".
    let classify = |result: &Result<u32, BoxError>| match result {
        Ok(_) => Outcome::Success,
        Err(e) if e.to_string().contains("reset") => Outcome::Failure(Failure::transient()),
        Err(_) => Outcome::Failure(Failure::permanent()),
    };
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let svc = service_fn(move |_: u32| {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        let reason = if n == 0 { "reset" } else { "bad certificate" };
        std::future::ready(Err::<u32, BoxError>(Flaky(reason).into()))
    });
    let layer = RetryLayer::builder().classify(classify).build().unwrap();
    let err = layer.layer(svc).oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "bad certificate");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[test]
fn config_errors_name_the_field() {
    let err = RetryLayer::builder().max_attempts(0).build().unwrap_err();
    assert!(err.is_zero(), "{err}");
    assert_eq!((err.pattern(), err.field()), ("retry", "max_attempts"));
    assert!(err.to_string().contains("`max_attempts`"), "{err}");
    let err = RetryLayer::builder()
        .budget(RetryBudget::grpc_throttle(2000, 0.1))
        .build()
        .unwrap_err();
    assert!(err.is_out_of_range(), "{err}");
    assert_eq!(err.field(), "budget.max_tokens");
    // `new` never fails: zero attempts are raised to one (the rule of every `new` in weir).
    assert_eq!(
        format!("{:?}", RetryLayer::new(0)),
        format!("{:?}", RetryLayer::new(1))
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_predicate_limits_what_is_retried() {
    let (svc, calls) = flaky(u32::MAX);
    // Only even requests may be sent again.
    let layer = RetryLayer::builder()
        .retry_request_if(|n: &u32| n.is_multiple_of(2))
        .backoff(Backoff::constant(MS))
        .build()
        .unwrap();
    let svc = layer.layer(svc);
    let _ = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 1);
    let _ = svc.oneshot(2).await.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 1 + 3);
}
