//! No allocation per call (#15, the house rule): an admitted request allocates nothing in the
//! limiter, with the `RateLimit` fields on or off. With fields on, the response gets exactly the
//! allocations of writing those fields into it (`http::HeaderValue` holds its bytes on the heap,
//! the response's `HeaderMap` grows to hold them), which a server writing the same fields without
//! a limiter pays too; the limiter's own part (the decision, the fields' state kept in the
//! response future until the response comes) allocates nothing.
//!
//! Counted with `stats_alloc`'s allocator (installed without `unsafe` code), whose counts are
//! process-wide: one test in this binary, on a `current_thread` runtime, so nothing else
//! allocates meanwhile.

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::wire::{HeaderStyle, RateLimitInfo};
use weir_rate_limit::{Quota, RateLimitLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) so far, process-wide.
fn allocations() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

/// An empty GET (no allocation: an empty `String` body, no header).
fn get() -> Request<String> {
    Request::new(String::new())
}

/// A handler answering at once with an empty response (no allocation).
fn handler() -> impl Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<String>, Infallible>>,
> + Clone {
    service_fn(|_: Request<String>| std::future::ready(Ok(Response::new(String::new()))))
}

/// Sends one request through `svc`, which must admit it: the allocations of `call` (the
/// decision and the response future) and of polling the future to its response, and the
/// response's headers.
async fn send<S>(svc: &mut S) -> (usize, usize, HeaderMap)
where
    S: Service<Request<String>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    let svc = svc.ready().await.expect("ready");
    let req = get();
    let before = allocations();
    let future = svc.call(req);
    let called = allocations() - before;
    let before = allocations();
    let res = std::pin::pin!(future);
    let res = poll_once(res).expect("an admitted request answers at once");
    let polled = allocations() - before;
    (
        called,
        polled,
        res.expect("admitted").into_parts().0.headers,
    )
}

/// Polls `future` once with a no-op waker.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// The allocations of writing `info`'s fields in `style` into an empty response, without a
/// limiter, and the fields written.
fn floor(info: &RateLimitInfo, style: HeaderStyle) -> (usize, HeaderMap) {
    let mut res = Response::new(String::new());
    let before = allocations();
    info.write_headers(res.headers_mut(), style);
    (allocations() - before, res.into_parts().0.headers)
}

/// One test (see the module's docs): every case in turn.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_admitted_request_allocates_nothing_but_the_fields_it_writes() {
    // 1. No fields (the default protocol): nothing at all, in `call` or in the future.
    let plain = RateLimitLayer::new(Quota::per_second(10));
    let mut svc = plain.layer(handler());
    send(&mut svc).await; // warm-up: the limiter's state is made on first use.
    let (called, polled, headers) = send(&mut svc).await;
    assert_eq!((called, polled), (0, 0), "no fields");
    assert!(headers.is_empty());

    // 2. IETF fields, one quota: the fields' own allocations, nothing more.
    let ietf = RateLimitLayer::builder()
        .quota(Quota::per_second(10))
        .http()
        .build()
        .expect("valid");
    let mut svc = ietf.layer(handler());
    send(&mut svc).await;
    let (called, polled, headers) = send(&mut svc).await;
    let expected = RateLimitInfo::new("default", 10, Duration::from_secs(1))
        .remaining(8)
        .reset(Duration::from_millis(200));
    let (writing, written) = floor(&expected, HeaderStyle::Ietf);
    eprintln!("IETF, one quota: call {called}, response {polled}, the fields alone {writing}");
    assert_eq!(headers, written, "the fields the floor writes");
    assert_eq!(
        called, 0,
        "the decision and the response future allocate nothing"
    );
    assert_eq!(
        polled, writing,
        "only the fields' values and the header map"
    );

    // 3. Two stacked quotas, both listed in `RateLimit-Policy`, keyed, every style: the same.
    let stacked = RateLimitLayer::builder()
        .quota(Quota::per_second(10).named("burst"))
        .quota(Quota::per_hour(1_000).named(String::from("hourly")))
        .key(|_: &Request<String>| Some(7u64))
        .response_headers(HeaderStyle::Both)
        .build()
        .expect("valid");
    let mut svc = stacked.layer(handler());
    send(&mut svc).await;
    let (called, polled, headers) = send(&mut svc).await;
    let expected = RateLimitInfo::new("burst", 10, Duration::from_secs(1))
        .remaining(8)
        .reset(Duration::from_millis(200))
        .also_policy("hourly", 1_000, Duration::from_secs(3_600));
    let (writing, written) = floor(&expected, HeaderStyle::Both);
    eprintln!("both styles, stacked: call {called}, response {polled}, the fields alone {writing}");
    assert_eq!(headers, written, "the fields the floor writes");
    assert_eq!(headers.get_all("ratelimit-policy").iter().count(), 2);
    assert_eq!(
        called, 0,
        "stacked: the decision and the future allocate nothing"
    );
    assert_eq!(
        polled, writing,
        "stacked: only the fields' values and the header map"
    );
}
