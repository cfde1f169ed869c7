//! weir-fallback's happy path (the primary succeeds) against the bare service: a value source
//! (copies nothing from the request), an alternative service (keeps a copy of the request, a
//! `u64` here), and a value with a switch that never fires. Over the floor (an inner service whose
//! future is an `async` block, the shape of a real handler's future, which the fallback's future
//! wraps by value) and, for reference, over a `std::future::ready` floor (the `-ready` rows). Each on 1 and 2 threads, with allocations per call.
//!
//! The `http-*` rows drive an HTTP service through an adapter that makes a `GET /items` of each
//! `u64` and reads the response body to its end: over the bare HTTP service (the floor), under
//! a fallback with a value source (the HTTP happy path), and under a fallback with the last good
//! answer store, which copies every good answer as it streams and stores it under one short
//! lock when its body ends (the separate figure the issue asks for).
//!
//! `cargo bench --bench fallback -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{classify::HttpStatus, key::MethodPath};
use weir_fallback::{Cause, FallbackLayer, LastGood};

use crate::support::{Bench, Req, bare, bare_ready};

fn value(cause: Cause<'_, Req, Infallible>) -> Option<Req> {
    let _ = cause;
    Some(0)
}

type HttpReq = http::Request<()>;
type HttpRes = http::Response<Full<Bytes>>;

/// The HTTP floor: a `200 OK` with a 64-byte body, from an `async` block.
fn http_bare()
-> impl Service<HttpReq, Response = HttpRes, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    service_fn(|_req: HttpReq| async move {
        Ok(http::Response::new(Full::new(Bytes::from_static(&[7; 64]))))
    })
}

/// Drives `svc` with `u64`s: a `GET /items` each, its response body read to its end.
fn http_adapter<S, B>(
    svc: S,
) -> impl Service<Req, Response = Req, Error = Infallible, Future: Send> + Clone + Send + 'static
where
    S: Service<HttpReq, Response = http::Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: axum::body::HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    service_fn(move |n: Req| {
        let svc = svc.clone();
        async move {
            let req = http::Request::get("/items")
                .body(())
                .expect("valid request");
            let res = svc.oneshot(req).await?;
            let body = res.into_body().collect().await.expect("the body ends");
            drop(body);
            Ok(n)
        }
    })
}

fn http_value(_: Cause<'_, HttpRes, Infallible>) -> Option<HttpRes> {
    Some(http::Response::new(Full::new(Bytes::new())))
}

fn fallback(c: &mut Criterion) {
    let mut bench = Bench::new(c, "fallback");
    bench.service("service_fn", bare);
    bench.service("weir-fallback-value", || {
        FallbackLayer::builder()
            .value(value)
            .build()
            .expect("valid fallback")
            .layer(bare())
    });
    bench.service("weir-fallback-service", || {
        FallbackLayer::builder()
            .service(bare())
            .build()
            .expect("valid fallback")
            .layer(bare())
    });
    bench.service("weir-fallback-switch", || {
        FallbackLayer::builder()
            .value(value)
            .switch(|req: &Req| *req == u64::MAX)
            .build()
            .expect("valid fallback")
            .layer(bare())
    });
    bench.service("service_fn-ready", bare_ready);
    bench.service("weir-fallback-value-ready", || {
        FallbackLayer::builder()
            .value(value)
            .build()
            .expect("valid fallback")
            .layer(bare_ready())
    });
    bench.service("http-floor", || http_adapter(http_bare()));
    bench.service("http-weir-fallback-value", || {
        let layer = FallbackLayer::builder()
            .classify(HttpStatus::new())
            .value(http_value)
            .http()
            .build()
            .expect("valid fallback");
        http_adapter(layer.layer(http_bare()))
    });
    bench.service("http-weir-fallback-last-good", || {
        let layer = FallbackLayer::builder()
            .classify(HttpStatus::new())
            .last_good(LastGood::new(MethodPath))
            .build()
            .expect("valid fallback");
        http_adapter(layer.layer(http_bare()))
    });
    bench.finish();
}

criterion_group!(benches, fallback);
criterion_main!(benches);
