//! The last good answer (stale-if-error) under paused time.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AGE, CACHE_CONTROL};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use weir_core::ConfigError;
use weir_core::{classify::HttpStatus, degrade::Degraded, key::MethodPath};
use weir_fallback::{Cause, FALLBACK_HEADER, FallbackLayer, LastGood};

/// An upstream that answers `200 <path> v<n>` (n counts its calls) with `body_len` bytes of
/// padding, or `503` while `down` is set.
#[derive(Clone)]
struct Upstream {
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn new() -> Self {
        Self {
            down: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn service(
        &self,
        extra: Option<(&'static str, &'static str)>,
    ) -> impl Service<
        Request<()>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        service_fn(move |req: Request<()>| {
            let n = this.calls.fetch_add(1, SeqCst) + 1;
            let down = this.down.load(SeqCst);
            let path = req.uri().path().to_owned();
            async move {
                let mut response = if down {
                    Response::builder()
                        .status(503)
                        .body(Full::new(Bytes::from("down")))
                } else {
                    Response::builder().body(Full::new(Bytes::from(format!("{path} v{n}"))))
                }
                .unwrap();
                if let Some((name, value)) = extra {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                Ok::<_, Infallible>(response)
            }
        })
    }
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

async fn text<B: http_body::Body<Data = Bytes>>(response: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// #20.3: a good answer is kept and served, with `Age` and the marker, when the upstream fails.
#[tokio::test(start_paused = true)]
async fn the_last_good_answer_is_served_with_age_and_marker() {
    let upstream = Upstream::new();
    let kept = LastGood::new(MethodPath).max_stale(Duration::from_secs(60));
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(None));

    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(get("/items"))
        .await
        .unwrap();
    assert!(ok.headers().get(FALLBACK_HEADER).is_none());
    assert_eq!(text(ok).await, "/items v1");
    assert_eq!(kept.len(), 1, "kept once its body ended");

    tokio::time::advance(Duration::from_secs(30)).await;
    upstream.down.store(true, SeqCst);
    let stale = svc
        .ready()
        .await
        .unwrap()
        .call(get("/items"))
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()[AGE], "30");
    assert_eq!(stale.headers()[FALLBACK_HEADER], "last_good");
    assert!(Degraded::of(&stale).is_some_and(|o| o.is_failure()));
    assert_eq!(text(stale).await, "/items v1");
    assert_eq!(handle.stats().last_good, 1);

    // Another route has nothing kept: the failure is handed back.
    let miss = svc
        .ready()
        .await
        .unwrap()
        .call(get("/other"))
        .await
        .unwrap();
    assert_eq!(miss.status(), 503);
    assert_eq!(handle.stats().exhausted, 1);
    // And the failure itself replaced nothing.
    assert_eq!(kept.len(), 1);
}

/// #20.3: an entry past its maximum staleness is not served.
#[tokio::test(start_paused = true)]
async fn a_stale_entry_past_max_age_is_not_served() {
    let upstream = Upstream::new();
    let kept = LastGood::new(MethodPath).max_stale(Duration::from_secs(60));
    let (layer, handle) = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept)
        .build_with_handle()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(None));
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(get("/items"))
        .await
        .unwrap();
    text(ok).await;
    upstream.down.store(true, SeqCst);

    tokio::time::advance(Duration::from_secs(60)).await;
    let at_limit = svc
        .ready()
        .await
        .unwrap()
        .call(get("/items"))
        .await
        .unwrap();
    assert_eq!(at_limit.headers()[AGE], "60");

    tokio::time::advance(Duration::from_secs(1)).await;
    let past = svc
        .ready()
        .await
        .unwrap()
        .call(get("/items"))
        .await
        .unwrap();
    assert_eq!(past.status(), 503);
    assert!(past.headers().get(AGE).is_none());
    assert_eq!(text(past).await, "down");
    let stats = handle.stats();
    assert_eq!((stats.last_good, stats.exhausted), (1, 1));
}

/// #20.3: a flood of distinct keys keeps the store within its entry and byte bounds, evicting the
/// oldest first.
#[tokio::test(start_paused = true)]
async fn the_store_stays_within_its_bounds_under_a_key_flood() {
    let upstream = Upstream::new();
    let kept = LastGood::new(MethodPath)
        .max_entries(100)
        .max_bytes(64 * 1024);
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(None));
    for i in 0..5_000 {
        let ok = svc
            .ready()
            .await
            .unwrap()
            .call(get(&format!("/k/{i}")))
            .await
            .unwrap();
        text(ok).await;
        assert!(kept.len() <= 100, "entries {}", kept.len());
        assert!(kept.bytes() <= 64 * 1024, "bytes {}", kept.bytes());
    }
    assert_eq!(kept.len(), 100);
    assert_eq!(kept.evicted(), 4_900);
    upstream.down.store(true, SeqCst);
    let newest = svc
        .ready()
        .await
        .unwrap()
        .call(get("/k/4999"))
        .await
        .unwrap();
    assert_eq!(text(newest).await, "/k/4999 v5000");
    let oldest = svc.ready().await.unwrap().call(get("/k/0")).await.unwrap();
    assert_eq!(oldest.status(), 503);

    // The byte bound binds first when it is the tighter one.
    let upstream = Upstream::new();
    let kept = LastGood::new(MethodPath)
        .max_bytes(2_000)
        .max_entry_bytes(1_000);
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(None));
    for i in 0..1_000 {
        let ok = svc
            .ready()
            .await
            .unwrap()
            .call(get(&format!("/b/{i}")))
            .await
            .unwrap();
        text(ok).await;
        assert!(kept.bytes() <= 2_000, "bytes {}", kept.bytes());
    }
    assert!(kept.len() >= 2, "several entries fit in 2 000 bytes");
}

/// #20.3: only clean, complete, small enough `GET`/`HEAD` answers are kept.
#[tokio::test(start_paused = true)]
async fn what_is_not_kept() {
    let upstream = Upstream::new();
    let kept = LastGood::new(MethodPath).max_entry_bytes(8);
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(None));
    // Larger than max_entry_bytes ("/long-path v1" is 13 bytes).
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(get("/long-path"))
        .await
        .unwrap();
    assert_eq!(
        text(ok).await,
        "/long-path v1",
        "the caller still gets all of it"
    );
    // A POST.
    let post = Request::builder()
        .method(Method::POST)
        .uri("/a")
        .body(())
        .unwrap();
    text(svc.ready().await.unwrap().call(post).await.unwrap()).await;
    // A body dropped before its end.
    drop(svc.ready().await.unwrap().call(get("/b")).await.unwrap());
    assert_eq!(kept.len(), 0);
    // The same small GET, read to its end, is kept.
    text(svc.ready().await.unwrap().call(get("/b")).await.unwrap()).await;
    assert_eq!(kept.len(), 1);

    // Headers of the connection are not kept: a kept answer is served on another one.
    let kept = LastGood::new(MethodPath);
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(Some(("connection", "x-hop, close"))));
    upstream.down.store(false, SeqCst);
    text(svc.ready().await.unwrap().call(get("/h")).await.unwrap()).await;
    upstream.down.store(true, SeqCst);
    let stale = svc.ready().await.unwrap().call(get("/h")).await.unwrap();
    assert_eq!(stale.headers()[FALLBACK_HEADER], "last_good");
    assert!(stale.headers().get("connection").is_none());
    upstream.down.store(false, SeqCst);

    // `Cache-Control: no-store` is honoured.
    let kept = LastGood::new(MethodPath);
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(Some((CACHE_CONTROL.as_str(), "private, no-store"))));
    text(svc.ready().await.unwrap().call(get("/c")).await.unwrap()).await;
    assert_eq!(kept.len(), 0);
}

/// #20.1 / #20.3: with the last good answer first and a value second, the kept answer wins when
/// there is one and the value answers otherwise.
#[tokio::test(start_paused = true)]
async fn last_good_then_value_in_order() {
    let upstream = Upstream::new();
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(LastGood::new(MethodPath))
        .value(|_: Cause<'_, Response<Full<Bytes>>, Infallible>| {
            Some(Response::new(Full::new(Bytes::from("default"))))
        })
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service(None));
    text(svc.ready().await.unwrap().call(get("/x")).await.unwrap()).await;
    upstream.down.store(true, SeqCst);
    let kept = svc.ready().await.unwrap().call(get("/x")).await.unwrap();
    assert_eq!(kept.headers()[FALLBACK_HEADER], "last_good");
    assert_eq!(text(kept).await, "/x v1");
    let value = svc.ready().await.unwrap().call(get("/y")).await.unwrap();
    assert_eq!(value.headers()[FALLBACK_HEADER], "value");
    assert_eq!(text(value).await, "default");
}

/// Bad bounds are refused at build time, naming the setting.
#[test]
fn bad_bounds_are_refused() {
    let build = |kept: LastGood<MethodPath>| {
        FallbackLayer::builder()
            .last_good(kept)
            .build()
            .map(|_| ())
            .unwrap_err()
    };
    let kept = || LastGood::new(MethodPath);
    let zero = |field| ConfigError::zero("fallback", field, "");
    assert_eq!(build(kept().max_entries(0)), zero("last_good.max_entries"));
    assert_eq!(build(kept().max_bytes(0)), zero("last_good.max_bytes"));
    let err = build(kept().max_bytes(10).max_entry_bytes(11));
    assert_eq!(
        err,
        ConfigError::conflict("fallback", "last_good.max_entry_bytes", "")
    );
    assert!(err.to_string().contains("`last_good.max_entry_bytes`"));
    assert_eq!(
        build(kept().max_stale(Duration::ZERO)),
        zero("last_good.max_stale")
    );
}

/// #20.3: a switched request that no source answered reaches the primary; its answer is kept
/// only if the classifier calls it a success (a `200` carrying `grpc-status: 14` is not).
#[tokio::test(start_paused = true)]
async fn a_switched_request_keeps_only_good_answers() {
    let kept = LastGood::new(MethodPath);
    let (layer, handle) = FallbackLayer::builder()
        .classify(weir_core::classify::GrpcStatus::new())
        .last_good(kept.clone())
        .build_with_handle()
        .unwrap();
    let upstream = service_fn(|req: Request<()>| async move {
        let code = if req.uri().path() == "/bad" {
            "14"
        } else {
            "0"
        };
        Ok::<_, Infallible>(
            Response::builder()
                .header("grpc-status", code)
                .body(Full::new(Bytes::from("answer")))
                .unwrap(),
        )
    });
    let mut svc = ServiceBuilder::new().layer(layer).service(upstream);
    handle.set_forced(true);
    text(svc.ready().await.unwrap().call(get("/bad")).await.unwrap()).await;
    assert_eq!(kept.len(), 0, "a failure is never kept");
    text(svc.ready().await.unwrap().call(get("/good")).await.unwrap()).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(handle.stats().exhausted, 2);
}

/// #20.3: a newer good answer that cannot be kept (larger than `max_entry_bytes`) retires the
/// older one: it is no longer the last good answer, and is not served.
#[tokio::test(start_paused = true)]
async fn an_answer_too_large_to_keep_retires_the_older_one() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls_in = Arc::clone(&calls);
    let upstream = service_fn(move |_req: Request<()>| {
        let n = calls_in.fetch_add(1, SeqCst);
        async move {
            let response = match n {
                0 => Response::new(Full::new(Bytes::from("small"))),
                1 => Response::new(Full::new(Bytes::from("a much larger answer"))),
                _ => Response::builder()
                    .status(503)
                    .body(Full::new(Bytes::from("down")))
                    .unwrap(),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let kept = LastGood::new(MethodPath).max_entry_bytes(10);
    let layer = FallbackLayer::builder()
        .classify(HttpStatus::new())
        .last_good(kept.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(upstream);
    text(svc.ready().await.unwrap().call(get("/g")).await.unwrap()).await;
    assert_eq!(kept.len(), 1);
    let larger = svc.ready().await.unwrap().call(get("/g")).await.unwrap();
    assert_eq!(text(larger).await, "a much larger answer");
    assert_eq!(kept.len(), 0);
    let down = svc.ready().await.unwrap().call(get("/g")).await.unwrap();
    assert_eq!(
        down.status(),
        503,
        "the older, smaller answer is not served"
    );
}
