//! weir-retry's no-failure path against the bare service and tower's `Retry` with a policy that
//! never retries (but, like every real policy, keeps a copy of the request): for plain `u64`
//! requests (`CloneRequest`) and for HTTP requests with a small body (`HttpReplay`). Each on 1
//! and 2 threads, with allocations per call.
//!
//! `cargo bench --bench retry -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;
use std::future::Ready;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tower::retry::{Policy, RetryLayer as TowerRetryLayer};
use tower::{Layer, ServiceExt, service_fn};
use weir_retry::{ReplayBody, RetryBudget, RetryLayer};

use crate::support::{Bench, Req, bare};

/// tower's `Retry` policy that never retries; it clones the request as a real policy must.
#[derive(Clone, Copy)]
struct NeverRetry;

impl<Res, E> Policy<Req, Res, E> for NeverRetry {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, _: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(*req)
    }
}

/// The same for HTTP requests (which are not `Clone`: rebuilt from their parts).
#[derive(Clone, Copy)]
struct NeverRetryHttp;

impl<Res, E> Policy<Request<Full<Bytes>>, Res, E> for NeverRetryHttp {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        _: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

/// An HTTP GET with one header and a small body, made from the bench's `u64`.
fn http_request(n: Req) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(b"{\"id\":1}")));
    req.headers_mut().insert("x-request", HeaderValue::from(n));
    req
}

fn retry(c: &mut Criterion) {
    let mut bench = Bench::new(c, "retry");
    bench.service("service_fn", bare);
    bench.service("weir-retry", || RetryLayer::new(3).layer(bare()));
    bench.service("weir-retry-no-budget", || {
        RetryLayer::builder()
            .budget(RetryBudget::unlimited())
            .build()
            .expect("valid")
            .layer(bare())
    });
    bench.service("tower-retry", || {
        TowerRetryLayer::new(NeverRetry).layer(bare())
    });

    bench.service("http/service_fn", || {
        service_fn(|_: Request<Full<Bytes>>| async { Ok::<_, Infallible>(Response::new(())) })
            .map_request(http_request)
    });
    bench.service("http/weir-retry", || {
        RetryLayer::http()
            .build()
            .expect("valid")
            .layer(service_fn(|_: Request<ReplayBody<Full<Bytes>>>| async {
                Ok::<_, Infallible>(Response::new(()))
            }))
            .map_request(http_request)
    });
    bench.service("http/tower-retry", || {
        TowerRetryLayer::new(NeverRetryHttp)
            .layer(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(()))
            }))
            .map_request(http_request)
    });
    bench.finish();
}

criterion_group!(benches, retry);
criterion_main!(benches);
