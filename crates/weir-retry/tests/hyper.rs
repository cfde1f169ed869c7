//! A real hyper server on 127.0.0.1 that fails the first attempts, and a hyper client behind
//! `RetryLayer::http()`: a 1 MiB POST is replayed byte for byte; a body above the limit is sent
//! once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use weir_core::backoff::Backoff;
use weir_core::classify::HttpStatus;
use weir_retry::{ReplayBody, RetryBudget, RetryLayer};

/// Starts a server that answers 503 to its first `failures` requests and 200 after, and records
/// every body it received.
async fn server(failures: usize) -> (SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(body.clone());
                            seen.len()
                        };
                        let status = if n <= failures {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::OK
                        };
                        let reply = format!("attempt {n}: {} bytes", body.len());
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .status(status)
                                .header("retry-after", "0")
                                .body(Full::new(Bytes::from(reply)))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, bodies)
}

/// 1 MiB that is not all one byte, so a reordering or a truncation would show.
fn payload() -> Bytes {
    (0..1024 * 1024_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn a_1_mib_post_is_replayed_byte_for_byte() {
    let (addr, bodies) = server(2).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let layer = RetryLayer::http()
        .body_limit(2 * 1024 * 1024)
        .build()
        .expect("valid");
    let payload = payload();
    let req = Request::post(format!("http://{addr}/upload"))
        .header("idempotency-key", "upload-1")
        .body(Full::new(payload.clone()))
        .expect("request");
    let res = layer.layer(client).oneshot(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    let reply = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(reply, "attempt 3: 1048576 bytes");
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    for body in bodies.iter() {
        assert_eq!(body.len(), payload.len());
        assert!(
            *body == payload,
            "a replayed body differs from the original"
        );
    }
}

#[tokio::test]
async fn a_body_above_the_limit_is_sent_once() {
    let (addr, bodies) = server(2).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    // The default limit is 64 KiB.
    let layer = RetryLayer::http().build().expect("valid");
    let req = Request::put(format!("http://{addr}/upload"))
        .body(Full::new(payload()))
        .expect("request");
    let res = layer.layer(client).oneshot(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0], payload());
}

#[tokio::test]
async fn a_connection_error_is_retried_and_passes_through_unchanged() {
    // Nothing listens on this port: the connect error is transient, retried, and the last one
    // comes back as hyper's own error. Retry-After is not involved: the backoff is zero.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let (layer, handle) = RetryLayer::http()
        .max_attempts(3)
        .backoff(weir_core::backoff::Backoff::constant(
            std::time::Duration::ZERO,
        ))
        .build_with_handle()
        .expect("valid");
    let req = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let err = layer.layer(client).oneshot(req).await.unwrap_err();
    // The error type is the client's own: the layer originates no error.
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(handle.retries(), 2);
}

/// #17.2: `RetryLayer::builder()` with no replay chosen, around a hyper client whose requests
/// (`Request<Full<Bytes>>`) are cloneable, reads them as HTTP (its default replay,
/// `IdempotentReplay`, is in `Auto` mode): a GET is retried until the server's 200, a POST
/// without an `Idempotency-Key` is sent once.
#[tokio::test]
async fn the_default_replay_reads_a_hyper_clients_requests_as_http() {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .classify(HttpStatus::new())
        .backoff(Backoff::constant(std::time::Duration::ZERO))
        .budget(RetryBudget::unlimited())
        .build()
        .expect("valid");

    let (addr, bodies) = server(2).await;
    let get = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = layer
        .layer(client.clone())
        .oneshot(get)
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(bodies.lock().unwrap().len(), 3, "a GET is retried");

    let (addr, bodies) = server(2).await;
    let post = Request::post(format!("http://{addr}/orders"))
        .body(Full::new(Bytes::from_static(b"order 7")))
        .expect("request");
    let response = layer.layer(client).oneshot(post).await.expect("answered");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        bodies.lock().unwrap().len(),
        1,
        "a POST without a key is sent once"
    );
}
