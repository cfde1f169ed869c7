//! weir-idempotency against the bare service, over `http::Request`s (made from the `u64` of
//! every bench by `map_request`, the same way for the floor and the layer): a `POST` without an
//! `Idempotency-Key` and a `GET` (the layer's pass-through: a method comparison, a header
//! lookup), and a `POST` with a key whose response is in the memory store (a replay: the
//! handler is not called; measured against the bare service answering the same keyed request).
//! Each of the layer's rows again with `handler_body()` (`-handler-body`): its responses carry
//! the handler's own body type, so a plain request's response is not re-wrapped.
//!
//! `cargo bench --bench idempotency -- --warm-up-time 1 --measurement-time 2`

mod support;

use std::convert::Infallible;
use std::future::{Ready, ready};

use axum::response::IntoResponse;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::key::Global;
use weir_idempotency::{HandlerBody, IdempotencyLayer, MemoryStore};

use crate::support::{Bench, Req};

type Body = Full<Bytes>;

/// The floor: an HTTP handler answering at once with an empty `200`.
fn bare_http() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = Ready<Result<Response<Body>, Infallible>>,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_req: Request<Body>| ready(Ok(Response::new(Full::new(Bytes::new())))))
}

/// The floor for axum: a handler answering axum's own `Body`, as every axum handler does.
fn bare_axum() -> impl Service<
    Request<Body>,
    Response = Response<axum::body::Body>,
    Error = Infallible,
    Future = Ready<Result<Response<axum::body::Body>, Infallible>>,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_req: Request<Body>| ready(Ok(Response::new(axum::body::Body::empty()))))
}

/// What axum's `Router::layer` does with a layer's response: `into_response`, which keeps an
/// axum `Body` as it is and boxes any other body type into one.
fn axum_status<B>(response: Response<B>) -> Req
where
    Response<B>: IntoResponse,
{
    status(response.into_response())
}

fn post(_n: Req) -> Request<Body> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.method_mut() = Method::POST;
    req
}

fn get(_n: Req) -> Request<Body> {
    Request::new(Full::new(Bytes::new()))
}

fn post_keyed(_n: Req) -> Request<Body> {
    let mut req = post(0);
    req.headers_mut()
        .insert("idempotency-key", HeaderValue::from_static("bench-key"));
    req
}

fn status<B>(response: Response<B>) -> Req {
    Req::from(response.status().as_u16())
}

fn handler_body() -> IdempotencyLayer<MemoryStore, Global, (), HandlerBody> {
    IdempotencyLayer::builder()
        .handler_body()
        .build()
        .expect("the default settings are valid")
}

fn idempotency(c: &mut Criterion) {
    let mut bench = Bench::new(c, "idempotency");
    bench.service("http-bare-post", || {
        bare_http().map_request(post).map_response(status)
    });
    bench.service("weir-idempotency-post-no-key", || {
        IdempotencyLayer::new()
            .layer(bare_http())
            .map_request(post)
            .map_response(status)
    });
    bench.service("http-bare-get", || {
        bare_http().map_request(get).map_response(status)
    });
    bench.service("weir-idempotency-get", || {
        IdempotencyLayer::new()
            .layer(bare_http())
            .map_request(get)
            .map_response(status)
    });
    // `handler_body()`: the layer's responses carry the handler's own `Full<Bytes>`, so the
    // plain path hands the handler's response on as it is.
    bench.service("weir-idempotency-post-no-key-handler-body", || {
        handler_body()
            .layer(bare_http())
            .map_request(post)
            .map_response(status)
    });
    bench.service("weir-idempotency-get-handler-body", || {
        handler_body()
            .layer(bare_http())
            .map_request(get)
            .map_response(status)
    });
    // Under axum: the default layer's `IdempotencyBody` is boxed into axum's `Body` on every
    // response; with `handler_body()` the handler's `Body` is handed on as it is.
    bench.service("axum-bare-post", || {
        bare_axum().map_request(post).map_response(axum_status)
    });
    bench.service("weir-idempotency-axum-post-no-key", || {
        IdempotencyLayer::new()
            .layer(bare_axum())
            .map_request(post)
            .map_response(axum_status)
    });
    bench.service("weir-idempotency-axum-post-no-key-handler-body", || {
        handler_body()
            .layer(bare_axum())
            .map_request(post)
            .map_response(axum_status)
    });
    bench.service("http-bare-post-keyed", || {
        bare_http().map_request(post_keyed).map_response(status)
    });
    // Every call but the first of each service replays the stored empty `200`.
    bench.service("weir-idempotency-replay", || {
        IdempotencyLayer::new()
            .layer(bare_http())
            .map_request(post_keyed)
            .map_response(status)
    });
    bench.service("weir-idempotency-replay-handler-body", || {
        handler_body()
            .layer(bare_http())
            .map_request(post_keyed)
            .map_response(status)
    });
    bench.finish();
}

criterion_group!(benches, idempotency);
criterion_main!(benches);
