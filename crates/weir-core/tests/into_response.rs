//! `impl IntoResponse for weir_core::Error` (feature `axum`): a real axum handler calls a
//! weir-wrapped client and passes its refusal on with `?`, served on 127.0.0.1 and called by a
//! real hyper client.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tower::{ServiceExt, service_fn};
use weir_core::wire::RateLimitInfo;
use weir_core::{BoxError, Error};
use weir_test::http::{connect, serve};

/// A downstream client as a weir stack returns it: its error is a `BoxError`, and the layers
/// refuse with a `weir_core::Error` inside it. Here the refusal is chosen by the path.
async fn call_upstream(refusal: &str) -> Result<String, BoxError> {
    let refusal = refusal.to_owned();
    let client = service_fn(move |_req: Request<()>| {
        let refusal = refusal.clone();
        async move {
            let err = match refusal.as_str() {
                "rate-limited" => Error::rate_limited(Duration::from_millis(1500))
                    .with_layer("upstream")
                    .with_rate_limit(
                        RateLimitInfo::new("upstream", 10, Duration::from_secs(1))
                            .remaining(0)
                            .reset(Duration::from_millis(1500)),
                    ),
                "circuit-open" => Error::circuit_open().with_retry_after(Duration::from_secs(30)),
                "timeout" => Error::timeout(),
                "bulkhead-full" => Error::bulkhead_full(),
                _ => return Ok::<_, BoxError>(String::from("inventory: 7")),
            };
            Err(err.into())
        }
    });
    client.oneshot(Request::new(())).await
}

/// The weir refusal in a client's error, to be answered with `?`.
fn refusal(err: BoxError) -> Error {
    *err.downcast::<Error>().expect("a weir refusal")
}

/// A handler whose error is `weir_core::Error`: `?` answers with weir's response for it.
async fn inventory(Path(refusal_kind): Path<String>) -> Result<String, Error> {
    let answer = call_upstream(&refusal_kind).await.map_err(refusal)?;
    Ok(answer)
}

async fn get_path(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (http::response::Parts, Bytes) {
    let req = Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .expect("valid request");
    sender.ready().await.expect("connection ready");
    let res = sender.send_request(req).await.expect("response");
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.expect("body").to_bytes())
}

#[tokio::test]
async fn a_handler_answers_a_weir_error_with_its_mapped_status() {
    let app = Router::new().route("/inventory/{refusal}", get(inventory));
    let (addr, server) = serve(app).await;
    let mut sender = connect(addr).await;

    let (parts, body) = get_path(&mut sender, "/inventory/none").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "inventory: 7");

    let (parts, body) = get_path(&mut sender, "/inventory/rate-limited").await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(parts.headers["retry-after"], "2");
    assert_eq!(parts.headers["ratelimit"], r#""upstream";r=0;t=2"#);
    assert_eq!(parts.headers["ratelimit-policy"], r#""upstream";q=10;w=1"#);
    assert_eq!(parts.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "rate limited");

    let (parts, body) = get_path(&mut sender, "/inventory/circuit-open").await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(parts.headers["retry-after"], "30");
    assert_eq!(body, "circuit open");

    let (parts, _) = get_path(&mut sender, "/inventory/bulkhead-full").await;
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!parts.headers.contains_key("retry-after"));

    let (parts, _) = get_path(&mut sender, "/inventory/timeout").await;
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);

    server.abort();
}

#[test]
fn into_response_uses_the_one_status_mapping() {
    use axum::response::IntoResponse;
    use weir_core::response::http_status;

    for err in [
        Error::rate_limited(Duration::from_secs(1)),
        Error::circuit_open(),
        Error::timeout(),
        Error::bulkhead_full(),
        Error::overloaded(),
        Error::retry_budget_exhausted(),
        Error::never_admissible(),
        Error::missing_key(),
        Error::bad_request(),
        Error::caller_deadline(),
    ] {
        let expected = http_status(&err);
        assert_eq!(err.into_response().status(), expected);
    }
}
