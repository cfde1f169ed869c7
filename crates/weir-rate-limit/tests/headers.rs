//! #15.7: the rate-limit fields stay consistent: `r` never above the advertised `q`, every
//! stacked policy listed, one header style for admitted responses and refusals alike.

use std::convert::Infallible;

use http::{HeaderMap, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{response::ErrorResponseLayer, wire::HeaderStyle};
use weir_rate_limit::{Quota, RateLimitBuilder, RateLimitLayer};

/// The limiter built from `builder`, behind `ErrorResponseLayer` (its default style), over a
/// handler answering 200: the status and fields of `n` requests.
async fn responses<X, T, C, O>(
    builder: RateLimitBuilder<X, weir_rate_limit::Gcra, T, C, O, weir_rate_limit::Http>,
    n: usize,
) -> Vec<(StatusCode, HeaderMap)>
where
    X: weir_core::KeyExtractor<Request<()>> + Send + Sync + 'static,
    T: weir_rate_limit::TierOf<X::Key>,
    C: weir_rate_limit::Cost<Request<()>>,
    O: for<'a> weir_core::Observer<weir_rate_limit::Event<'a>> + Send + Sync + 'static,
{
    let limit = builder.build().expect("valid");
    let ok =
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let mut svc = ErrorResponseLayer::new().layer(limit.layer(ok));
    let mut out = Vec::new();
    for _ in 0..n {
        let res = svc
            .ready()
            .await
            .expect("ready")
            .call(Request::new(()))
            .await
            .expect("infallible");
        out.push((res.status(), res.headers().clone()));
    }
    out
}

fn all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// #15.7: with a burst above the rate, `RateLimit`'s `r` never exceeds the `q` that
/// `RateLimit-Policy` advertises on the same response.
#[tokio::test(start_paused = true)]
async fn remaining_never_exceeds_the_advertised_quota() {
    let builder = RateLimitLayer::builder()
        .quota(Quota::per_minute(10).burst(20).named("edge"))
        .http();
    let answers = responses(builder, 21).await;
    let (status, first) = &answers[0];
    assert_eq!(*status, StatusCode::OK);
    assert_eq!(all(first, "ratelimit-policy"), [r#""edge";q=10;w=60"#]);
    assert_eq!(all(first, "ratelimit"), [r#""edge";r=10;t=6"#]);
    let admitted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(admitted, 20, "the burst is still 20");
}

/// #15.7: with stacked quotas every policy is listed in `RateLimit-Policy`, on admitted
/// responses and on refusals, the reported one (fewest units left) first.
#[tokio::test(start_paused = true)]
async fn every_stacked_policy_is_listed() {
    let builder = RateLimitLayer::builder()
        .quota(Quota::per_second(10).named("second"))
        .quota(Quota::per_day(3).named("day"))
        .http();
    let answers = responses(builder, 4).await;
    let (status, admitted) = &answers[0];
    assert_eq!(*status, StatusCode::OK);
    assert_eq!(
        all(admitted, "ratelimit-policy"),
        [r#""day";q=3;w=86400"#, r#""second";q=10;w=1"#]
    );
    assert_eq!(all(admitted, "ratelimit").len(), 1);
    let (status, refused) = &answers[3];
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        all(refused, "ratelimit-policy"),
        [r#""day";q=3;w=86400"#, r#""second";q=10;w=1"#]
    );
}

/// #15.7: the header style set on the limiter is used for its refusals too, whatever the
/// response mapping's own style.
#[tokio::test(start_paused = true)]
async fn the_limiters_header_style_applies_to_refusals_too() {
    let builder = RateLimitLayer::builder()
        .quota(Quota::per_minute(1).named("edge"))
        .response_headers(HeaderStyle::XRateLimit);
    let answers = responses(builder, 2).await;
    for (status, headers) in &answers {
        assert_eq!(headers["x-ratelimit-limit"], "1", "{status}");
        assert!(!headers.contains_key("ratelimit-policy"), "{status}");
    }
    assert_eq!(answers[1].0, StatusCode::TOO_MANY_REQUESTS);
    assert!(answers[1].1.contains_key("retry-after"));
}
