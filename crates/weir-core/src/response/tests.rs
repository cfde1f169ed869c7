use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::ServiceExt;

use std::error::Error as StdError;
use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;

use super::*;
use crate::wire::*;
use tower_layer::Layer;
use tower_service::Service;

use super::body::push_json_string;
use super::layer::grpc_message;
use crate::protocol::is_grpc;
use crate::{BoxError, Error};

type Res = Response<ResponseBody<Full<Bytes>>>;

fn http(err: &Error) -> Res {
    ErrorResponseLayer::new().http_response(err)
}

fn grpc(err: &Error) -> Res {
    ErrorResponseLayer::new().grpc_response(err)
}

async fn body_text(res: Res) -> String {
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn header<'a>(res: &'a Res, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().expect("ASCII"))
}

fn edge_limit() -> RateLimitInfo {
    RateLimitInfo::new("edge", 100, Duration::from_secs(60))
        .remaining(0)
        .reset(Duration::from_millis(1500))
}

#[test]
fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
    for (after, expected) in [
        (Duration::from_millis(1500), "2"),
        (Duration::ZERO, "1"),
        (Duration::from_millis(200), "1"),
        (Duration::from_secs(3), "3"),
        (Duration::from_nanos(3_000_000_001), "4"),
    ] {
        let res = http(&Error::rate_limited(after));
        assert_eq!(header(&res, "retry-after"), Some(expected), "{after:?}");
    }
}

#[tokio::test]
async fn rate_limited_is_429_with_ietf_fields_and_a_text_body() {
    let res = http(&Error::rate_limited(Duration::from_millis(1500)).with_rate_limit(edge_limit()));
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), Some("2"));
    assert_eq!(
        header(&res, "ratelimit-policy"),
        Some(r#""edge";q=100;w=60"#)
    );
    assert_eq!(header(&res, "ratelimit"), Some(r#""edge";r=0;t=2"#));
    assert_eq!(header(&res, "x-ratelimit-limit"), None);
    assert_eq!(
        header(&res, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(res.body().size_hint().exact(), Some(12));
    assert_eq!(body_text(res).await, "rate limited");
}

#[test]
fn header_style_selects_the_rate_limit_fields() {
    let err = Error::rate_limited(Duration::from_millis(1500)).with_rate_limit(edge_limit());
    let legacy: Res = ErrorResponseLayer::new()
        .header_style(HeaderStyle::XRateLimit)
        .http_response(&err);
    assert_eq!(header(&legacy, "x-ratelimit-limit"), Some("100"));
    assert_eq!(header(&legacy, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&legacy, "x-ratelimit-reset"), Some("2"));
    assert_eq!(header(&legacy, "ratelimit"), None);
    assert_eq!(header(&legacy, "ratelimit-policy"), None);

    let none: Res = ErrorResponseLayer::new()
        .header_style(HeaderStyle::None)
        .http_response(&err);
    assert_eq!(header(&none, "retry-after"), Some("2"));
    assert_eq!(header(&none, "ratelimit"), None);
    assert_eq!(header(&none, "x-ratelimit-limit"), None);

    let both: Res = ErrorResponseLayer::new()
        .header_style(HeaderStyle::Both)
        .http_response(&err);
    assert_eq!(header(&both, "ratelimit"), Some(r#""edge";r=0;t=2"#));
    assert_eq!(header(&both, "x-ratelimit-reset"), Some("2"));
}

#[tokio::test]
async fn refusals_are_503_with_retry_after_only_when_known() {
    let refusals: [(fn() -> Error, &str); 4] = [
        (Error::circuit_open, "circuit open"),
        (Error::bulkhead_full, "bulkhead full"),
        (Error::overloaded, "overloaded"),
        (Error::retry_budget_exhausted, "retry budget exhausted"),
    ];
    for (make, reason) in refusals {
        let res = http(&make());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{reason}");
        assert_eq!(header(&res, "retry-after"), None, "{reason}");
        assert_eq!(header(&res, "ratelimit"), None, "{reason}");
        assert_eq!(body_text(res).await, reason);

        let res = http(&make().with_retry_after(Duration::from_millis(29_001)));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{reason}");
        assert_eq!(header(&res, "retry-after"), Some("30"), "{reason}");
    }
}

#[tokio::test]
async fn timeout_is_504_or_the_configured_408() {
    let res = http(&Error::timeout());
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body_text(res).await, "timed out");

    let res: Res = ErrorResponseLayer::new()
        .timeout_status(StatusCode::REQUEST_TIMEOUT)
        .http_response(&Error::timeout());
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    // Only timeouts move; a rate limit is still a 429.
    let res: Res = ErrorResponseLayer::new()
        .timeout_status(StatusCode::REQUEST_TIMEOUT)
        .http_response(&Error::rate_limited(Duration::ZERO));
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// #27.6: refusals a JSON API can send: RFC 9457 problem details for every refusal and for
/// the 500 of a foreign error (which still hides the error's text), headers unchanged.
#[tokio::test]
async fn problem_json_bodies_for_refusals() {
    let layer = ErrorResponseLayer::new().problem_json();
    let res: Res = layer.http_response(&Error::rate_limited(Duration::from_millis(1500)));
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&res, "content-type"),
        Some("application/problem+json")
    );
    assert_eq!(header(&res, "retry-after"), Some("2"));
    assert_eq!(
        body_text(res).await,
        r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limited","retry_after":2}"#
    );

    let res: Res = layer
        .timeout_status(StatusCode::REQUEST_TIMEOUT)
        .http_response(&Error::timeout());
    assert_eq!(
        body_text(res).await,
        r#"{"type":"about:blank","title":"Request Timeout","status":408,"detail":"timed out"}"#
    );

    let inner = Scripted {
        call_fails: Some(secret),
        ..Scripted::ok()
    };
    let res = layer
        .layer(inner)
        .oneshot(Request::new(()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        header(&res, "content-type"),
        Some("application/problem+json")
    );
    let body = body_text(res).await;
    assert_eq!(
        body,
        r#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal server error"}"#
    );
}

/// #27.6: the refusal body is a hook: a user's own function writes it, from the status and
/// the error; gRPC answers are unchanged.
#[tokio::test]
async fn a_refusal_body_hook_writes_the_body() {
    fn body(status: StatusCode, err: Option<&Error>) -> (HeaderValue, Bytes) {
        let text = format!(
            "{} {}",
            status.as_u16(),
            err.and_then(Error::layer).unwrap_or("-")
        );
        (HeaderValue::from_static("text/x-custom"), Bytes::from(text))
    }
    let layer = ErrorResponseLayer::new().refusal_body(body);
    let res: Res = layer.http_response(&Error::overloaded().with_layer("edge"));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "content-type"), Some("text/x-custom"));
    assert_eq!(res.body().size_hint().exact(), Some(8));
    assert_eq!(body_text(res).await, "503 edge");
    let res: Res = layer.grpc_response(&Error::overloaded());
    assert_eq!(body_text(res).await, "");
}

/// Each service answers with its own layer's configuration, whatever other layers the process
/// has (its future finds the configuration by reference), and the future stays small.
#[tokio::test]
async fn services_of_differently_configured_layers_answer_each_their_own_way() {
    fn json(_: StatusCode, _: Option<&Error>) -> (HeaderValue, Bytes) {
        (
            HeaderValue::from_static("application/json"),
            Bytes::from("{}"),
        )
    }
    let failing = || {
        tower::service_fn(|_: Request<()>| async {
            Err::<Response<Full<Bytes>>, BoxError>(Error::missing_key().into())
        })
    };
    let layers = [
        ErrorResponseLayer::new(),
        ErrorResponseLayer::new().missing_key_status(StatusCode::BAD_REQUEST),
        ErrorResponseLayer::new()
            .missing_key_status(StatusCode::FORBIDDEN)
            .refusal_body(json),
        ErrorResponseLayer::new().missing_key_status(StatusCode::BAD_REQUEST),
    ];
    let mut answers = Vec::new();
    for layer in layers {
        let res = layer.layer(failing()).oneshot(Request::new(())).await;
        let res = res.expect("infallible");
        let content_type = res.headers().get(CONTENT_TYPE).cloned();
        answers.push((res.status(), content_type));
    }
    let text = Some(HeaderValue::from_static("text/plain; charset=utf-8"));
    assert_eq!(
        answers,
        [
            (StatusCode::UNAUTHORIZED, text.clone()),
            (StatusCode::BAD_REQUEST, text.clone()),
            (
                StatusCode::FORBIDDEN,
                Some(HeaderValue::from_static("application/json"))
            ),
            (StatusCode::BAD_REQUEST, text),
        ]
    );
    type Inner = std::future::Ready<Result<Response<()>, BoxError>>;
    assert!(size_of::<ResponseFuture<Inner>>() <= size_of::<Inner>() + 8);
}

/// #27.6: a request refused for carrying no key is a 401 (or the status chosen), gRPC
/// `UNAUTHENTICATED`, never a 429 with a `Retry-After` to wait out.
#[tokio::test]
async fn a_missing_key_answers_401() {
    let err = Error::missing_key().with_layer("edge");
    assert!(err.is_rejection() && !err.is_rate_limited());
    assert_eq!(http_status(&err), StatusCode::UNAUTHORIZED);
    assert_eq!(grpc_code(&err), GrpcCode::Unauthenticated);
    let res = http(&err);
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&res, "retry-after"), None);
    assert_eq!(body_text(res).await, "missing key");
    let res: Res = ErrorResponseLayer::new()
        .missing_key_status(StatusCode::BAD_REQUEST)
        .http_response(&err);
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&grpc(&err), "grpc-status"), Some("16"));
}

/// #16.2: a request refused as malformed (a bad timeout header) is a 400, gRPC
/// `INVALID_ARGUMENT`, a rejection with no `Retry-After`.
#[tokio::test]
async fn a_bad_request_answers_400_and_invalid_argument() {
    let err = Error::bad_request().with_layer("edge");
    assert!(err.is_bad_request() && err.is_rejection() && !err.is_timeout());
    assert_eq!(http_status(&err), StatusCode::BAD_REQUEST);
    assert_eq!(grpc_code(&err), GrpcCode::InvalidArgument);
    let res = http(&err);
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&res, "retry-after"), None);
    assert_eq!(body_text(res).await, "bad request");
    assert_eq!(header(&grpc(&err), "grpc-status"), Some("3"));
}

/// #15.6: a cost the quota can never admit answers gRPC `RESOURCE_EXHAUSTED` with no
/// `grpc-retry-pushback-ms` (a client obeying a pushback would retry forever), and HTTP 413 with
/// no `Retry-After`, even though the error carries the rate-limit fields the limiter attaches.
#[tokio::test]
async fn never_admissible_is_resource_exhausted_without_pushback() {
    let err = Error::never_admissible()
        .with_layer("edge")
        .with_rate_limit(edge_limit());
    assert_eq!(grpc_code(&err), GrpcCode::ResourceExhausted);
    let res = grpc(&err);
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "grpc-status"), Some("8"));
    assert_eq!(
        header(&res, "grpc-message"),
        Some("request exceeds the quota")
    );
    assert_eq!(header(&res, "grpc-retry-pushback-ms"), None);
    assert_eq!(header(&res, "retry-after"), None);

    let res = http(&err);
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header(&res, "retry-after"), None);
}

#[test]
fn json_strings_are_escaped() {
    let mut json = String::new();
    push_json_string(&mut json, "a\"b\\c\u{1}é");
    assert_eq!(json, r#""a\"b\\c\u0001é""#);
}

#[test]
fn free_functions_match_the_table() {
    let cases: [(Error, StatusCode, GrpcCode); 6] = [
        (
            Error::rate_limited(Duration::from_secs(1)),
            StatusCode::TOO_MANY_REQUESTS,
            GrpcCode::ResourceExhausted,
        ),
        (
            Error::circuit_open(),
            StatusCode::SERVICE_UNAVAILABLE,
            GrpcCode::Unavailable,
        ),
        (
            Error::bulkhead_full(),
            StatusCode::SERVICE_UNAVAILABLE,
            GrpcCode::Unavailable,
        ),
        (
            Error::overloaded(),
            StatusCode::SERVICE_UNAVAILABLE,
            GrpcCode::Unavailable,
        ),
        (
            Error::retry_budget_exhausted(),
            StatusCode::SERVICE_UNAVAILABLE,
            GrpcCode::Unavailable,
        ),
        (
            Error::timeout(),
            StatusCode::GATEWAY_TIMEOUT,
            GrpcCode::DeadlineExceeded,
        ),
    ];
    for (err, status, code) in cases {
        assert_eq!(http_status(&err), status, "{err:?}");
        assert_eq!(grpc_code(&err), code, "{err:?}");
    }
}

#[tokio::test]
async fn grpc_trailers_only_for_each_kind() {
    let cases: [(Error, &str, &str, Option<&str>); 6] = [
        (
            Error::rate_limited(Duration::from_micros(1_500_001)),
            "8",
            "rate limited",
            Some("1501"),
        ),
        (Error::circuit_open(), "14", "circuit open", None),
        (
            Error::bulkhead_full().with_retry_after(Duration::from_secs(2)),
            "14",
            "bulkhead full",
            Some("2000"),
        ),
        (Error::overloaded(), "14", "overloaded", None),
        (
            Error::retry_budget_exhausted(),
            "14",
            "retry budget exhausted",
            None,
        ),
        (Error::timeout(), "4", "timed out", None),
    ];
    for (err, status, message, pushback) in cases {
        let res = grpc(&err);
        assert_eq!(res.status(), StatusCode::OK, "{err:?}");
        assert_eq!(header(&res, "content-type"), Some("application/grpc"));
        assert_eq!(header(&res, "grpc-status"), Some(status), "{err:?}");
        assert_eq!(header(&res, "grpc-message"), Some(message), "{err:?}");
        assert_eq!(header(&res, "grpc-retry-pushback-ms"), pushback, "{err:?}");
        assert_eq!(header(&res, "retry-after"), None);
        assert!(res.body().is_end_stream());
        assert_eq!(res.body().size_hint().exact(), Some(0));
        assert_eq!(body_text(res).await, "");
    }
}

#[test]
fn grpc_message_percent_encodes_what_the_spec_reserves() {
    assert_eq!(grpc_message("rate limited"), "rate limited");
    assert_eq!(grpc_message("100% full"), "100%25 full");
    assert_eq!(grpc_message("caf\u{e9}\n"), "caf%C3%A9%0A");
}

/// #15.8: a wait longer than gRFC A6's `int32` of milliseconds (a monthly quota) is written
/// as `i32::MAX`, and weir's own parser reads it back as a wait, never "do not retry".
#[test]
fn a_long_wait_is_a_pushback_within_int32_that_reads_back_as_a_wait() {
    let month = Duration::from_secs(30 * 86_400);
    let res = grpc(&Error::rate_limited(month));
    let written = header(&res, "grpc-retry-pushback-ms").expect("pushback");
    assert_eq!(written, "2147483647");
    assert_eq!(
        crate::wire::parse_grpc_pushback(written.as_bytes()),
        Some(crate::wire::ServerHint::RetryAfter(crate::wire::MAX_HINT))
    );
}

/// #15.8: the pushback is whole milliseconds rounded up, clamped to gRFC A6's `int32`.
#[test]
fn retry_pushback_is_milliseconds_rounded_up_within_int32() {
    assert_eq!(grpc_pushback_millis(Duration::ZERO), 0);
    assert_eq!(grpc_pushback_millis(Duration::from_nanos(1)), 1);
    assert_eq!(grpc_pushback_millis(Duration::from_millis(1500)), 1500);
    assert_eq!(
        grpc_pushback_millis(Duration::from_millis(2_147_483_647)),
        i32::MAX
    );
    assert_eq!(
        grpc_pushback_millis(Duration::from_millis(2_147_483_648)),
        i32::MAX
    );
    assert_eq!(grpc_pushback_millis(Duration::MAX), i32::MAX);
}

// ---- the service ----

/// Answers `Ok` with a body, or fails `call` or `poll_ready` with the given error.
#[derive(Clone)]
struct Scripted {
    call_fails: Option<fn() -> BoxError>,
    ready_fails: Option<fn() -> BoxError>,
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    fn ok() -> Self {
        Self {
            call_fails: None,
            ready_fails: None,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Service<Request<()>> for Scripted {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(self.ready_fails.take().map_or(Ok(()), |make| Err(make())))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(match self.call_fails {
            Some(make) => Err(make()),
            None => {
                let mut res = Response::new(Full::new(Bytes::from_static(b"from inner")));
                *res.status_mut() = StatusCode::ACCEPTED;
                Ok(res)
            }
        })
    }
}

fn grpc_request() -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("Application/GRPC+proto"),
    );
    req
}

fn secret() -> BoxError {
    "db password is hunter2".into()
}

fn circuit() -> BoxError {
    Error::circuit_open()
        .with_retry_after(Duration::from_secs(5))
        .into()
}

#[tokio::test]
async fn success_passes_through_untouched() {
    let res = ErrorResponseLayer::new()
        .layer(Scripted::ok())
        .oneshot(Request::new(()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.body().size_hint().exact(), Some(10));
    assert_eq!(body_text(res).await, "from inner");
}

#[tokio::test]
async fn a_foreign_error_is_a_generic_500_that_hides_its_text() {
    let inner = Scripted {
        call_fails: Some(secret),
        ..Scripted::ok()
    };
    let res = ErrorResponseLayer::new()
        .layer(inner.clone())
        .oneshot(Request::new(()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        header(&res, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let headers = format!("{:?}", res.headers());
    let body = body_text(res).await;
    assert_eq!(body, "internal server error");
    assert!(!body.contains("hunter2") && !headers.contains("hunter2"));

    let res = ErrorResponseLayer::new()
        .layer(inner)
        .oneshot(grpc_request())
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "grpc-status"), Some("13"));
    assert_eq!(header(&res, "grpc-message"), Some("internal error"));
}

#[tokio::test]
async fn a_weir_error_wrapped_in_a_source_chain_is_still_mapped() {
    #[derive(Debug)]
    struct Wrapper(BoxError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }
    let inner = Scripted {
        call_fails: Some(|| Box::new(Wrapper(Error::overloaded().into()))),
        ..Scripted::ok()
    };
    let res = ErrorResponseLayer::new()
        .layer(inner)
        .oneshot(Request::new(()))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_text(res).await, "overloaded");
}

#[tokio::test]
async fn protocol_is_chosen_by_content_type_unless_forced() {
    let inner = Scripted {
        call_fails: Some(circuit),
        ..Scripted::ok()
    };
    let call =
        |layer: ErrorResponseLayer, req: Request<()>| layer.layer(inner.clone()).oneshot(req);

    let auto_grpc = call(ErrorResponseLayer::new(), grpc_request())
        .await
        .expect("ok");
    assert_eq!(auto_grpc.status(), StatusCode::OK);
    assert_eq!(header(&auto_grpc, "grpc-status"), Some("14"));
    assert_eq!(header(&auto_grpc, "grpc-retry-pushback-ms"), Some("5000"));

    let auto_http = call(ErrorResponseLayer::new(), Request::new(()))
        .await
        .expect("ok");
    assert_eq!(auto_http.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&auto_http, "retry-after"), Some("5"));

    let mut not_grpc = Request::new(());
    not_grpc
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let res = call(ErrorResponseLayer::new(), not_grpc).await.expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    let forced_http = call(ErrorResponseLayer::new().http(), grpc_request())
        .await
        .expect("ok");
    assert_eq!(forced_http.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&forced_http, "grpc-status"), None);

    let forced_grpc = call(ErrorResponseLayer::new().grpc(), Request::new(()))
        .await
        .expect("ok");
    assert_eq!(header(&forced_grpc, "grpc-status"), Some("14"));
}

#[tokio::test]
async fn a_poll_ready_error_is_answered_without_calling_the_inner_service() {
    let inner = Scripted {
        ready_fails: Some(circuit),
        ..Scripted::ok()
    };
    let calls = Arc::clone(&inner.calls);
    let mut svc = ErrorResponseLayer::new().layer(inner);

    let res = svc
        .ready()
        .await
        .expect("infallible")
        .call(Request::new(()))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "retry-after"), Some("5"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The kept error was spent; the next call reaches the inner service again.
    let res = svc
        .ready()
        .await
        .expect("infallible")
        .call(Request::new(()))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_clone_does_not_inherit_a_kept_poll_ready_error() {
    let inner = Scripted {
        ready_fails: Some(circuit),
        ..Scripted::ok()
    };
    let mut svc = ErrorResponseLayer::new().layer(inner);
    let _ = svc.ready().await.expect("infallible");
    let mut clone = svc.clone();
    clone.get_mut().ready_fails = None;
    let res = clone
        .ready()
        .await
        .expect("infallible")
        .call(Request::new(()))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = svc.call(Request::new(())).await.expect("ok");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(svc.get_ref().calls.load(Ordering::SeqCst), 1);
    assert_eq!(svc.into_inner().calls.load(Ordering::SeqCst), 1);
}

#[test]
fn service_future_and_body_are_send_sync_and_clone_when_the_inner_ones_are() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    fn assert_clone<T: Clone>() {}
    assert_send_sync::<ErrorResponseLayer>();
    assert_send_sync::<ErrorResponse<Scripted>>();
    assert_clone::<ErrorResponse<Scripted>>();
    assert_send::<ResponseFuture<<Scripted as Service<Request<()>>>::Future>>();
    assert_send_sync::<ResponseBody<Full<Bytes>>>();
}

#[cfg(feature = "tonic")]
#[test]
fn converts_into_a_tonic_status_with_code_message_and_pushback() {
    use std::error::Error as _;

    let err = Error::rate_limited(Duration::from_millis(1500)).with_layer("edge");
    let status = tonic::Status::from(&err);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.message(), "rate limited");
    assert_eq!(
        status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .map(|v| v.to_str().expect("ASCII")),
        Some("1500")
    );

    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let source = status.source().expect("the weir error is the source");
    assert_eq!(Error::find(source).and_then(Error::layer), Some("edge"));

    for (err, code) in [
        (Error::circuit_open(), tonic::Code::Unavailable),
        (Error::bulkhead_full(), tonic::Code::Unavailable),
        (Error::overloaded(), tonic::Code::Unavailable),
        (Error::retry_budget_exhausted(), tonic::Code::Unavailable),
        (Error::timeout(), tonic::Code::DeadlineExceeded),
    ] {
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), code);
        assert!(status.metadata().get("grpc-retry-pushback-ms").is_none());
    }

    // #15.6: never admissible is RESOURCE_EXHAUSTED without a pushback, by reference and by
    // value, as the rate limiter raises it (with its rate-limit fields).
    let never = Error::never_admissible()
        .with_layer("edge")
        .with_rate_limit(edge_limit());
    let status = tonic::Status::from(&never);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(status.message(), "request exceeds the quota");
    assert!(status.metadata().get("grpc-retry-pushback-ms").is_none());
    let status = tonic::Status::from(never);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.metadata().get("grpc-retry-pushback-ms").is_none());
    let source = status.source().expect("the weir error is the source");
    assert!(Error::find(source).is_some_and(Error::is_never_admissible));
}

proptest! {
    #[test]
    fn retry_after_covers_the_wait_by_less_than_a_second(nanos in any::<u64>()) {
        let after = Duration::from_nanos(nanos);
        let res = http(&Error::rate_limited(after));
        let secs: u64 = header(&res, "retry-after").expect("set").parse().expect("a number");
        prop_assert!(secs >= 1);
        prop_assert!(Duration::from_secs(secs) >= after);
        prop_assert!(secs == 1 || Duration::from_secs(secs - 1) < after);
    }

    #[test]
    fn any_content_type_chooses_a_protocol_without_panicking(value in any::<Vec<u8>>()) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            let expected = value.as_bytes().len() >= 16
                && value.as_bytes()[..16].eq_ignore_ascii_case(b"application/grpc");
            headers.insert(CONTENT_TYPE, value);
            prop_assert_eq!(is_grpc(&headers), expected);
        }
    }
}
