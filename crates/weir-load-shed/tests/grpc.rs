//! #16.5: in `Http` mode a gRPC call counts by its status, which arrives in the trailers at the
//! end of the body (or in the head of a trailers-only answer), not as a success from its head.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use weir_load_shed::LoadShedLayer;

/// A response with one message and `grpc-status: code` (and an optional pushback) in its
/// trailers.
fn grpc(
    code: &'static str,
    pushback: bool,
) -> Response<
    http_body_util::combinators::WithTrailers<
        Full<Bytes>,
        std::future::Ready<Option<Result<HeaderMap, Infallible>>>,
    >,
> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(code));
    if pushback {
        trailers.insert("grpc-retry-pushback-ms", HeaderValue::from_static("100"));
    }
    Response::new(
        Full::new(Bytes::from_static(b"message"))
            .with_trailers(std::future::ready(Some(Ok(trailers)))),
    )
}

#[tokio::test(start_paused = true)]
async fn a_grpc_status_in_the_trailers_counts_at_the_end_of_the_body() {
    let layer = LoadShedLayer::http(10).build().unwrap();
    let handle = layer.handle();
    for (code, pushback) in [
        ("14", false),
        ("4", false),
        ("8", false),
        ("8", true),
        ("0", false),
    ] {
        let svc = layer.layer(service_fn(move |_: Request<()>| async move {
            Ok::<_, Infallible>(grpc(code, pushback))
        }));
        let response = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(handle.stats().in_flight, 1, "held by the body");
        response.into_body().collect().await.unwrap();
        assert_eq!(handle.stats().in_flight, 0);
    }
    let stats = handle.stats();
    // UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED without pushback: drops; with
    // pushback (one caller's quota): ignored; OK: a success.
    assert_eq!((stats.dropped, stats.ignored, stats.succeeded), (3, 1, 1));

    // A trailers-only answer: the status is in the head.
    let svc = layer.layer(service_fn(|_: Request<()>| async {
        let response = Response::builder()
            .header("grpc-status", "14")
            .body(Full::new(Bytes::new()))
            .unwrap();
        Ok::<_, Infallible>(response)
    }));
    drop(svc.oneshot(Request::new(())).await.unwrap());
    assert_eq!(handle.stats().dropped, 4);
}
