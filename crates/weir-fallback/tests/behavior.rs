//! Behaviour of the fallback layer under paused time.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::ConfigError;
use weir_core::{
    BoxError, Classify, Error, classify::HttpStatus, degrade::Degraded, degrade::LoadLevel,
};
use weir_fallback::{Cause, Event, FALLBACK_HEADER, FallbackLayer, Reason, Source};

type Counter = Arc<AtomicUsize>;

fn counter() -> Counter {
    Arc::new(AtomicUsize::new(0))
}

/// A primary that counts its calls, waits 10 ms, and answers `Ok(n * 2)` for even `n` and an
/// I/O error for odd `n`.
fn primary(
    calls: &Counter,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |n: u32| {
        calls.fetch_add(1, SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if n.is_multiple_of(2) {
                Ok(n * 2)
            } else {
                Err::<u32, BoxError>(
                    std::io::Error::other(format!("upstream failed on {n}")).into(),
                )
            }
        }
    })
}

/// An alternative that counts its calls and answers `n + 1000`, or fails for `n` above 100.
fn alternative(calls: &Counter) -> impl Service<u32, Response = u32, Error = BoxError> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |n: u32| {
        calls.fetch_add(1, SeqCst);
        async move {
            if n > 100 {
                Err::<u32, BoxError>("alternative down too".into())
            } else {
                Ok(n + 1000)
            }
        }
    })
}

/// #20.1: a value source answers a failure; the closure sees the original error.
#[tokio::test(start_paused = true)]
async fn value_answers_a_failure_with_the_original_error_in_hand() {
    let calls = counter();
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let seen_in = Arc::clone(&seen);
    let (layer, handle) = FallbackLayer::builder()
        .value(move |cause: Cause<'_, u32, BoxError>| {
            *seen_in.lock().unwrap() = cause.error()?.to_string();
            Some(7)
        })
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    assert_eq!(svc.ready().await.unwrap().call(4).await.unwrap(), 8);
    assert_eq!(handle.stats().value, 0, "a success is not a fallback");
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 7);
    assert_eq!(*seen.lock().unwrap(), "upstream failed on 3");
    assert_eq!(handle.stats().value, 1);
    assert_eq!(calls.load(SeqCst), 2);
}

/// #20.1: sources are tried in the order they were added; the first that answers wins, and a
/// source that declines lets the next one try; when all decline the original error comes back.
#[tokio::test(start_paused = true)]
async fn sources_are_tried_in_order_and_the_first_answer_wins() {
    let (calls, alt_calls, value_calls) = (counter(), counter(), counter());
    let value_calls_in = Arc::clone(&value_calls);
    let (layer, handle) = FallbackLayer::builder()
        .service(alternative(&alt_calls))
        .value(move |_: Cause<'_, u32, BoxError>| {
            value_calls_in.fetch_add(1, SeqCst);
            Some(5)
        })
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    // The alternative answers first.
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 1003);
    assert_eq!((alt_calls.load(SeqCst), value_calls.load(SeqCst)), (1, 0));
    // The alternative fails: the value answers.
    assert_eq!(svc.ready().await.unwrap().call(101).await.unwrap(), 5);
    assert_eq!((alt_calls.load(SeqCst), value_calls.load(SeqCst)), (2, 1));
    let stats = handle.stats();
    assert_eq!((stats.service, stats.value, stats.exhausted), (1, 1, 0));

    // Value first, declining for odd errors above 100: then the alternative; then nothing.
    let alt_calls = counter();
    let layer = FallbackLayer::builder()
        .value(|cause: Cause<'_, u32, BoxError>| {
            let text = cause.error()?.to_string();
            (!text.ends_with("101")).then_some(9)
        })
        .service(alternative(&alt_calls))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 9);
    assert_eq!(alt_calls.load(SeqCst), 0, "the value answered first");
    let err = svc.ready().await.unwrap().call(101).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "upstream failed on 101",
        "every source declined"
    );
    assert_eq!(alt_calls.load(SeqCst), 1);
}

/// #20.1: the alternative service is not called when the primary succeeds.
#[tokio::test(start_paused = true)]
async fn the_alternative_is_not_called_when_the_primary_succeeds() {
    let (calls, alt_calls) = (counter(), counter());
    let layer = FallbackLayer::builder()
        .service(alternative(&alt_calls))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    for n in [0, 2, 4, 6] {
        assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n * 2);
    }
    assert_eq!((calls.load(SeqCst), alt_calls.load(SeqCst)), (4, 0));
}

/// #20.1: a dropped (cancelled) request calls no source and emits nothing.
#[tokio::test(start_paused = true)]
async fn a_dropped_request_calls_no_fallback() {
    let (calls, alt_calls, value_calls, events) = (counter(), counter(), counter(), counter());
    let (value_in, events_in) = (Arc::clone(&value_calls), Arc::clone(&events));
    let (layer, handle) = FallbackLayer::builder()
        .value(move |_: Cause<'_, u32, BoxError>| {
            value_in.fetch_add(1, SeqCst);
            Some(1)
        })
        .service(alternative(&alt_calls))
        .observer(move |_: &Event<'_>| {
            events_in.fetch_add(1, SeqCst);
        })
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    let future = svc.ready().await.unwrap().call(3);
    let mut future = tokio_test::task::spawn(future);
    assert!(future.poll().is_pending());
    drop(future);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(value_calls.load(SeqCst), 0);
    assert_eq!(alt_calls.load(SeqCst), 0);
    assert_eq!(events.load(SeqCst), 0);
    assert_eq!(handle.stats().answered() + handle.stats().exhausted, 0);
}

/// #20.1: weir's own rejections (which classifiers ignore) fall back too, and the observer gets
/// the original error by source.
#[tokio::test(start_paused = true)]
async fn weir_rejections_fall_back_and_the_observer_sees_the_error() {
    let open_seen = counter();
    let open_in = Arc::clone(&open_seen);
    let layer = FallbackLayer::builder()
        .value(|_: Cause<'_, u32, BoxError>| Some(0))
        .observer(move |event: &Event<'_>| {
            if let Event::Answered { source, reason, .. } = event {
                assert_eq!((*source, *reason), (Source::Value, Reason::Error));
                if event.weir_error().is_some_and(Error::is_circuit_open) {
                    open_in.fetch_add(1, SeqCst);
                }
            }
        })
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_: u32| async {
            Err::<u32, BoxError>(Error::circuit_open().into())
        }));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 0);
    assert_eq!(open_seen.load(SeqCst), 1);
}

fn http_primary(
    calls: &Counter,
    status: u16,
) -> impl Service<http::Request<()>, Response = http::Response<String>, Error = Infallible> + Clone
{
    let calls = Arc::clone(calls);
    service_fn(move |_req: http::Request<()>| {
        calls.fetch_add(1, SeqCst);
        async move {
            Ok::<_, Infallible>(
                http::Response::builder()
                    .status(status)
                    .body(format!("primary {status}"))
                    .unwrap(),
            )
        }
    })
}

/// #20.1 / #20.4: a 503 the HTTP classifier calls a failure is replaced by a value made from the
/// request's parts; the answer carries the marker header and a `Degraded` extension, so
/// `HttpStatus` outside still classifies it as the original failure.
#[tokio::test(start_paused = true)]
async fn an_http_failure_is_answered_and_marked_as_degraded() {
    let calls = counter();
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .value_from(
            |req: &http::Request<()>| req.uri().clone(),
            |cause: Cause<'_, http::Response<String>, Infallible>, uri: &http::Uri| {
                let status = cause.reason();
                Some(http::Response::new(format!(
                    "static list for {} ({})",
                    uri.path(),
                    status.as_str()
                )))
            },
        )
        .http()
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(http_primary(&calls, 503));
    let req = http::Request::get("/api/recommendations").body(()).unwrap();
    let response = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.body(),
        "static list for /api/recommendations (response)"
    );
    assert_eq!(response.headers()[FALLBACK_HEADER], "value");
    let outcome = Degraded::of(&response).expect("marked");
    assert!(outcome.is_failure());
    let result: Result<_, BoxError> = Ok(response);
    assert!(
        HttpStatus::new().classify(&result).is_failure(),
        "outside, still the failure"
    );
    assert_eq!(handle.stats().value, 1);

    // A 404 is not a failure for `HttpStatus`: handed back as it is, unmarked.
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(http_primary(&calls, 404));
    let req = http::Request::get("/x").body(()).unwrap();
    let response = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers().get(FALLBACK_HEADER).is_none());
    assert!(Degraded::of(&response).is_none());
}

/// #20.2: the handle's flag sends every request to the fallback before the primary is called;
/// lowered, requests reach the primary again.
#[tokio::test(start_paused = true)]
async fn the_flag_sends_traffic_to_the_fallback_first() {
    let calls = counter();
    let (layer, handle) = FallbackLayer::builder()
        .value(|cause: Cause<'_, u32, BoxError>| {
            assert_eq!(cause.reason(), Reason::Flag);
            Some(42)
        })
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    handle.set_forced(true);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 42);
    assert_eq!(calls.load(SeqCst), 0, "the primary was not called");
    assert_eq!((handle.stats().switched, handle.stats().value), (1, 1));
    handle.set_forced(false);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 4);
    assert_eq!(calls.load(SeqCst), 1);
}

/// #20.2: a request at or above the configured load level goes to the fallback first; when no
/// source answers it, the primary is called after all.
#[tokio::test(start_paused = true)]
async fn the_load_level_sends_traffic_to_the_fallback_first() {
    let calls = counter();
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .value(|cause: Cause<'_, http::Response<String>, Infallible>| {
            // Declines switched requests for `/must-answer`... by answering only failures and
            // switched requests whose reason is the switch.
            (cause.reason() == Reason::Switch).then(|| http::Response::new("cheap".to_owned()))
        })
        .at_load(LoadLevel::Elevated)
        .http()
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(http_primary(&calls, 200));
    let at = |level: Option<LoadLevel>| {
        let mut req = http::Request::get("/").body(()).unwrap();
        if let Some(level) = level {
            req.extensions_mut().insert(level);
        }
        req
    };
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(at(Some(LoadLevel::Critical)))
        .await
        .unwrap();
    assert_eq!(r.body(), "cheap");
    assert_eq!(
        Degraded::of(&r).map(|o| o.is_failure()),
        Some(false),
        "no call, no failure"
    );
    let r = svc
        .ready()
        .await
        .unwrap()
        .call(at(Some(LoadLevel::Elevated)))
        .await
        .unwrap();
    assert_eq!(r.body(), "cheap");
    assert_eq!(calls.load(SeqCst), 0);
    for level in [Some(LoadLevel::Normal), None] {
        let r = svc.ready().await.unwrap().call(at(level)).await.unwrap();
        assert_eq!(r.body(), "primary 200");
    }
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(handle.stats().switched, 2);
}

/// #20.2: a switched request no source answers reaches the primary.
#[tokio::test(start_paused = true)]
async fn a_switched_request_no_source_answers_reaches_the_primary() {
    let calls = counter();
    let (layer, handle) = FallbackLayer::builder()
        .value(|_: Cause<'_, u32, BoxError>| None)
        .switch(|n: &u32| *n > 10)
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(primary(&calls));
    assert_eq!(svc.ready().await.unwrap().call(12).await.unwrap(), 24);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!((handle.stats().switched, handle.stats().exhausted), (1, 1));
}

/// A layer without a source is refused at build time, naming the rule.
#[test]
fn a_layer_without_a_source_is_refused() {
    let err = FallbackLayer::builder().build().unwrap_err();
    assert_eq!(err, ConfigError::missing("fallback", "source", ""));
    assert!(
        err.to_string()
            .contains("`source` at least one is required"),
        "{err}"
    );
}

/// #20.1: a gRPC response whose `grpc-status` the gRPC classifier calls a failure
/// (`UNAVAILABLE`) falls back; an `OK` one does not.
#[tokio::test(start_paused = true)]
async fn a_grpc_failure_code_falls_back() {
    let layer = FallbackLayer::builder()
        .classify(weir_core::classify::GrpcStatus::new())
        .value(|cause: Cause<'_, http::Response<String>, Infallible>| {
            let Cause::Response(failed) = cause else {
                return None;
            };
            assert_eq!(failed.headers()["grpc-status"], "14");
            Some(http::Response::new("from the fallback".to_owned()))
        })
        .http()
        .build()
        .unwrap();
    let upstream = service_fn(|req: http::Request<()>| async move {
        let code = if req.uri().path() == "/down" {
            "14"
        } else {
            "0"
        };
        Ok::<_, Infallible>(
            http::Response::builder()
                .header("grpc-status", code)
                .body("from the server".to_owned())
                .unwrap(),
        )
    });
    let mut svc = ServiceBuilder::new().layer(layer).service(upstream);
    let call = |path: &str| http::Request::post(path).body(()).unwrap();
    let down = svc
        .ready()
        .await
        .unwrap()
        .call(call("/down"))
        .await
        .unwrap();
    assert_eq!(down.body(), "from the fallback");
    let up = svc.ready().await.unwrap().call(call("/up")).await.unwrap();
    assert_eq!(up.body(), "from the server");
}

/// A request body that cannot be cloned (as a streaming HTTP body).
#[derive(Debug)]
struct Streaming;

/// #20.1: an alternative service for requests that are not `Clone` gets a request rebuilt from
/// the parts copied before the primary was called (here the URI), and only when the primary
/// failed.
#[tokio::test(start_paused = true)]
async fn an_alternative_for_requests_that_are_not_clone() {
    let alt_calls = counter();
    let alt_calls_in = Arc::clone(&alt_calls);
    let statics = service_fn(move |req: http::Request<()>| {
        alt_calls_in.fetch_add(1, SeqCst);
        async move { Ok::<_, Infallible>(http::Response::new(format!("static {}", req.uri().path()))) }
    });
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .service_from(
            statics,
            |req: &http::Request<Streaming>| req.uri().clone(),
            |uri: http::Uri| http::Request::get(uri).body(()).unwrap(),
        )
        .http()
        .build_with_handle()
        .unwrap();
    let upstream = service_fn(|req: http::Request<Streaming>| async move {
        let status = if req.uri().path().starts_with("/down") {
            503
        } else {
            200
        };
        Ok::<_, Infallible>(
            http::Response::builder()
                .status(status)
                .body("dynamic".to_owned())
                .unwrap(),
        )
    });
    let mut svc = ServiceBuilder::new().layer(layer).service(upstream);
    let req = |path: &str| http::Request::get(path).body(Streaming).unwrap();
    let up = svc.ready().await.unwrap().call(req("/page")).await.unwrap();
    assert_eq!(up.body(), "dynamic");
    assert_eq!(alt_calls.load(SeqCst), 0);
    let down = svc
        .ready()
        .await
        .unwrap()
        .call(req("/down/page"))
        .await
        .unwrap();
    assert_eq!(down.body(), "static /down/page");
    assert_eq!(down.headers()[FALLBACK_HEADER], "service");
    assert_eq!((alt_calls.load(SeqCst), handle.stats().service), (1, 1));
}
