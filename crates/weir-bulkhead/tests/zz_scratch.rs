#![allow(clippy::disallowed_methods, missing_docs)]
use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tower::{Layer, Service, service_fn};
use weir_bulkhead::BulkheadLayer;

#[test]
fn scratch_timing() {
    let mut cx = Context::from_waker(Waker::noop());
    let n = 5_000_000u64;
    let mut svc = BulkheadLayer::new(64).layer(service_fn(|x: u64| ready(Ok::<_, Infallible>(x + 1))));
    let start = Instant::now();
    for i in 0..n {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let fut = pin!(svc.call(i));
        let Poll::Ready(Ok(v)) = fut.poll(&mut cx) else { panic!() };
        std::hint::black_box(v);
    }
    eprintln!("bulkhead: {:.1} ns", start.elapsed().as_nanos() as f64 / n as f64);

    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let start = Instant::now();
    for i in 0..n {
        let p = Arc::clone(&sem).try_acquire_owned().unwrap();
        std::hint::black_box((i, &p));
        drop(p);
    }
    eprintln!("tokio semaphore: {:.1} ns", start.elapsed().as_nanos() as f64 / n as f64);
}
