//! Behaviour of the hedge layer under paused time, against a scripted upstream.

mod support;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use support::{Answer, Kind, Upstream, classify, ms};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use weir_core::Deadline;
use weir_hedge::{Event, HedgeBudget, HedgeLayer};

fn answer(attempt: usize) -> Answer {
    Answer {
        attempt,
        kind: Kind::Ok,
    }
}

/// #21.1: a primary that answers before the delay is the answer; no hedge is sent.
#[tokio::test(start_paused = true)]
async fn a_fast_primary_sends_no_hedge() {
    let upstream = Upstream::new(vec![(ms(5), Kind::Ok)]);
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(20))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(0)));
    assert_eq!(upstream.calls(), 1);
    assert_eq!(handle.hedges_sent(), 0);
}

/// #21.1: after the fixed delay a hedge is sent; the first answer wins and the slow primary is
/// dropped before the answer is returned.
#[tokio::test(start_paused = true)]
async fn a_slow_primary_is_hedged_after_the_delay_and_dropped() {
    let upstream = Upstream::new(vec![(ms(100), Kind::Ok), (ms(10), Kind::Ok)]);
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(20))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let origin = Instant::now();
    let mut service = layer.layer(upstream.clone());
    let mut future = pin!(
        ServiceExt::<()>::ready(&mut service)
            .await
            .unwrap()
            .call(())
    );
    let out = (&mut future).await;
    assert_eq!(out, Ok(answer(1)));
    assert_eq!(origin.elapsed(), ms(30));
    assert_eq!(upstream.started_at(origin), vec![ms(0), ms(20)]);
    // The primary was dropped before the answer came back, the future still alive.
    assert_eq!(upstream.live(), 0);
    assert_eq!(handle.hedges_sent(), 1);
    assert_eq!(handle.hedges_won(), 1);
    assert_eq!(handle.cancelled(), 1);
}

/// #21.1: each next hedge waits the delay again, counted from the previous one; at most
/// `max_attempts` start.
#[tokio::test(start_paused = true)]
async fn hedges_follow_one_delay_apart_up_to_max_attempts() {
    let upstream = Upstream::new(vec![(ms(200), Kind::Ok); 5]);
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .max_attempts(3)
        .budget(HedgeBudget::unlimited())
        .classify(classify)
        .build()
        .unwrap();
    let origin = Instant::now();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(0)));
    assert_eq!(upstream.started_at(origin), vec![ms(0), ms(10), ms(20)]);
}

/// #21.1: delay zero is parallel mode: every attempt starts at once, the fastest wins.
#[tokio::test(start_paused = true)]
async fn parallel_mode_sends_every_attempt_at_once() {
    let upstream = Upstream::new(vec![
        (ms(50), Kind::Ok),
        (ms(40), Kind::Ok),
        (ms(5), Kind::Ok),
    ]);
    let layer = HedgeLayer::builder()
        .parallel()
        .max_attempts(3)
        .classify(classify)
        .build()
        .unwrap();
    let origin = Instant::now();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(2)));
    assert_eq!(upstream.started_at(origin), vec![ms(0); 3]);
    assert_eq!(upstream.live(), 0);
}

/// #21.1: `max_attempts` is 1..=5 (gRFC A6's cap); outside, `build()` names the field.
#[test]
fn max_attempts_outside_one_to_five_is_refused() {
    for n in [0, 6, 100] {
        let err = HedgeLayer::builder().max_attempts(n).build().unwrap_err();
        assert_eq!((err.pattern(), err.field()), ("hedge", "max_attempts"));
        assert_eq!(err.is_zero(), n == 0);
        assert!(err.to_string().contains("max_attempts"), "{err}");
    }
    for n in 1..=5 {
        assert!(HedgeLayer::builder().max_attempts(n).build().is_ok());
    }
    let err = HedgeLayer::builder()
        .latency_percentile(100.0)
        .build()
        .unwrap_err();
    assert!(
        err.is_out_of_range() && err.field() == "latency_percentile",
        "{err}"
    );
    let err = HedgeLayer::builder()
        .budget(HedgeBudget::ratio(f64::NAN))
        .build()
        .unwrap_err();
    assert!(
        err.is_out_of_range() && err.field() == "budget.ratio",
        "{err}"
    );
}

/// #21.1: a non-fatal failure sends the next hedge at once, without waiting for the delay.
#[tokio::test(start_paused = true)]
async fn a_transient_failure_sends_the_next_hedge_at_once() {
    let upstream = Upstream::new(vec![(ms(5), Kind::Transient), (ms(10), Kind::Ok)]);
    let layer = HedgeLayer::builder()
        .delay(ms(1000))
        .classify(classify)
        .build()
        .unwrap();
    let origin = Instant::now();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(1)));
    assert_eq!(upstream.started_at(origin), vec![ms(0), ms(5)]);
}

/// #21.1: a fatal failure cancels every attempt and is returned.
#[tokio::test(start_paused = true)]
async fn a_fatal_failure_cancels_all_and_is_returned() {
    let upstream = Upstream::new(vec![(ms(100), Kind::Ok), (ms(5), Kind::Fatal)]);
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .classify(classify)
        .build()
        .unwrap();
    let mut service = layer.layer(upstream.clone());
    let mut future = pin!(
        ServiceExt::<()>::ready(&mut service)
            .await
            .unwrap()
            .call(())
    );
    let out = (&mut future).await;
    assert_eq!(
        out,
        Err(Answer {
            attempt: 1,
            kind: Kind::Fatal
        })
    );
    assert_eq!(upstream.live(), 0);
}

/// #21.1: when every attempt fails, the primary's failure is returned.
#[tokio::test(start_paused = true)]
async fn when_all_fail_the_primarys_failure_is_returned() {
    let upstream = Upstream::new(vec![
        (ms(30), Kind::Transient),
        (ms(5), Kind::Transient),
        (ms(5), Kind::Transient),
    ]);
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .max_attempts(3)
        .classify(classify)
        .build()
        .unwrap();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(
        out,
        Err(Answer {
            attempt: 0,
            kind: Kind::Transient
        })
    );
    assert_eq!(upstream.calls(), 3);
}

/// #21.1: no hedge starts past the request's deadline, nor is one scheduled beyond it.
#[tokio::test(start_paused = true)]
async fn no_hedge_past_the_deadline() {
    let upstream = Upstream::new(vec![(ms(100), Kind::Ok), (ms(1), Kind::Ok)]);
    let layer = HedgeLayer::http()
        .delay(ms(50))
        .classify(classify)
        .build()
        .unwrap();
    let mut request = http::Request::get("/").body(String::new()).unwrap();
    Deadline::after(ms(40)).set_earliest(request.extensions_mut());
    let out = layer.layer(upstream.clone()).oneshot(request).await;
    assert_eq!(out, Ok(answer(0)));
    assert_eq!(upstream.calls(), 1);

    // With the deadline after the delay, the hedge goes.
    let upstream = Upstream::new(vec![(ms(100), Kind::Ok), (ms(1), Kind::Ok)]);
    let mut request = http::Request::get("/").body(String::new()).unwrap();
    Deadline::after(ms(60)).set_earliest(request.extensions_mut());
    let out = layer.layer(upstream.clone()).oneshot(request).await;
    assert_eq!(out, Ok(answer(1)));
}

/// #21.1: `HedgeLayer::http()` hedges idempotent requests only, as retry's `HttpReplay` does:
/// a POST without an `Idempotency-Key` is sent once.
#[tokio::test(start_paused = true)]
async fn http_hedges_idempotent_requests_only() {
    let layer = HedgeLayer::http()
        .delay(ms(10))
        .classify(classify)
        .build()
        .unwrap();
    let plan = || vec![(ms(100), Kind::Ok), (ms(1), Kind::Ok)];
    let post = || http::Request::post("/").body(String::from("x")).unwrap();

    let upstream = Upstream::new(plan());
    let out = layer.layer(upstream.clone()).oneshot(post()).await;
    assert_eq!((out, upstream.calls()), (Ok(answer(0)), 1));

    let upstream = Upstream::new(plan());
    let mut keyed = post();
    keyed
        .headers_mut()
        .insert("idempotency-key", http::HeaderValue::from_static("k1"));
    let out = layer.layer(upstream.clone()).oneshot(keyed).await;
    assert_eq!((out, upstream.calls()), (Ok(answer(1)), 2));
}

/// #21 / #27.1: the builder's default replay applies HTTP's idempotency rules too, so a POST built
/// into a plain `HedgeLayer::builder()` is never sent twice; `CloneRequest` is the explicit opt-in.
#[tokio::test(start_paused = true)]
async fn the_default_builder_never_hedges_a_post_without_a_key() {
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .classify(classify)
        .build()
        .unwrap();
    let plan = || vec![(ms(100), Kind::Ok), (ms(1), Kind::Ok)];
    let request = |method: http::Method| {
        http::Request::builder()
            .method(method)
            .uri("/")
            .body(String::from("x"))
            .unwrap()
    };

    let upstream = Upstream::new(plan());
    let out = layer
        .layer(upstream.clone())
        .oneshot(request(http::Method::POST))
        .await;
    assert_eq!((out, upstream.calls()), (Ok(answer(0)), 1));

    let upstream = Upstream::new(plan());
    let out = layer
        .layer(upstream.clone())
        .oneshot(request(http::Method::GET))
        .await;
    assert_eq!((out, upstream.calls()), (Ok(answer(1)), 2));

    let everything = HedgeLayer::builder()
        .delay(ms(10))
        .classify(classify)
        .replay(weir_retry::CloneRequest)
        .build()
        .unwrap();
    let upstream = Upstream::new(plan());
    let out = everything
        .layer(upstream.clone())
        .oneshot(request(http::Method::POST))
        .await;
    assert_eq!((out, upstream.calls()), (Ok(answer(1)), 2));
}

/// #21.2: the hedge budget refuses hedges beyond its balance; the request still gets its
/// primary's answer.
#[tokio::test(start_paused = true)]
async fn the_budget_stops_hedges() {
    let (layer, handle) = HedgeLayer::builder()
        .delay(ms(10))
        .budget(HedgeBudget::ratio(0.0).min_per_second(0).burst(1))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    let upstream = Upstream::new(vec![(ms(50), Kind::Ok), (ms(1), Kind::Ok)]);
    assert_eq!(
        layer.layer(upstream.clone()).oneshot(()).await,
        Ok(answer(1))
    );
    let upstream = Upstream::new(vec![(ms(50), Kind::Ok), (ms(1), Kind::Ok)]);
    assert_eq!(
        layer.layer(upstream.clone()).oneshot(()).await,
        Ok(answer(0))
    );
    assert_eq!(upstream.calls(), 1);
    assert_eq!(handle.hedges_sent(), 1);
    assert_eq!(handle.budget_exhausted(), 1);
}

/// #21.2: the budget's floor refills with time.
#[tokio::test(start_paused = true)]
async fn the_budget_floor_refills() {
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .budget(HedgeBudget::ratio(0.0).min_per_second(1).burst(1))
        .classify(classify)
        .build()
        .unwrap();
    let hedged = |upstream: Upstream| {
        let layer = layer.clone();
        async move {
            let _ = layer.layer(upstream.clone()).oneshot(()).await;
            upstream.calls() == 2
        }
    };
    let plan = || vec![(ms(50), Kind::Ok), (ms(1), Kind::Ok)];
    assert!(hedged(Upstream::new(plan())).await);
    assert!(!hedged(Upstream::new(plan())).await);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(hedged(Upstream::new(plan())).await);
}

/// #21.2: server pushback ("do not retry") stops further hedges; attempts in flight go on.
#[tokio::test(start_paused = true)]
async fn pushback_stops_further_hedges() {
    let upstream = Upstream::new(vec![
        (ms(50), Kind::Ok),
        (ms(2), Kind::Pushback),
        (ms(1), Kind::Ok),
    ]);
    let layer = HedgeLayer::builder()
        .delay(ms(10))
        .max_attempts(3)
        .classify(classify)
        .build()
        .unwrap();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(0)));
    assert_eq!(upstream.calls(), 2);
}

/// #21.3: the percentile trigger does not hedge before `min_samples`; then it hedges a request
/// slower than the percentile of the recent ones.
#[tokio::test(start_paused = true)]
async fn the_percentile_trigger_waits_for_samples_then_hedges() {
    let (layer, handle) = HedgeLayer::builder()
        .latency_percentile(90.0)
        .min_samples(10)
        .min_delay(ms(1))
        .window(Duration::from_secs(10))
        .classify(classify)
        .build_with_handle()
        .unwrap();
    // A slow request before any samples: not hedged.
    let upstream = Upstream::new(vec![(ms(200), Kind::Ok), (ms(1), Kind::Ok)]);
    assert_eq!(
        layer.layer(upstream.clone()).oneshot(()).await,
        Ok(answer(0))
    );
    assert_eq!(upstream.calls(), 1);
    assert_eq!(handle.percentile_delay(), None);
    // Ten fast ones (the slow one counts too: 11 samples, p90 is fast).
    for _ in 0..10 {
        let upstream = Upstream::new(vec![(ms(20), Kind::Ok)]);
        layer.layer(upstream).oneshot(()).await.unwrap();
    }
    let delay = handle.percentile_delay().expect("enough samples");
    assert!(delay >= ms(20) && delay <= ms(25), "{delay:?}");
    let upstream = Upstream::new(vec![(ms(200), Kind::Ok), (ms(1), Kind::Ok)]);
    let origin = Instant::now();
    assert_eq!(
        layer.layer(upstream.clone()).oneshot(()).await,
        Ok(answer(1))
    );
    let started = upstream.started_at(origin);
    // Sent once the percentile passed (tokio's timer rounds up to the millisecond).
    assert!(
        started[1] >= delay && started[1] <= delay + ms(1),
        "{started:?}"
    );
}

/// #21.4: hedges sent, hedges won and attempts cancelled reach the observer.
#[tokio::test(start_paused = true)]
async fn events_reach_the_observer() {
    let sent = Arc::new(AtomicU32::new(0));
    let won = Arc::new(AtomicU32::new(0));
    let cancelled = Arc::new(AtomicU32::new(0));
    let (s, w, c) = (sent.clone(), won.clone(), cancelled.clone());
    let observer = move |event: &Event<'_>| match event {
        Event::HedgeSent { attempt, .. } => {
            assert!(*attempt >= 2);
            s.fetch_add(1, Ordering::SeqCst);
        }
        Event::HedgeWon { attempt, .. } => {
            w.fetch_add(*attempt, Ordering::SeqCst);
        }
        Event::Cancelled { attempts, .. } => {
            c.fetch_add(*attempts, Ordering::SeqCst);
        }
        _ => {}
    };
    let layer = HedgeLayer::builder()
        .name("edge")
        .delay(ms(10))
        .max_attempts(3)
        .classify(classify)
        .observer(observer)
        .build()
        .unwrap();
    let upstream = Upstream::new(vec![
        (ms(100), Kind::Ok),
        (ms(100), Kind::Ok),
        (ms(1), Kind::Ok),
    ]);
    assert_eq!(layer.layer(upstream).oneshot(()).await, Ok(answer(2)));
    assert_eq!(sent.load(Ordering::SeqCst), 2);
    assert_eq!(won.load(Ordering::SeqCst), 3); // attempt 3 won
    assert_eq!(cancelled.load(Ordering::SeqCst), 2);
}

/// #21.1: dropping the response future drops every attempt in flight; nothing runs on.
#[tokio::test(start_paused = true)]
async fn dropping_the_future_drops_every_attempt() {
    let upstream = Upstream::new(vec![(ms(100), Kind::Ok); 3]);
    let layer = HedgeLayer::builder()
        .parallel()
        .max_attempts(3)
        .classify(classify)
        .build()
        .unwrap();
    let mut service = layer.layer(upstream.clone());
    let future = ServiceExt::<()>::ready(&mut service)
        .await
        .unwrap()
        .call(());
    let mut task = tokio_test::task::spawn(future);
    assert!(task.poll().is_pending());
    assert_eq!(upstream.live(), 3);
    drop(task);
    assert_eq!(upstream.live(), 0);
}

/// #21.2: a server pushback delay (gRFC A6 `grpc-retry-pushback-ms`, or `Retry-After`) holds the
/// next hedge back by that much instead of sending it at once.
#[tokio::test(start_paused = true)]
async fn a_pushback_delay_holds_the_next_hedge_back() {
    let upstream = Upstream::new(vec![(ms(5), Kind::Wait40), (ms(10), Kind::Ok)]);
    let layer = HedgeLayer::builder()
        .delay(ms(1000))
        .classify(classify)
        .build()
        .unwrap();
    let origin = Instant::now();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(1)));
    assert_eq!(upstream.started_at(origin), vec![ms(0), ms(45)]);
}

/// #21 (keyed): an open circuit of a breaker inside (weir's own rejection, ignored by the
/// classifier) is a non-fatal failure: the next hedge goes at once.
#[tokio::test(start_paused = true)]
async fn an_open_circuit_inside_sends_the_next_hedge_at_once() {
    let upstream = Upstream::new(vec![(ms(1), Kind::CircuitOpen), (ms(10), Kind::Ok)]);
    let layer = HedgeLayer::builder()
        .delay(ms(1000))
        .classify(classify)
        .build()
        .unwrap();
    let origin = Instant::now();
    let out = layer.layer(upstream.clone()).oneshot(()).await;
    assert_eq!(out, Ok(answer(1)));
    assert_eq!(upstream.started_at(origin), vec![ms(0), ms(1)]);
}

/// #21 (A6): every hedge of a gRPC call carries `grpc-previous-rpc-attempts`; the primary none.
#[tokio::test(start_paused = true)]
async fn grpc_hedges_carry_previous_rpc_attempts() {
    use std::sync::Mutex;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let upstream = tower::service_fn(move |req: http::Request<weir_retry::ReplayBody<String>>| {
        let record = Arc::clone(&record);
        async move {
            let previous = req
                .headers()
                .get("grpc-previous-rpc-attempts")
                .map(|v| v.to_str().unwrap().to_owned());
            let n = {
                let mut seen = record.lock().unwrap();
                seen.push(previous);
                seen.len()
            };
            tokio::time::sleep(if n == 3 { ms(1) } else { ms(100) }).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(n))
        }
    });
    let layer = HedgeLayer::grpc()
        .delay(ms(10))
        .max_attempts(3)
        .build()
        .unwrap();
    let request = http::Request::post("/pkg.Svc/Get")
        .body(String::new())
        .unwrap();
    let response = layer.layer(upstream).oneshot(request).await.unwrap();
    assert_eq!(*response.body(), 3);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None, Some("1".to_owned()), Some("2".to_owned())]
    );
}

/// #17.5: `HedgeLayer::new` is the builder's defaults with a delay: the same budget.
#[test]
fn new_has_the_builders_default_budget() {
    use weir_hedge::{DEFAULT_BUDGET_BURST, DEFAULT_BUDGET_MIN_PER_SECOND, DEFAULT_BUDGET_RATIO};
    assert_eq!(
        HedgeBudget::default(),
        HedgeBudget::ratio(DEFAULT_BUDGET_RATIO)
            .min_per_second(DEFAULT_BUDGET_MIN_PER_SECOND)
            .burst(DEFAULT_BUDGET_BURST)
    );
    let from_new = HedgeLayer::new(ms(20)).handle();
    let from_builder = HedgeLayer::builder()
        .delay(ms(20))
        .build()
        .unwrap()
        .handle();
    assert_eq!(
        from_new.budget_available(),
        Some(u64::from(DEFAULT_BUDGET_BURST))
    );
    assert_eq!(from_new.budget_available(), from_builder.budget_available());
}
