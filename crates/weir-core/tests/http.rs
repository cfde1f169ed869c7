//! `ErrorResponseLayer` on a real axum server, called by a real hyper client over 127.0.0.1.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use tower::ServiceBuilder;
use tower::layer::layer_fn;
use tower_service::Service;
use weir_core::response::ErrorResponseLayer;
use weir_core::wire::RateLimitInfo;
use weir_core::{BoxError, Error};
use weir_test::http::{connect, serve};

/// Stands in for a weir rate limiter: refuses requests carrying `x-limit: yes` with a weir error,
/// passes the others to the route.
#[derive(Clone)]
struct LimitOnHeader<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for LimitOnHeader<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(BoxError::from)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if req.headers().get("x-limit").is_some_and(|v| v == "yes") {
            let info = RateLimitInfo::new("edge", 100, Duration::from_secs(60))
                .remaining(0)
                .reset(Duration::from_millis(1500));
            let err = Error::rate_limited(Duration::from_millis(1500))
                .with_layer("edge")
                .with_rate_limit(info);
            return Box::pin(async move { Err(err.into()) });
        }
        let future = self.inner.call(req);
        Box::pin(async move { future.await.map_err(BoxError::from) })
    }
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> (http::response::Parts, Bytes) {
    sender.ready().await.expect("connection ready");
    let res = sender.send_request(req).await.expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts, body)
}

fn request(limited: bool, content_type: Option<&str>) -> Request<Empty<Bytes>> {
    let mut req = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "127.0.0.1");
    if limited {
        req = req.header("x-limit", "yes");
    }
    if let Some(content_type) = content_type {
        req = req.header("content-type", content_type);
    }
    req.body(Empty::new()).expect("valid request")
}

#[tokio::test]
async fn axum_router_answers_weir_errors_without_handle_error_layer() {
    // `Router::layer` demands an infallible service: this compiles only because
    // `ErrorResponse` turns the limiter's errors into responses.
    let app = Router::new().route("/", any(|| async { "hello" })).layer(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(layer_fn(|inner| LimitOnHeader { inner })),
    );
    let (addr, server) = serve(app).await;
    let mut sender = connect(addr).await;

    // Admitted: the handler's response, untouched.
    let (parts, body) = send(&mut sender, request(false, None)).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "hello");
    assert!(!parts.headers.contains_key("retry-after"));

    // Rate limited over HTTP: 429 with Retry-After and the IETF fields.
    let (parts, body) = send(&mut sender, request(true, None)).await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(parts.headers["retry-after"], "2");
    assert_eq!(parts.headers["ratelimit"], r#""edge";r=0;t=2"#);
    assert_eq!(parts.headers["ratelimit-policy"], r#""edge";q=100;w=60"#);
    assert_eq!(parts.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "rate limited");

    // Rate limited over gRPC: a trailers-only RESOURCE_EXHAUSTED.
    let (parts, body) = send(&mut sender, request(true, Some("application/grpc"))).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "application/grpc");
    assert_eq!(parts.headers["grpc-status"], "8");
    assert_eq!(parts.headers["grpc-message"], "rate limited");
    assert_eq!(parts.headers["grpc-retry-pushback-ms"], "1500");
    assert!(body.is_empty());

    server.abort();
}
