//! #20: the presets' fallback slot. On the client stack it is outermost, after the retries: a
//! call falls back once, when its retries are spent. On the server stack it is inside the
//! response mapping, the rate limit and the shedder, outside the timeout; the health probes
//! bypass it.

#![cfg(all(feature = "presets", feature = "fallback"))]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use weir::core::BoxError;
use weir::fallback::{Cause, FallbackLayer};
use weir::{ClientStack, ServerStack, core::classify::HttpStatus};

#[tokio::test(start_paused = true)]
async fn the_client_stack_falls_back_after_its_retries() {
    let (fallback, fallbacks) = FallbackLayer::builder()
        .value(|_: Cause<'_, u32, BoxError>| Some(0))
        .build_with_handle()
        .unwrap();
    let stack = ClientStack::builder().build().unwrap().fallback(fallback);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let client = ServiceBuilder::new()
        .layer(stack.clone())
        .service(service_fn(move |_: u32| {
            counted.fetch_add(1, SeqCst);
            async { Err::<u32, _>(io::Error::other("down")) }
        }));

    assert_eq!(client.oneshot(41).await.unwrap(), 0);
    let retries = stack.retry_handle().retries();
    assert!(retries > 0, "the retries ran before the fallback");
    assert_eq!(calls.load(SeqCst) as u64, retries + 1);
    assert_eq!(fallbacks.stats().value, 1);
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_server_stack_falls_back_but_not_for_its_probes() {
    let (fallback, fallbacks) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .value(|_: Cause<'_, Response<String>, BoxError>| Some(Response::new("bestsellers".into())))
        .http()
        .build_with_handle()
        .unwrap();
    let stack = ServerStack::builder().build().unwrap().fallback(fallback);
    let server =
        ServiceBuilder::new()
            .layer(stack)
            .service(service_fn(|_req: Request<String>| async {
                let mut down = Response::new(String::from("down"));
                *down.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, io::Error>(down)
            }));

    let Ok(answer) = server.clone().oneshot(get("/api/recommendations")).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["weir-fallback"], "value");
    // A failing readiness probe stays a failure: the probes bypass the slot.
    let Ok(probe) = server.oneshot(get("/readyz")).await;
    assert_eq!(probe.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(probe.headers().get("weir-fallback").is_none());
    assert_eq!(fallbacks.stats().value, 1);
}

/// An empty slot costs nothing: `Identity` hands the stack's service back unchanged, so the
/// client's outermost service is still the total timeout, and the server's protected branch
/// is still the shedder over the timeout (these calls compile only if so).
#[test]
fn an_empty_slot_is_no_layer_at_all() {
    use std::time::Duration;
    use tower::Layer;
    use weir::Exempt;
    use weir::core::protocol::Http;
    use weir::core::response::ErrorResponse;
    use weir::load_shed::{Fixed, LoadShed};
    use weir::timeout::Timeout;

    fn total_timeout<S, O>(_: &Timeout<S, Duration, O>) {}
    fn shed_over_timeout<S, C, O>(
        _: &ErrorResponse<
            Exempt<LoadShed<Timeout<S, Duration, O>, Fixed, C, O, Http>, Timeout<S, Duration, O>>,
        >,
    ) {
    }

    let transport = service_fn(|n: u32| async move { Ok::<_, io::Error>(n) });
    total_timeout(&ClientStack::builder().build().unwrap().layer(transport));
    let handler =
        service_fn(|_: Request<String>| async { Ok::<_, io::Error>(Response::new(String::new())) });
    shed_over_timeout(&ServerStack::builder().build().unwrap().layer(handler));
}
