//! Client mode never forwards a malformed timeout header (#16.6), and a timeout says whose
//! deadline ran out (#16.1): the caller's (`is_caller_deadline`) or the layer's own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Deadline, Error};
use weir_timeout::TimeoutLayer;

/// A transport that records the headers it was sent.
fn recording() -> (
    impl Service<Request<()>, Response = Response<()>, Error = BoxError> + Clone,
    Arc<Mutex<Vec<HeaderMap>>>,
) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sent);
    let svc = service_fn(move |req: Request<()>| {
        seen.lock().unwrap().push(req.headers().clone());
        std::future::ready(Ok::<_, BoxError>(Response::new(())))
    });
    (svc, sent)
}

fn with(headers: &[(&'static str, &'static str)]) -> Request<()> {
    let mut req = Request::builder().uri("http://upstream/");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).unwrap()
}

/// #16.6: with no deadline in force, a malformed `x-timeout-ms` or `grpc-timeout` is dropped,
/// never sent on as it came.
#[tokio::test(start_paused = true)]
async fn a_malformed_header_with_no_deadline_is_dropped() {
    let (transport, sent) = recording();
    let client = TimeoutLayer::builder()
        .propagate(Duration::from_millis(10))
        .build()
        .unwrap()
        .layer(transport);
    for headers in [
        [("x-timeout-ms", "abc"), ("x-other", "kept")],
        [("grpc-timeout", "123456789n"), ("x-other", "kept")],
        [("x-timeout-ms", "-5"), ("x-other", "kept")],
    ] {
        client.clone().oneshot(with(&headers)).await.unwrap();
        let sent = sent.lock().unwrap();
        let last = sent.last().unwrap();
        assert!(last.get("x-timeout-ms").is_none(), "{headers:?}: {last:?}");
        assert!(last.get("grpc-timeout").is_none(), "{headers:?}: {last:?}");
        assert_eq!(last["x-other"], "kept");
    }
}

/// #16.6: with a deadline in force, a malformed header is replaced by the budget (in the
/// request's own protocol), and the other protocol's malformed header is removed.
#[tokio::test(start_paused = true)]
async fn a_malformed_header_is_replaced_by_the_budget() {
    let (transport, sent) = recording();
    let client = TimeoutLayer::builder()
        .timeout(Duration::from_secs(2))
        .propagate(Duration::from_millis(100))
        .build()
        .unwrap()
        .layer(transport);
    client
        .clone()
        .oneshot(with(&[("x-timeout-ms", "abc"), ("grpc-timeout", "1x")]))
        .await
        .unwrap();
    client
        .clone()
        .oneshot(with(&[
            ("content-type", "application/grpc"),
            ("grpc-timeout", "123456789n"),
            ("x-timeout-ms", "abc"),
        ]))
        .await
        .unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent[0]["x-timeout-ms"], "1900");
    assert!(sent[0].get("grpc-timeout").is_none());
    assert_eq!(sent[1]["grpc-timeout"], "1900000u");
    assert!(sent[1].get("x-timeout-ms").is_none());
}

/// #16.6 and #16.1: a budget no larger than the allowance is never sent (no zero, expired or
/// negative budget goes out), and the refusal is the caller's deadline, not the upstream's
/// failure.
#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_is_never_sent_and_is_the_callers() {
    let (transport, sent) = recording();
    let client = TimeoutLayer::builder()
        .timeout(Duration::from_secs(2))
        .propagate(Duration::from_millis(50))
        .build()
        .unwrap()
        .layer(transport);
    for headers in [
        [("x-timeout-ms", "0")],
        [("x-timeout-ms", "50")],
        [("grpc-timeout", "0n")],
    ] {
        let err = client.clone().oneshot(with(&headers)).await.unwrap_err();
        let weir = Error::find(&*err).expect("a weir error");
        assert!(
            weir.is_timeout() && weir.is_caller_deadline(),
            "{headers:?}"
        );
    }
    let mut outer = with(&[]);
    Deadline::after(Duration::from_millis(30)).set_earliest(outer.extensions_mut());
    let err = client.clone().oneshot(outer).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_caller_deadline));
    assert!(sent.lock().unwrap().is_empty(), "nothing was sent");
}

/// #16.1: which deadline cut a call short decides the error: the caller's (earlier than the
/// layer's own timeout) or the layer's own.
#[tokio::test(start_paused = true)]
async fn a_timeout_says_whose_deadline_ran_out() {
    let never = service_fn(|_req: Request<()>| async {
        std::future::pending::<Result<Response<()>, BoxError>>().await
    });
    let server = TimeoutLayer::server(Duration::from_secs(10))
        .build()
        .unwrap()
        .layer(never);
    let layer_own = TimeoutLayer::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .layer(never);

    // The client's 20 ms, in server mode: the caller's.
    let err = server
        .clone()
        .oneshot(with(&[("x-timeout-ms", "20")]))
        .await
        .unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_caller_deadline));
    // No header: the server's own maximum: not the caller's.
    let err = server.clone().oneshot(with(&[])).await.unwrap_err();
    let weir = Error::find(&*err).unwrap();
    assert!(weir.is_timeout() && !weir.is_caller_deadline());

    // An outer deadline earlier than the layer's own 100 ms: the caller's.
    let mut req = with(&[]);
    Deadline::after(Duration::from_millis(30)).set_earliest(req.extensions_mut());
    let err = layer_own.clone().oneshot(req).await.unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_caller_deadline));
    // A later outer deadline: the layer's own timeout runs out first.
    let mut req = with(&[]);
    Deadline::after(Duration::from_secs(5)).set_earliest(req.extensions_mut());
    let err = layer_own.clone().oneshot(req).await.unwrap_err();
    assert!(!Error::find(&*err).unwrap().is_caller_deadline());
    // A request with no HTTP parts: only the layer's own timeout exists.
    let plain = TimeoutLayer::new(Duration::from_millis(5)).layer(service_fn(|_: u32| async {
        std::future::pending::<Result<u32, BoxError>>().await
    }));
    let err = plain.oneshot(1).await.unwrap_err();
    assert!(!Error::find(&*err).unwrap().is_caller_deadline());
}

/// #16.2: server mode's floor. Below it, an incoming deadline is refused at once (the handler
/// is not called) or raised to the floor; at or above it, it is honoured as sent.
#[tokio::test(start_paused = true)]
async fn an_incoming_deadline_below_the_floor_is_refused_or_raised() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use weir_timeout::BelowFloor;

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    // A handler that takes 20 ms.
    let handler = service_fn(move |_req: Request<()>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, BoxError>(Response::new(()))
        }
    });
    let reject = TimeoutLayer::server(Duration::from_secs(10))
        .incoming_floor(Duration::from_millis(50), BelowFloor::Reject)
        .build()
        .unwrap()
        .layer(handler.clone());
    let err = reject
        .clone()
        .oneshot(with(&[("x-timeout-ms", "1")]))
        .await
        .unwrap_err();
    let weir = Error::find(&*err).expect("a weir error");
    assert!(weir.is_timeout() && weir.is_caller_deadline());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "refused before the handler"
    );
    reject
        .clone()
        .oneshot(with(&[("x-timeout-ms", "50")]))
        .await
        .expect("at the floor: honoured");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let raise = TimeoutLayer::server(Duration::from_secs(10))
        .incoming_floor(Duration::from_millis(50), BelowFloor::Raise)
        .build()
        .unwrap()
        .layer(handler);
    raise
        .oneshot(with(&[("grpc-timeout", "1m")]))
        .await
        .expect("raised to 50 ms, the 20 ms handler answers");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Without a floor, the same 1 ms is honoured: the 20 ms handler times out.
    let plain = TimeoutLayer::server(Duration::from_secs(10))
        .build()
        .unwrap()
        .layer(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, BoxError>(Response::new(()))
        }));
    assert!(plain.oneshot(with(&[("x-timeout-ms", "1")])).await.is_err());
}

/// #16.2: server mode set to `reject_malformed_incoming(true)` refuses a malformed
/// `x-timeout-ms` / `grpc-timeout` before the handler runs, with a bad request (400 /
/// `INVALID_ARGUMENT`); a well-formed one is honoured as before.
#[tokio::test(start_paused = true)]
async fn a_malformed_incoming_timeout_is_refused_with_400_when_asked() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use weir_core::{response::grpc_code, response::http_status, wire::GrpcCode};

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let handler = service_fn(move |_req: Request<()>| {
        seen.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<_, BoxError>(Response::new(())))
    });
    let strict = TimeoutLayer::server(Duration::from_secs(10))
        .reject_malformed_incoming(true)
        .build()
        .unwrap()
        .layer(handler);
    for bad in [
        with(&[("x-timeout-ms", "abc")]),
        with(&[("grpc-timeout", "123456789n")]),
        // A valid x-timeout-ms does not excuse a malformed grpc-timeout.
        with(&[("grpc-timeout", "1.5S"), ("x-timeout-ms", "100")]),
    ] {
        let err = strict.clone().oneshot(bad).await.unwrap_err();
        let weir = Error::find(&*err).expect("a weir error");
        assert!(weir.is_bad_request() && !weir.is_timeout());
        assert_eq!(http_status(weir), http::StatusCode::BAD_REQUEST);
        assert_eq!(grpc_code(weir), GrpcCode::InvalidArgument);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "refused before the handler"
    );
    strict
        .clone()
        .oneshot(with(&[("x-timeout-ms", "100"), ("grpc-timeout", "1S")]))
        .await
        .expect("well-formed: honoured");
    strict.oneshot(with(&[])).await.expect("none sent: served");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// #16.2: by default server mode ignores a malformed incoming timeout header: the request is
/// served, under the layer's own timeout only.
#[tokio::test(start_paused = true)]
async fn a_malformed_incoming_timeout_is_ignored_by_default() {
    let handler = service_fn(|req: Request<()>| async move {
        // The layer stored no deadline from the malformed header.
        assert!(req.extensions().get::<Deadline>().is_none());
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, BoxError>(Response::new(()))
    });
    let server = TimeoutLayer::server(Duration::from_secs(10))
        .build()
        .unwrap()
        .layer(handler);
    for bad in [
        with(&[("x-timeout-ms", "abc")]),
        with(&[("grpc-timeout", "123456789n")]),
    ] {
        server.clone().oneshot(bad).await.expect("ignored: served");
    }
}
