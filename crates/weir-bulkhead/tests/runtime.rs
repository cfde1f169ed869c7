//! The dedicated-runtime bulkhead: a blocking inner service does not delay a second service on
//! the main runtime, and dropping the layer shuts its runtime down without waiting.
#![cfg(feature = "runtime")]

use std::convert::Infallible;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tower::{Layer, ServiceExt, service_fn};
use weir_bulkhead::{BulkheadLayer, IsolatedLayer};

/// A service whose future blocks its thread (a synchronous driver, a CPU-bound parser) until
/// the test sends on the channel.
fn blocking_service(
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    started: mpsc::Sender<String>,
) -> impl tower::Service<(), Response = &'static str, Error = Infallible, Future: Send> + Clone {
    service_fn(move |()| {
        let (release, started) = (Arc::clone(&release), started.clone());
        async move {
            let name = thread::current().name().unwrap_or("").to_owned();
            started.send(name).unwrap();
            // Blocks the thread, not just the task.
            release.lock().unwrap().recv().unwrap();
            Ok::<_, Infallible>("slow answer")
        }
    })
}

// A current_thread runtime: without isolation, the blocking call would freeze everything on it.
#[tokio::test(flavor = "current_thread")]
async fn a_blocking_service_does_not_delay_the_main_runtime() {
    let (release_tx, release_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let isolated = IsolatedLayer::builder()
        .worker_threads(1)
        .thread_name("weir-test-isolated")
        .build()
        .unwrap();
    let (bulkhead, handle) = BulkheadLayer::builder()
        .max_concurrent(1)
        .build_with_handle()
        .unwrap();
    let slow = bulkhead.layer(isolated.layer(blocking_service(
        Arc::new(Mutex::new(release_rx)),
        started_tx,
    )));
    let fast = service_fn(|n: u32| async move { Ok::<_, Infallible>(n * 2) });

    let slow_call = tokio::spawn(slow.clone().oneshot(()));
    // Wait (off the runtime) until the blocking future runs on the dedicated thread.
    let thread_name = tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    assert_eq!(thread_name, "weir-test-isolated");

    // The main runtime is free: other services answer at once.
    for n in 0..100 {
        assert_eq!(fast.oneshot(n).await.unwrap(), n * 2);
    }
    assert!(!slow_call.is_finished(), "the slow call is still blocked");
    assert_eq!(handle.stats().in_flight, 1);

    release_tx.send(()).unwrap();
    assert_eq!(slow_call.await.unwrap().unwrap(), "slow answer");
    assert_eq!(handle.stats().in_flight, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_layer_shuts_the_runtime_down_in_the_background() {
    let (release_tx, release_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let isolated = IsolatedLayer::builder().worker_threads(1).build().unwrap();
    let runtime = isolated.handle().clone();
    let svc = isolated.layer(blocking_service(
        Arc::new(Mutex::new(release_rx)),
        started_tx,
    ));
    let call = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();

    // Dropping everything returns at once, though a task still blocks a worker thread (and
    // dropping a runtime inside async code would panic: the shutdown is in the background).
    drop((isolated, svc));
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    release_tx.send(()).unwrap();

    // The runtime is shut down: new work is cancelled, never run.
    let after = runtime.spawn(async { 1 });
    assert!(after.await.unwrap_err().is_cancelled());
}

#[test]
fn zero_worker_threads_is_a_config_error() {
    let err = IsolatedLayer::builder()
        .worker_threads(0)
        .build()
        .expect_err("no threads");
    assert!(err.is_zero() && err.field() == "worker_threads", "{err}");
}
