//! The bulkhead's happy path (a permit free) against the bare floor, tower's
//! `ConcurrencyLimit` (tokio's semaphore through tokio-util's `PollSemaphore`, in `poll_ready`:
//! what the bulkhead's `backpressure()` mode would be on tokio's semaphore) and tokio's
//! semaphore taken with `try_acquire_owned` in `call` (what its default mode would be), on 1 and
//! 2 threads, with allocations per call (#17.10).
//!
//! `cargo bench --bench bulkhead -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service};
use weir_bulkhead::BulkheadLayer;

use crate::support::{Bench, bare};

/// The fast path of a bulkhead on `tokio::sync::Semaphore`, and nothing else: `call` takes a
/// permit with `try_acquire_owned` (none is ever missing here: 64 permits, 2 callers), the
/// response future holds it, and completing the future releases it. A real bulkhead would add
/// its refusal, its queue and its figures on top; this is the least it would cost.
#[derive(Clone)]
struct TokioSemaphore<S> {
    inner: S,
    semaphore: Arc<Semaphore>,
}

pin_project_lite::pin_project! {
    /// The response future of [`TokioSemaphore`]: the inner future and the permit.
    struct Held<F> {
        #[pin]
        future: F,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<S: Service<Req>, Req> Service<Req> for TokioSemaphore<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Held<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Held<S::Future> {
        let permit = Arc::clone(&self.semaphore)
            .try_acquire_owned()
            .expect("64 permits for 2 callers");
        Held {
            future: self.inner.call(req),
            permit: Some(permit),
        }
    }
}

impl<F: Future> Future for Held<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.future.poll(cx));
        drop(this.permit.take());
        Poll::Ready(output)
    }
}

fn bulkhead(c: &mut Criterion) {
    let mut bench = Bench::new(c, "bulkhead");
    bench.service("service_fn", bare);
    // Far more permits than the 2 concurrent tasks ever hold: the fast path, never a wait.
    bench.service("tower-concurrency-limit", || {
        ConcurrencyLimitLayer::new(64).layer(bare())
    });
    bench.service("tokio-semaphore", || TokioSemaphore {
        inner: bare(),
        semaphore: Arc::new(Semaphore::new(64)),
    });
    bench.service("weir-bulkhead", || BulkheadLayer::new(64).layer(bare()));
    bench.service("weir-bulkhead-queueing", || {
        BulkheadLayer::queueing(64, 64, Duration::from_secs(1))
            .build()
            .expect("valid bulkhead")
            .layer(bare())
    });
    bench.service("weir-bulkhead-backpressure", || {
        BulkheadLayer::builder()
            .max_concurrent(64)
            .backpressure()
            .build()
            .expect("valid bulkhead")
            .layer(bare())
    });
    bench.finish();
}

criterion_group!(benches, bulkhead);
criterion_main!(benches);
