//! A real axum server on 127.0.0.1 whose first answer is slow, and a hyper client behind
//! `HedgeLayer::http()`: the GET is hedged and the fast copy's answer comes back; a POST is
//! never hedged; a PUT's streamed body reaches both attempts whole. Real sockets, so real time:
//! the bounds are generous and nothing is timed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::any;
use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use weir_core::classify::HttpStatus;
use weir_hedge::HedgeLayer;
use weir_retry::ReplayBody;

/// The first request waits 30 s (far beyond any hedge delay); every later one answers at once.
async fn app() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/",
            any(|State(seen): State<Arc<AtomicUsize>>| async move {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 1 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                format!("attempt {n}")
            }),
        )
        .with_state(Arc::clone(&seen));
    let (addr, _server) = weir_test::http::serve(router).await;
    (addr, seen)
}

/// #21.1: over real sockets, a slow GET is hedged and the hedge's answer is taken.
#[tokio::test]
async fn a_slow_get_is_answered_by_its_hedge() {
    let (addr, seen) = app().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>();
    let (layer, handle) = HedgeLayer::http()
        .delay(Duration::from_millis(50))
        .classify(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let request = Request::get(format!("http://{addr}/"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        layer.layer(client).oneshot(request),
    )
    .await
    .expect("the hedge answers long before the slow primary")
    .expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "attempt 2");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (1, 1));
}

/// #21.1: a POST (not idempotent, no `Idempotency-Key`) is sent once, however slow.
#[tokio::test]
async fn a_post_is_never_hedged() {
    let (addr, seen) = app().await;
    // Use up the slow first answer, so the POST is fast.
    seen.store(1, Ordering::SeqCst);
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>();
    let (layer, handle) = HedgeLayer::http()
        .parallel()
        .classify(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let request = Request::post(format!("http://{addr}/"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = layer
        .layer(client)
        .oneshot(request)
        .await
        .expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "attempt 2");
    // Parallel mode would have sent a second copy at once; the POST went once.
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(handle.hedges_sent(), 0);
}

/// A request body streamed in several frames (as a client uploads a file).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// #21.3: a PUT (idempotent) with a body streamed in three frames is hedged, and both attempts
/// reach the server with the whole body: the hedge replays the copy the layer kept, not what is
/// left of the stream.
#[tokio::test]
async fn a_hedged_put_sends_its_whole_body_twice() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/items/7",
            any(
                |State((seen, bodies)): State<(Arc<AtomicUsize>, Arc<Mutex<Vec<Bytes>>>)>,
                 body: Bytes| async move {
                    // The body is read whole before the handler runs, so both are recorded
                    // before either attempt can answer.
                    bodies.lock().unwrap().push(body);
                    let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 1 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    format!("attempt {n}")
                },
            ),
        )
        .with_state((Arc::clone(&seen), Arc::clone(&bodies)));
    let (addr, _server) = weir_test::http::serve(router).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Chunks>>();
    let (layer, handle) = HedgeLayer::http()
        .delay(Duration::from_millis(50))
        .classify(HttpStatus::new())
        .build_with_handle()
        .expect("valid");
    let chunks = ["first chunk, ", "second chunk, ", "and the last"];
    let whole: String = chunks.concat();
    let body = Chunks(
        chunks
            .iter()
            .map(|c| Bytes::from_static(c.as_bytes()))
            .collect(),
    );
    let request = Request::put(format!("http://{addr}/items/7"))
        .body(body)
        .expect("request");
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        layer.layer(client).oneshot(request),
    )
    .await
    .expect("the hedge answers long before the slow primary")
    .expect("response");
    assert!(response.status().is_success(), "{}", response.status());
    let answer = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(answer, "attempt 2");
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (1, 1));
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies, [whole.clone(), whole]);
}
