//! Behaviour on paused time: refusals, keys, tiers, stacked quotas, cost, wait, shadow, headers,
//! drift.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::mock;
use weir_core::{BoxError, Deadline, Error, key::Header, key::MissingKey, wire::HeaderStyle};
use weir_rate_limit::{Event, FixedWindow, LeakyBucket, Quota, RateLimitLayer};

fn echo() -> impl Service<
    u32,
    Response = u32,
    Error = Infallible,
    Future = std::future::Ready<Result<u32, Infallible>>,
> + Clone {
    service_fn(|n: u32| std::future::ready(Ok(n)))
}

async fn hit<S, Req>(svc: &mut S, req: Req) -> Result<S::Response, BoxError>
where
    S: Service<Req, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

fn weir(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

#[tokio::test(start_paused = true)]
async fn refuses_past_the_burst_with_exact_retry_after_and_policy() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(4).burst(2).named("edge"))
        .name("api")
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert_eq!(hit(&mut svc, 1).await.expect("admitted"), 1);
    assert_eq!(hit(&mut svc, 2).await.expect("admitted"), 2);
    let err = hit(&mut svc, 3).await.expect_err("refused");
    let err = weir(&err);
    assert!(err.is_rate_limited());
    assert_eq!(err.layer(), Some("api"));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    let info = err.rate_limit().expect("info");
    assert_eq!(info.policy(), "edge");
    assert_eq!(info.quota(), 4);
    assert_eq!(info.window(), Duration::from_secs(1));
    assert_eq!(info.remaining_units(), 0);
    assert_eq!(info.reset_after(), Duration::from_millis(500));

    advance(Duration::from_millis(249)).await;
    assert!(hit(&mut svc, 4).await.is_err());
    advance(Duration::from_millis(1)).await;
    assert!(hit(&mut svc, 5).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn clones_and_layer_calls_share_one_state() {
    let layer = RateLimitLayer::per_second(3).build().expect("valid");
    let mut a = layer.layer(echo());
    let mut b = layer.clone().layer(echo());
    let mut c = a.clone();
    assert!(hit(&mut a, 1).await.is_ok());
    assert!(hit(&mut b, 1).await.is_ok());
    assert!(hit(&mut c, 1).await.is_ok());
    assert!(hit(&mut a, 1).await.is_err());
    assert!(hit(&mut b, 1).await.is_err());
    // A second layer built separately has its own state.
    let mut other = RateLimitLayer::per_second(3)
        .build()
        .expect("valid")
        .layer(echo());
    assert!(hit(&mut other, 1).await.is_ok());
}

fn tenant_req(tenant: Option<&'static str>) -> Request<()> {
    let mut req = Request::new(());
    if let Some(t) = tenant {
        req.headers_mut()
            .insert("x-tenant", HeaderValue::from_static(t));
    }
    req
}

fn ok_http() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|_req: Request<()>| std::future::ready(Ok(Response::new(()))))
}

#[tokio::test(start_paused = true)]
async fn keys_have_their_own_limits_and_missing_keys_follow_the_setting() {
    let build = |missing| {
        RateLimitLayer::per_minute(1)
            .key(Header::new(http::HeaderName::from_static("x-tenant")))
            .missing_key(missing)
            .build_with_handle()
            .expect("valid")
    };
    let (layer, handle) = build(MissingKey::Shared);
    let mut svc = layer.layer(ok_http());
    assert!(hit(&mut svc, tenant_req(Some("a"))).await.is_ok());
    assert!(hit(&mut svc, tenant_req(Some("a"))).await.is_err());
    assert!(hit(&mut svc, tenant_req(Some("b"))).await.is_ok());
    assert!(hit(&mut svc, tenant_req(None)).await.is_ok());
    assert!(
        hit(&mut svc, tenant_req(None)).await.is_err(),
        "key-less share one state"
    );
    assert_eq!(handle.keys(), 2);

    let (layer, _) = build(MissingKey::Bypass);
    let mut svc = layer.layer(ok_http());
    for _ in 0..5 {
        assert!(hit(&mut svc, tenant_req(None)).await.is_ok());
    }

    let (layer, _) = build(MissingKey::Reject);
    let mut svc = layer.layer(ok_http());
    let err = hit(&mut svc, tenant_req(None)).await.expect_err("refused");
    // #27.6: a missing key is not a rate limit a client could wait out.
    assert!(weir(&err).is_missing_key());
    assert!(!weir(&err).is_rate_limited());
    assert_eq!(weir(&err).retry_after(), None);
    let res = weir_core::response::ErrorResponseLayer::new().http_response::<String>(weir(&err));
    assert_eq!(res.status(), http::StatusCode::UNAUTHORIZED);
}

#[tokio::test(start_paused = true)]
async fn tiers_give_keys_their_own_quotas() {
    let layer = RateLimitLayer::per_minute(1)
        .tier("gold", [Quota::per_minute(3).named("gold")])
        .key(Header::new(http::HeaderName::from_static("x-tenant")))
        .tier_of(|key: &HeaderValue| (key.as_bytes() == b"vip").then_some("gold"))
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok_http());
    for _ in 0..3 {
        assert!(hit(&mut svc, tenant_req(Some("vip"))).await.is_ok());
    }
    let err = hit(&mut svc, tenant_req(Some("vip")))
        .await
        .expect_err("refused");
    assert_eq!(weir(&err).rate_limit().expect("info").policy(), "gold");
    assert!(hit(&mut svc, tenant_req(Some("free"))).await.is_ok());
    assert!(hit(&mut svc, tenant_req(Some("free"))).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn stacked_quotas_all_apply_and_a_refusal_charges_none() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(2).named("second"))
        .quota(Quota::per_minute(5).named("minute"))
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(hit(&mut svc, 1).await.is_ok());
    assert!(hit(&mut svc, 1).await.is_ok());
    // Many refusals by "second": none of them may be charged to "minute".
    for _ in 0..10 {
        let err = hit(&mut svc, 1).await.expect_err("refused");
        assert_eq!(weir(&err).rate_limit().expect("info").policy(), "second");
    }
    advance(Duration::from_secs(1)).await;
    assert!(hit(&mut svc, 1).await.is_ok());
    assert!(hit(&mut svc, 1).await.is_ok());
    advance(Duration::from_secs(1)).await;
    assert!(hit(&mut svc, 1).await.is_ok(), "5th of the minute");
    let err = hit(&mut svc, 1).await.expect_err("minute exhausted");
    assert_eq!(weir(&err).rate_limit().expect("info").policy(), "minute");
}

#[tokio::test(start_paused = true)]
async fn cost_comes_from_the_request() {
    let layer = RateLimitLayer::per_second(10)
        .cost(|n: &u32| *n)
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(hit(&mut svc, 7).await.is_ok());
    assert!(hit(&mut svc, 4).await.is_err());
    assert!(hit(&mut svc, 3).await.is_ok());
    assert!(hit(&mut svc, 0).await.is_ok(), "free");
    assert!(hit(&mut svc, 11).await.is_err(), "above the burst");
}

#[tokio::test(start_paused = true)]
async fn observer_sees_rejections_with_policy_and_retry_after() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(1).named("one"))
        .observer(move |e: &Event<'_>| {
            let kind = weir_core::Event::kind(e);
            sink.lock().expect("lock").push((
                kind,
                e.policy().map(ToString::to_string),
                e.retry_after(),
            ));
        })
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(hit(&mut svc, 1).await.is_ok());
    assert!(hit(&mut svc, 1).await.is_err());
    assert_eq!(
        *seen.lock().expect("lock"),
        [(
            "rejected",
            Some("one".to_owned()),
            Some(Duration::from_secs(1))
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_never_refuses_but_reports() {
    let shadowed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&shadowed);
    let layer = RateLimitLayer::per_second(2)
        .shadow()
        .observer(move |e: &Event<'_>| {
            assert!(matches!(e, Event::Shadowed { .. }));
            count.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    for n in 0..5 {
        assert_eq!(hit(&mut svc, n).await.expect("never refused"), n);
    }
    assert_eq!(shadowed.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_waits_for_its_turn_in_the_response_future() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(10).burst(1))
        .wait(Duration::from_millis(250))
        .build()
        .expect("valid");
    let (mock, mut handle) = mock::pair::<u32, u32>();
    let mut svc = layer.layer(mock);
    handle.allow(10);

    let mut first = task::spawn(svc.ready().await.expect("ready").call(1));
    let req = handle.next_request().await.expect("called at once");
    req.1.send_response(1);
    assert_eq!(assert_ready!(first.poll()).expect("admitted"), 1);

    let mut second = task::spawn(svc.ready().await.expect("ready").call(2));
    let mut third = task::spawn(svc.ready().await.expect("ready").call(3));
    // A fourth would wait 300 ms: more than the max wait.
    let fourth = svc.ready().await.expect("ready").call(4).await;
    assert!(weir(&fourth.expect_err("refused")).is_rate_limited());
    assert_pending!(second.poll());
    assert_pending!(third.poll());
    assert_pending!(task::spawn(handle.next_request()).poll());

    advance(Duration::from_millis(100)).await;
    assert_pending!(second.poll());
    let mut next = task::spawn(handle.next_request());
    let (n, send) = assert_ready!(next.poll()).expect("second called after 100 ms");
    drop(next);
    assert_eq!(n, 2);
    send.send_response(2);
    assert_eq!(assert_ready!(second.poll()).expect("admitted"), 2);

    // Dropping the third, still waiting, gives its turn back: a new request takes it.
    drop(third);
    let mut fifth = task::spawn(svc.ready().await.expect("ready").call(5));
    advance(Duration::from_millis(100)).await;
    assert_pending!(fifth.poll());
    let mut next = task::spawn(handle.next_request());
    let (n, send) =
        assert_ready!(next.poll()).expect("fifth called after 100 ms, in the freed turn");
    drop(next);
    assert_eq!(n, 5);
    send.send_response(5);
    assert_eq!(assert_ready!(fifth.poll()).expect("admitted"), 5);
}

#[tokio::test(start_paused = true)]
async fn wait_is_bounded_by_the_request_deadline() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(1))
        .wait(Duration::from_secs(10))
        .http()
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok_http());
    assert!(hit(&mut svc, Request::new(())).await.is_ok());
    let mut req = Request::new(());
    Deadline::after(Duration::from_millis(500)).set_earliest(req.extensions_mut());
    let err = hit(&mut svc, req).await.expect_err("deadline too close");
    assert_eq!(weir(&err).retry_after(), Some(Duration::from_secs(1)));
    let mut req = Request::new(());
    Deadline::after(Duration::from_secs(2)).set_earliest(req.extensions_mut());
    let start = Instant::now();
    assert!(hit(&mut svc, req).await.is_ok());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn leaky_bucket_smooths_waiters_to_one_per_interval() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(4).burst(3))
        .algorithm(LeakyBucket)
        .wait(Duration::from_secs(5))
        .build()
        .expect("valid");
    let svc = layer.layer(echo());
    let start = Instant::now();
    let mut handles = Vec::new();
    for n in 0..5 {
        let mut svc = svc.clone();
        handles.push(tokio::spawn(async move {
            let res = svc.ready().await?.call(n).await;
            res.map(|_| start.elapsed())
        }));
    }
    let mut times = Vec::new();
    for h in handles {
        times.push(h.await.expect("task").map_err(|e| e.to_string()));
    }
    let ok: Vec<_> = times
        .iter()
        .filter_map(|t| t.as_ref().ok().copied())
        .collect();
    assert_eq!(
        ok,
        [0, 250, 500, 750].map(Duration::from_millis),
        "one leaves every 250 ms; the queue holds 3"
    );
    assert_eq!(times.iter().filter(|t| t.is_err()).count(), 1);
}

#[tokio::test(start_paused = true)]
async fn window_algorithms_work_behind_the_same_layer() {
    let layer = RateLimitLayer::per_second(2)
        .algorithm(FixedWindow)
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(hit(&mut svc, 1).await.is_ok());
    assert!(hit(&mut svc, 1).await.is_ok());
    let err = hit(&mut svc, 1).await.expect_err("refused");
    assert!(weir(&err).retry_after().expect("known") <= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn admitted_http_responses_carry_the_ratelimit_fields() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_minute(10).named("edge"))
        .response_headers(HeaderStyle::Both)
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok_http());
    let res = hit(&mut svc, Request::new(())).await.expect("admitted");
    assert_eq!(res.headers()["ratelimit-policy"], r#""edge";q=10;w=60"#);
    assert_eq!(res.headers()["ratelimit"], r#""edge";r=9;t=6"#);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "9");
    // Without `.http()` nothing is written.
    let plain = RateLimitLayer::per_minute(10).build().expect("valid");
    let res = hit(&mut plain.layer(ok_http()), Request::new(()))
        .await
        .expect("admitted");
    assert!(res.headers().is_empty());
}

/// 1 request per second for 24 hours, tried every 700 ms (so steps never line up with the
/// emission interval), admits exactly 86 400 plus the burst: no fractional loss, no drift.
#[tokio::test(start_paused = true)]
async fn one_per_second_for_a_day_admits_exactly_86400_plus_burst() {
    let burst = 5;
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(1).burst(burst))
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    let start = Instant::now();
    let end = start + Duration::from_secs(86_400);
    let mut admitted = 0u64;
    loop {
        while hit(&mut svc, 0).await.is_ok() {
            admitted += 1;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        advance(Duration::from_millis(700).min(end - now)).await;
    }
    assert_eq!(admitted, 86_400 + u64::from(burst));
}

#[tokio::test(start_paused = true)]
async fn a_sub_millisecond_period_works() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::new(1, Duration::from_micros(100)).burst(1))
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(hit(&mut svc, 0).await.is_ok());
    let err = hit(&mut svc, 0).await.expect_err("refused");
    assert_eq!(weir(&err).retry_after(), Some(Duration::from_micros(100)));
    let mut admitted = 0;
    for _ in 0..1_000 {
        advance(Duration::from_micros(50)).await;
        if hit(&mut svc, 0).await.is_ok() {
            admitted += 1;
        }
    }
    // 50 ms at one per 100 µs.
    assert_eq!(admitted, 500);
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn weir_core_observers_report_rate_limit_events() {
    let layer = RateLimitLayer::per_second(1)
        .observer(weir_core::observer::Tracing)
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(hit(&mut svc, 1).await.is_ok());
    assert!(weir(&hit(&mut svc, 1).await.expect_err("refused")).is_rate_limited());
    let name = weir_core::Name::new("edge");
    let policy = weir_core::Name::default();
    let event = Event::Rejected {
        layer: &name,
        policy: &policy,
        tier: "default",
        retry_after: Duration::from_secs(1),
        cost: 1,
        trace_id: None,
    };
    assert_eq!(weir_core::Event::pattern(&event), "rate_limit");
    assert_eq!(weir_core::Event::kind(&event), "rejected");
    assert_eq!(weir_core::Event::layer(&event).as_str(), "edge");
}

#[tokio::test(start_paused = true)]
async fn evicted_keys_are_reported_to_the_observer_and_counted_on_the_handle() {
    let idle = Duration::from_secs(1);
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&evicted);
    let (layer, handle) = RateLimitLayer::builder()
        .name("edge")
        .quota(Quota::per_second(1))
        .key(|n: &u32| Some(*n))
        .idle_timeout(idle)
        .observer(move |e: &Event<'_>| {
            if let Event::Evicted { layer } = e {
                assert_eq!(weir_core::Event::kind(e), "evicted");
                assert_eq!(weir_core::Event::level(e), weir_core::Level::Debug);
                sink.lock().expect("lock").push(layer.as_str().to_owned());
            }
        })
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(echo());
    for key in 0..100 {
        assert!(hit(&mut svc, key).await.is_ok());
    }
    // Refused while its bucket is empty: a key not yet at rest is never evicted.
    assert!(hit(&mut svc, 7).await.is_err());
    assert_eq!(handle.evicted(), 0);
    // Idle keys go once their buckets are full again, swept by one busy client's requests (it
    // comes every half idle timeout, so it is never idle itself).
    for _ in 0..400 {
        advance(idle / 2).await;
        let _ = hit(&mut svc, 1_000).await;
    }
    assert_eq!(handle.keys(), 1, "only the busy key is left");
    assert_eq!(handle.evicted(), 100);
    let evicted = evicted.lock().expect("lock");
    assert_eq!(evicted.len(), 100, "one event per evicted key");
    assert!(evicted.iter().all(|layer| layer == "edge"));
}
