//! A real axum `Router` with two routes on 127.0.0.1, called by a real hyper client: one limiter
//! shared by both routes vs one per route, the 429 and gRPC answers of `ErrorResponseLayer`, and
//! the fields on admitted responses.

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use tower::ServiceBuilder;
use weir_core::response::ErrorResponseLayer;
use weir_rate_limit::{Quota, RateLimitLayer};
use weir_test::http::{connect, serve};

/// Serves `app` on 127.0.0.1 and opens one connection to it.
async fn serve_and_connect(
    app: Router,
) -> (SendRequest<Empty<Bytes>>, tokio::task::JoinHandle<()>) {
    let (addr, server) = serve(app).await;
    (connect(addr).await, server)
}

async fn get_path(
    sender: &mut SendRequest<Empty<Bytes>>,
    path: &str,
    grpc: bool,
) -> (http::response::Parts, Bytes) {
    let mut req = Request::builder().uri(path).header("host", "127.0.0.1");
    if grpc {
        req = req.header("content-type", "application/grpc");
    }
    sender.ready().await.expect("ready");
    let res = sender
        .send_request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.expect("body").to_bytes())
}

fn two_routes() -> Router {
    Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
}

#[tokio::test]
async fn one_layer_on_the_router_is_one_limit_for_both_routes() {
    let limit = RateLimitLayer::builder()
        .quota(Quota::per_minute(2).named("edge"))
        .http()
        .build()
        .expect("valid");
    let app = two_routes().layer(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(limit),
    );
    let (mut client, server) = serve_and_connect(app).await;

    let (parts, body) = get_path(&mut client, "/a", false).await;
    assert_eq!((parts.status, &body[..]), (StatusCode::OK, &b"a"[..]));
    // Admitted responses carry the policy's state: 1 left, full again in 30 s (rounded up).
    assert_eq!(parts.headers["ratelimit-policy"], r#""edge";q=2;w=60"#);
    assert_eq!(parts.headers["ratelimit"], r#""edge";r=1;t=30"#);
    let (parts, _) = get_path(&mut client, "/b", false).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["ratelimit"], r#""edge";r=0;t=60"#);

    // Both routes are now refused: one shared limit. The next unit comes in 30 s.
    for path in ["/a", "/b"] {
        let (parts, body) = get_path(&mut client, path, false).await;
        assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(parts.headers["retry-after"], "30");
        assert_eq!(parts.headers["ratelimit-policy"], r#""edge";q=2;w=60"#);
        assert_eq!(parts.headers["ratelimit"], r#""edge";r=0;t=60"#);
        assert_eq!(body, "rate limited");
    }

    // A gRPC request is refused with RESOURCE_EXHAUSTED by the same mapping.
    let (parts, _) = get_path(&mut client, "/a", true).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["grpc-status"], "8");
    let pushback: u64 = parts.headers["grpc-retry-pushback-ms"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!((29_000..=30_000).contains(&pushback), "{pushback}");
    server.abort();
}

#[tokio::test]
async fn one_layer_per_route_is_one_limit_per_route() {
    let route_limit = || {
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(RateLimitLayer::per_minute(1).build().expect("valid"))
    };
    let app = Router::new()
        .route("/a", get(|| async { "a" }).layer(route_limit()))
        .route("/b", get(|| async { "b" }).layer(route_limit()));
    let (mut client, server) = serve_and_connect(app).await;

    assert_eq!(
        get_path(&mut client, "/a", false).await.0.status,
        StatusCode::OK
    );
    assert_eq!(
        get_path(&mut client, "/b", false).await.0.status,
        StatusCode::OK
    );
    let (parts, _) = get_path(&mut client, "/a", false).await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(parts.headers["retry-after"], "60");
    assert_eq!(
        get_path(&mut client, "/b", false).await.0.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    server.abort();
}

#[tokio::test]
async fn a_sub_second_wait_is_announced_as_one_second_never_zero() {
    let limit = RateLimitLayer::builder()
        .quota(Quota::per_second(4).burst(1).named("fast"))
        .build()
        .expect("valid");
    let app = two_routes().layer(
        ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .layer(limit),
    );
    let (mut client, server) = serve_and_connect(app).await;
    assert_eq!(
        get_path(&mut client, "/a", false).await.0.status,
        StatusCode::OK
    );
    let (parts, _) = get_path(&mut client, "/a", false).await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(parts.headers["retry-after"], "1");
    assert_eq!(parts.headers["ratelimit-policy"], r#""fast";q=4;w=1"#);
    assert_eq!(parts.headers["ratelimit"], r#""fast";r=0;t=1"#);
    server.abort();
}
