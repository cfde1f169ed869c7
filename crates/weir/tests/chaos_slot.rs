//! #24: the presets' chaos slot, innermost. On the client stack it sits around the transport,
//! inside the attempt timeout: the retry, its budget and the breaker outside see every injected
//! fault. On the server stack it sits around the handler, inside the timeout; the health probes
//! bypass it. Unset, it is no layer at all.

#![cfg(all(feature = "presets", feature = "chaos"))]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use weir::chaos::{ChaosLayer, Fault};
use weir::{ClientStack, ServerStack};

/// A transport that counts its calls and answers `n`.
fn counted() -> (
    Arc<AtomicUsize>,
    impl tower::Service<u32, Response = u32, Error = io::Error, Future: Send> + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let transport = service_fn(move |n: u32| {
        counter.fetch_add(1, SeqCst);
        async move { Ok::<_, io::Error>(n) }
    });
    (calls, transport)
}

#[tokio::test(start_paused = true)]
async fn the_retry_and_the_breaker_outside_see_every_injected_fault() {
    let (chaos, faults) = ChaosLayer::builder()
        .error(1.0, || io::Error::other("injected"))
        .seed(24)
        .build_with_handle()
        .unwrap();
    let stack = ClientStack::builder()
        .max_retries(3)
        .seed(24)
        .build()
        .unwrap()
        .chaos(chaos);
    let (calls, transport) = counted();
    let client = ServiceBuilder::new()
        .layer(stack.clone())
        .service(transport);

    let err = client.oneshot(7).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    // The transport was never called: every attempt got the fault, and the retry retried it.
    assert_eq!(calls.load(SeqCst), 0);
    let retries = stack.retry_handle().retries();
    assert_eq!(retries, 3);
    assert_eq!(faults.injected(Fault::Error), retries + 1);
    // The breaker, inside the retry, counted each attempt as a failure.
    let breaker = stack.breaker_handle().snapshot();
    assert_eq!(breaker.failures(), retries + 1);

    // Chaos off at run time: the same stack calls the transport once, and succeeds.
    faults.disable();
    let (calls, transport) = counted();
    let client = ServiceBuilder::new()
        .layer(stack.clone())
        .service(transport);
    assert_eq!(client.oneshot(8).await.unwrap(), 8);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(faults.injected(Fault::Error), retries + 1);
    assert_eq!(stack.retry_handle().retries(), retries);
}

#[tokio::test(start_paused = true)]
async fn the_client_stack_in_the_seeds_order_retries_injected_faults_too() {
    let (chaos, faults) = ChaosLayer::builder()
        .error(1.0, || io::Error::other("injected"))
        .build_with_handle()
        .unwrap();
    let stack = ClientStack::builder()
        .max_retries(2)
        .breaker_outside_retry()
        .build()
        .unwrap()
        .chaos(chaos);
    let (calls, transport) = counted();
    let client = ServiceBuilder::new()
        .layer(stack.clone())
        .service(transport);

    assert!(client.oneshot(1).await.is_err());
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(stack.retry_handle().retries(), 2);
    assert_eq!(faults.injected(Fault::Error), 3);
    // Outside the retry, the breaker counts the logical call once.
    assert_eq!(stack.breaker_handle().snapshot().failures(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_cuts_an_injected_stall() {
    let (chaos, faults) = ChaosLayer::builder()
        .stall(1.0)
        .build_with_handle()
        .unwrap();
    let stack = ClientStack::builder()
        .attempt_timeout(Duration::from_secs(1))
        .total_timeout(Duration::from_secs(10))
        .max_retries(1)
        .build()
        .unwrap()
        .chaos(chaos);
    let (calls, transport) = counted();
    let client = ServiceBuilder::new()
        .layer(stack.clone())
        .service(transport);

    let err = client.oneshot(1).await.unwrap_err();
    assert!(
        weir::core::Error::find(&*err).is_some_and(weir::core::Error::is_timeout),
        "{err}"
    );
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(faults.injected(Fault::Stall), 2);
    assert_eq!(
        stack.bulkhead_handle().stats().in_flight,
        0,
        "every permit returned"
    );
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_server_timeout_answers_an_injected_stall_but_the_probes_bypass_it() {
    let (chaos, faults) = ChaosLayer::http().stall(1.0).build_with_handle().unwrap();
    let stack = ServerStack::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .chaos(chaos);
    let shedder = stack.load_shed();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server =
        ServiceBuilder::new()
            .layer(stack)
            .service(service_fn(move |_req: Request<String>| {
                counter.fetch_add(1, SeqCst);
                async { Ok::<_, io::Error>(Response::new(String::from("hello"))) }
            }));

    let Ok(answer) = server.clone().oneshot(get("/api/items")).await;
    assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(faults.injected(Fault::Stall), 1);
    drop(answer);
    assert_eq!(shedder.stats().in_flight, 0, "the slot was given back");

    let Ok(probe) = server.oneshot(get("/readyz")).await;
    assert_eq!(probe.status(), StatusCode::OK);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(
        faults.injected(Fault::Stall),
        1,
        "the probe bypassed the slot"
    );
}

/// Unset, the slot is no layer at all: `Identity` hands the transport back unchanged, so a
/// stack without chaos has the type it had before the slot (`Client<S>` is `ChaosClient<S,
/// Identity>`), the server's timeout wraps the handler itself (these lines compile only if so),
/// and the transport is called once.
#[tokio::test(start_paused = true)]
async fn an_unset_slot_changes_nothing() {
    use tower::layer::util::Identity;
    use weir::Exempt;
    use weir::core::protocol::Http;
    use weir::core::response::ErrorResponse;
    use weir::load_shed::{Fixed, LoadShed};
    use weir::timeout::Timeout;

    fn shed_over_timeout_over_handler<S, C, O>(
        _: &ErrorResponse<
            Exempt<LoadShed<Timeout<S, Duration, O>, Fixed, C, O, Http>, Timeout<S, Duration, O>>,
        >,
    ) {
    }

    let stack = ClientStack::builder().build().unwrap();
    let _: &Identity = stack.chaos_layer();
    let (calls, transport) = counted();
    let client: weir::ChaosClient<_, Identity> = stack.layer(transport);
    let client: weir::Client<_> = client;
    assert_eq!(client.oneshot(3).await.unwrap(), 3);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(stack.retry_handle().retries(), 0);

    let server_stack = ServerStack::builder().build().unwrap();
    let _: &Identity = server_stack.chaos_layer();
    let handler =
        service_fn(|_: Request<String>| async { Ok::<_, io::Error>(Response::new(String::new())) });
    shed_over_timeout_over_handler(&server_stack.layer(handler));
}
