//! HTTP mode: statuses and gRPC codes, failing bodies, the route prefix, the stall that ends at
//! the request's deadline, and the fault header (off unless allowed), in process and through a
//! real axum server on 127.0.0.1.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_chaos::{BodyFault, ChaosLayer, FAULT_HEADER, Fault};
use weir_core::Deadline;
use weir_core::wire::GrpcCode;

fn upstream()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello world"))))
    })
}

fn get_path(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_status_fault_answers_the_status_and_a_grpc_request_its_code() {
    let layer = ChaosLayer::http()
        .status(1.0, StatusCode::BAD_GATEWAY)
        .grpc_code(GrpcCode::ResourceExhausted)
        .build()
        .unwrap();
    let mut svc = layer.layer(upstream());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get_path("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    let grpc = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = svc.ready().await.unwrap().call(grpc).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "8");
}

#[tokio::test(start_paused = true)]
async fn a_body_fault_cuts_the_body_after_its_bytes() {
    let layer = ChaosLayer::http().failing_body(1.0, 5).build().unwrap();
    let mut svc = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Chunks(
            vec!["hello", " ", "world"].into_iter(),
        )))
    }));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get_path("/"))
        .await
        .unwrap();
    assert!(res.body().is_failing());
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "hello");
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(err.downcast_ref::<BodyFault>().is_some(), "{err}");
    assert!(body.frame().await.is_none(), "it ends after the failure");

    // A body shorter than the limit fails where it would have ended.
    let layer = ChaosLayer::http()
        .failing_body(1.0, 1 << 20)
        .build()
        .unwrap();
    let res = layer
        .layer(upstream())
        .oneshot(get_path("/"))
        .await
        .unwrap();
    assert!(res.into_body().collect().await.is_err());
}

/// A body of ready chunks.
struct Chunks(std::vec::IntoIter<&'static str>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.0
                .next()
                .map(|s| Ok(http_body::Frame::data(Bytes::from(s)))),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn a_route_prefix_selects_its_paths_only() {
    let layer = ChaosLayer::http()
        .status(1.0, StatusCode::INTERNAL_SERVER_ERROR)
        .route_prefix("/api")
        .build()
        .unwrap();
    let mut svc = layer.layer(upstream());
    for (path, status) in [
        ("/api/users", 500),
        ("/api", 500),
        ("/apix", 200),
        ("/", 200),
    ] {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(get_path(path))
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_http_stall_answers_504_at_the_requests_deadline() {
    let layer = ChaosLayer::http().stall(1.0).build().unwrap();
    let mut svc = layer.layer(upstream());
    let mut req = get_path("/");
    Deadline::after(Duration::from_secs(2)).set_earliest(req.extensions_mut());
    svc.ready().await.unwrap();
    let mut call = task::spawn(svc.call(req));
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_pending!(call.poll());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        assert_ready!(call.poll()).unwrap().status(),
        StatusCode::GATEWAY_TIMEOUT
    );
}

fn with_header(value: &'static str) -> Request<()> {
    Request::get("/")
        .header(FAULT_HEADER, value)
        .body(())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_fault_header_does_nothing_unless_the_layer_allows_it() {
    let (layer, handle) = ChaosLayer::http().build_with_handle().unwrap();
    let mut svc = layer.layer(upstream());
    for value in ["status=500", "error", "stall", "body", "latency=5s"] {
        let start = tokio::time::Instant::now();
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(with_header(value))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{value}");
        assert!(!res.body().is_failing(), "{value}");
        assert!(start.elapsed().is_zero(), "{value}");
    }
    assert_eq!(handle.injected_total(), 0);

    let (layer, handle) = ChaosLayer::http()
        .fault_header(true)
        .build_with_handle()
        .unwrap();
    let mut svc = layer.layer(upstream());
    let start = tokio::time::Instant::now();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(with_header("status=500, latency=5s"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(
        (
            handle.injected(Fault::Status),
            handle.injected(Fault::Latency)
        ),
        (1, 1)
    );
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get_path("/"))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "no header, no probability: nothing"
    );
}

#[tokio::test]
async fn through_axum_the_header_is_ignored_by_default_and_honoured_when_allowed() {
    async fn status_of(allowed: bool) -> StatusCode {
        let layer = ChaosLayer::http().fault_header(allowed).build().unwrap();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer);
        let (addr, server) = weir_test::http::serve(app).await;
        let mut client = weir_test::http::connect(addr).await;
        let mut req = weir_test::http::get_root();
        req.headers_mut()
            .insert(FAULT_HEADER, "status=503".parse().unwrap());
        let status = client.send_request(req).await.unwrap().status();
        server.abort();
        status
    }
    assert_eq!(status_of(false).await, StatusCode::OK);
    assert_eq!(status_of(true).await, StatusCode::SERVICE_UNAVAILABLE);
}
