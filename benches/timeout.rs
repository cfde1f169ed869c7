//! weir's timeout against the bare floor and tower's `Timeout`: the happy path (the inner
//! future is ready on its first poll: weir arms no timer) and the pending path (the inner future
//! is pending once: both arm a timer); each on 1 and 2 threads, with allocations per call. Then
//! the allocations of an `http::Request` through weir's timeout, whose deadline is stored in the
//! request's extensions.
//!
//! `cargo bench --bench timeout -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Layer, Service, service_fn};

use crate::support::{Bench, Req, allocations, bare, runtime_1_thread};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A service whose future is pending on its first poll (it wakes itself at once) and ready on
/// the second: the path on which a timer must be armed.
#[derive(Clone, Copy, Debug)]
struct YieldOnce;

#[derive(Debug)]
struct YieldOnceFuture {
    req: Req,
    yielded: bool,
}

impl Service<Req> for YieldOnce {
    type Response = Req;
    type Error = Infallible;
    type Future = YieldOnceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> YieldOnceFuture {
        YieldOnceFuture {
            req,
            yielded: false,
        }
    }
}

impl Future for YieldOnceFuture {
    type Output = Result<Req, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yielded {
            Poll::Ready(Ok(self.req.wrapping_add(1)))
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn timeout(c: &mut Criterion) {
    let mut bench = Bench::new(c, "timeout");
    bench.service("service_fn", bare);
    bench.service("tower-timeout", || {
        tower::timeout::TimeoutLayer::new(TIMEOUT).layer(bare())
    });
    bench.service("weir-timeout", || {
        weir_timeout::TimeoutLayer::new(TIMEOUT).layer(bare())
    });
    bench.finish();

    let mut bench = Bench::new(c, "timeout-pending");
    bench.service("yield-once", || YieldOnce);
    bench.service("tower-timeout", || {
        tower::timeout::TimeoutLayer::new(TIMEOUT).layer(YieldOnce)
    });
    bench.service("weir-timeout", || {
        weir_timeout::TimeoutLayer::new(TIMEOUT).layer(YieldOnce)
    });
    bench.finish();

    http_allocations();
}

/// Allocations per call of an `http::Request<()>` through a bare service and through weir's
/// timeout (which stores the `Deadline` in the request's extensions).
fn http_allocations() {
    const CALLS: u64 = 10_000;
    let rt = runtime_1_thread();
    let measure = |name: &str, svc: &mut dyn FnMut(http::Request<()>) -> u64| {
        let before = allocations().0;
        for _ in 0..CALLS {
            black_box(svc(http::Request::new(())));
        }
        let per_call = (allocations().0 - before) as f64 / CALLS as f64;
        eprintln!("timeout-http.{name}: {per_call:.2} allocs/call");
    };
    rt.block_on(async {
        let make = || {
            service_fn(|req: http::Request<()>| async move {
                Ok::<_, Infallible>(req.extensions().len() as u64)
            })
        };
        let mut svc = make();
        let mut weir = weir_timeout::TimeoutLayer::new(TIMEOUT).layer(make());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut call_bare = |req| {
            let mut fut = std::pin::pin!(svc.call(req));
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(n)) => n,
                _ => unreachable!("ready at once"),
            }
        };
        measure("service_fn", &mut call_bare);
        let mut cx = Context::from_waker(waker);
        let mut call_weir = |req| {
            assert!(weir.poll_ready(&mut cx).is_ready());
            let mut fut = std::pin::pin!(weir.call(req));
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(n)) => n,
                _ => unreachable!("ready at once"),
            }
        };
        measure("weir-timeout", &mut call_weir);
    });
}

criterion_group!(benches, timeout);
criterion_main!(benches);
