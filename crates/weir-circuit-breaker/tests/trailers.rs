//! #16.5: a gRPC call's status arrives in its trailers; with `trailers()` the breaker classifies
//! the call there, at the end of the body, not as a success from its `200` head.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_circuit_breaker::{CircuitBreakerLayer, State};
use weir_core::{BoxError, classify::GrpcStatus};

type GrpcBody = http_body_util::combinators::WithTrailers<
    Full<Bytes>,
    std::future::Ready<Option<Result<HeaderMap, Infallible>>>,
>;

/// A gRPC server answering every call with one message and `grpc-status: code` in the trailers.
fn server(
    code: &'static str,
) -> impl Service<(), Response = Response<GrpcBody>, Error = BoxError> + Clone {
    service_fn(move |()| {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(code));
        let body = Full::new(Bytes::from_static(b"message"))
            .with_trailers(std::future::ready(Some(Ok(trailers))));
        std::future::ready(Ok::<_, BoxError>(Response::new(body)))
    })
}

/// #16.5: `UNAVAILABLE` in the trailers is the failure it is: the breaker opens (with the head
/// alone, every such call was a success).
#[tokio::test(start_paused = true)]
async fn unavailable_in_the_trailers_opens_the_breaker() {
    let layer = CircuitBreakerLayer::consecutive_failures(3)
        .classifier(GrpcStatus::new())
        .build()
        .unwrap()
        .trailers();
    let handle = layer.handle();
    let client = layer.layer(server("14"));
    for n in 0..3 {
        let response = client.clone().oneshot(()).await.unwrap();
        assert_eq!(handle.state(), State::Closed, "{n}: not ended yet");
        let body = response.into_body().collect().await.unwrap();
        assert_eq!(body.trailers().unwrap()["grpc-status"], "14");
    }
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.snapshot().failures(), 3);

    // The head alone (the default) sees three successes.
    let head = CircuitBreakerLayer::consecutive_failures(3)
        .classifier(GrpcStatus::new())
        .build()
        .unwrap();
    let head_handle = head.handle();
    let client = head.layer(server("14"));
    for _ in 0..3 {
        let response = client.clone().oneshot(()).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(head_handle.state(), State::Closed);
}

/// #16.5: `OK` in the trailers is a success; a body dropped before its end records nothing; a
/// trailers-only error (the status in the head) is classified at once.
#[tokio::test(start_paused = true)]
async fn ok_trailers_succeed_and_an_unread_body_records_nothing() {
    let layer = CircuitBreakerLayer::consecutive_failures(1)
        .classifier(GrpcStatus::new())
        .build()
        .unwrap()
        .trailers();
    let handle = layer.handle();
    let ok = layer.layer(server("0"));
    let response = ok.clone().oneshot(()).await.unwrap();
    response.into_body().collect().await.unwrap();
    assert_eq!(handle.snapshot().calls(), 1);
    assert_eq!(handle.snapshot().failures(), 0);

    let failing = layer.layer(server("14"));
    let response = failing.clone().oneshot(()).await.unwrap();
    drop(response);
    assert_eq!(
        handle.state(),
        State::Closed,
        "dropped unread: nothing recorded"
    );
    assert_eq!(handle.snapshot().calls(), 1);

    let trailers_only = layer.layer(service_fn(|()| async {
        let response = Response::builder()
            .header("grpc-status", "14")
            .body(Full::new(Bytes::new()))
            .unwrap();
        Ok::<_, BoxError>(response)
    }));
    let response = trailers_only.oneshot(()).await.unwrap();
    assert_eq!(handle.state(), State::Open, "settled by the head");
    drop(response);
}
