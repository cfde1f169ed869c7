//! Costs on paused time: a cost no quota can ever admit is its own answer (#15.6), and the
//! leaky bucket with costs (#15.3).

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error, response::ErrorResponseLayer};
use weir_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, RateLimitLayer, SlidingLog, SlidingWindow,
    TokenBucket,
};

fn echo() -> impl Service<
    u32,
    Response = u32,
    Error = Infallible,
    Future = std::future::Ready<Result<u32, Infallible>>,
> + Clone {
    service_fn(|n: u32| std::future::ready(Ok(n)))
}

async fn hit<S>(svc: &mut S, cost: u32) -> Result<u32, BoxError>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    svc.ready().await?.call(cost).await
}

fn weir(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

/// The request is its own cost.
fn own_cost(n: &u32) -> u32 {
    *n
}

/// A limiter of 4 units per second (burst 4) with `algorithm`, each request costing its value;
/// in wait mode (an hour at most) when `wait`.
async fn never_admissible_with<A: Algorithm>(algorithm: A, wait: bool) {
    let name = std::any::type_name::<A>();
    let builder = RateLimitLayer::builder()
        .quota(Quota::per_second(4).named("edge"))
        .algorithm(algorithm)
        .cost(own_cost);
    let layer = if wait {
        builder.wait(Duration::from_secs(3_600)).build()
    } else {
        builder.build()
    }
    .expect("valid");
    let mut svc = layer.layer(echo());
    let start = Instant::now();
    let err = hit(&mut svc, 5).await.expect_err(name);
    assert_eq!(start.elapsed(), Duration::ZERO, "{name}: refused at once");
    let err = weir(&err);
    assert!(err.is_never_admissible(), "{name} (wait {wait}): {err}");
    assert!(!err.is_rate_limited(), "{name}: not a 429 to retry");
    assert_eq!(err.retry_after(), None, "{name}: no retry-after to obey");
    assert_eq!(err.rate_limit().map(|i| i.policy()), Some("edge"));
    // A cost that fits is still admitted, on the same limiter.
    assert_eq!(hit(&mut svc, 4).await.expect(name), 4);
}

/// #15.6: a cost above what the quota can ever admit is refused at once as never admissible,
/// without a retry-after, by every algorithm, in reject and in wait mode (which must not wait
/// for it).
#[tokio::test(start_paused = true)]
async fn a_cost_no_quota_can_ever_admit_is_never_admissible() {
    for wait in [false, true] {
        never_admissible_with(Gcra, wait).await;
        never_admissible_with(TokenBucket, wait).await;
        never_admissible_with(LeakyBucket, wait).await;
        never_admissible_with(FixedWindow, wait).await;
        never_admissible_with(SlidingWindow, wait).await;
        never_admissible_with(SlidingLog, wait).await;
    }
}

/// #15.6: with stacked quotas, a cost one of them can never admit is never admissible even
/// while another would only ask to wait; over HTTP it is a 413 without `Retry-After`.
#[tokio::test(start_paused = true)]
async fn a_stacked_quota_that_can_never_admit_answers_413() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(100))
        .quota(Quota::per_minute(3).named("minute"))
        .cost(|req: &Request<u32>| *req.body())
        .http()
        .build()
        .expect("valid");
    let ok = service_fn(|_req: Request<u32>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let mut svc = ErrorResponseLayer::new().layer(layer.layer(ok));
    let mut send = async |cost: u32| {
        svc.ready()
            .await
            .expect("ready")
            .call(Request::new(cost))
            .await
            .expect("infallible")
    };
    assert_eq!(send(3).await.status(), StatusCode::OK);
    // The minute's quota is spent: a cost of 1 waits (429), a cost of 4 never passes (413).
    let later = send(1).await;
    assert_eq!(later.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(later.headers().contains_key("retry-after"));
    let never = send(4).await;
    assert_eq!(never.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!never.headers().contains_key("retry-after"));
    assert!(
        never.headers()["ratelimit-policy"]
            .to_str()
            .expect("ascii")
            .contains("minute")
    );
}

/// #15.3: the leaky bucket with costs. A cost that fits the bucket (up to its burst) is
/// admitted on a fresh limiter; a refusal's retry-after is exact (waiting it is enough);
/// an admitted response's remaining units are what a next request can really spend at once
/// (0 in reject mode: the queue must drain first).
#[tokio::test(start_paused = true)]
async fn leaky_bucket_costs_are_admitted_and_their_retry_after_is_enough() {
    let (layer, _handle) = RateLimitLayer::builder()
        .quota(Quota::per_second(10).burst(5).named("smooth"))
        .algorithm(LeakyBucket)
        .cost(|req: &Request<u32>| *req.body())
        .http()
        .build_with_handle()
        .expect("valid");
    let ok = service_fn(|_req: Request<u32>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut svc = layer.layer(ok);
    let res = svc
        .ready()
        .await
        .expect("ready")
        .call(Request::new(4))
        .await
        .expect("a cost of 4 fits a burst of 5 on a fresh limiter");
    assert_eq!(res.headers()["ratelimit"], r#""smooth";r=0;t=1"#);
    for cost in [1, 3, 5] {
        let err = svc
            .ready()
            .await
            .expect("ready")
            .call(Request::new(cost))
            .await
            .expect_err("the queue is draining");
        let after = weir(&err).retry_after().expect("a rate-limit refusal");
        assert_eq!(after, Duration::from_millis(400), "cost {cost}");
    }
    // Waiting the retry-after is enough, for any cost that fits.
    advance(Duration::from_millis(400)).await;
    svc.ready()
        .await
        .expect("ready")
        .call(Request::new(5))
        .await
        .expect("admitted after its retry-after");
    // Reject mode: nothing can be spent at once until the queue drains.
    advance(Duration::from_millis(499)).await;
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(Request::new(1))
        .await
        .expect_err("one more millisecond");
    assert_eq!(weir(&err).retry_after(), Some(Duration::from_millis(1)));
}

/// #15.3: in wait mode the remaining units of an admitted leaky-bucket response are the cost a
/// next request can have and still be admitted.
#[tokio::test(start_paused = true)]
async fn leaky_bucket_remaining_is_what_a_next_request_can_spend() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(10).burst(5).named("smooth"))
        .algorithm(LeakyBucket)
        .cost(|req: &Request<u32>| *req.body())
        .wait(Duration::from_secs(10))
        .http()
        .build()
        .expect("valid");
    let ok = service_fn(|_req: Request<u32>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut svc = layer.layer(ok);
    let res = svc
        .ready()
        .await
        .expect("ready")
        .call(Request::new(2))
        .await
        .expect("admitted");
    // 2 units leave over 200 ms; a next request waits for them and its units queue behind:
    // up to 4 more fit the 5 places.
    assert_eq!(res.headers()["ratelimit"], r#""smooth";r=4;t=1"#);
    let start = Instant::now();
    svc.ready()
        .await
        .expect("ready")
        .call(Request::new(4))
        .await
        .expect("the advertised 4 fit");
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}
