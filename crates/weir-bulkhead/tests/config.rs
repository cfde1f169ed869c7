//! A bulkhead's settings read from a configuration file (feature `serde`): every field, the
//! builder's defaults for an empty table, and errors that name their field.

#![cfg(feature = "serde")]

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use serde::Deserialize;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_bulkhead::{BulkheadLayer, BulkheadSettings};
use weir_core::{BoxError, Error};

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> T {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn weir_error(err: &BoxError) -> &Error {
    Error::find(&**err).expect("a weir error")
}

fn sleepy<Req: Send + 'static>() -> impl Service<
    Req,
    Response = (),
    Error = Infallible,
    Future = impl Future<Output = Result<(), Infallible>> + Send,
> + Clone {
    service_fn(|_: Req| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(())
    })
}

const FULL: &str = r#"
    max_concurrent = 2
    max_queue = 1
    max_wait = "100ms"
    retry_after = "3s"
    name = "inventory"
"#;

#[test]
fn a_full_file_reads_every_field() {
    let config: BulkheadSettings = parse(&format!(
        "{FULL}backpressure = false\nrelease_at_head = true\n"
    ));
    assert_eq!(config.max_concurrent, 2);
    assert_eq!(config.max_queue, 1);
    assert_eq!(config.max_wait, Some(Duration::from_millis(100)));
    assert_eq!(config.retry_after, Duration::from_secs(3));
    assert!(!config.backpressure);
    assert!(config.release_at_head);
    assert_eq!(config.name.as_ref(), "inventory");
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_bulkhead_with_every_setting() {
    let config: BulkheadSettings = parse(FULL);
    let (layer, handle) = BulkheadLayer::builder()
        .settings(config)
        .build_with_handle()
        .unwrap();
    assert_eq!(handle.stats().max_concurrent, 2);
    let mut svc = layer.layer(sleepy::<u32>());

    let running = [
        tokio::spawn(svc.ready().await.unwrap().call(1)),
        tokio::spawn(svc.ready().await.unwrap().call(2)),
    ];
    tokio::task::yield_now().await;
    let started = Instant::now();
    let queued = tokio::spawn(svc.ready().await.unwrap().call(3));
    tokio::task::yield_now().await;
    assert_eq!(handle.stats().queued, 1, "max_queue = 1");

    // The queue is full: refused at once, with the file's Retry-After and name.
    let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
    let err = weir_error(&err);
    assert!(err.is_bulkhead_full());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(err.layer(), Some("inventory"));

    // The queued call gives up after max_wait.
    let err = queued.await.unwrap().unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    for call in running {
        call.await.unwrap().unwrap();
    }
    assert_eq!(handle.stats().rejected, 2);
    assert_eq!(handle.stats().available, 2);
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_instead_of_refusing() {
    let config: BulkheadSettings = parse("max_concurrent = 1\nbackpressure = true");
    let layer = BulkheadLayer::builder().settings(config).build().unwrap();
    let svc = layer.layer(sleepy::<u32>());
    let started = Instant::now();
    let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.clone().oneshot(2));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "one after the other"
    );

    // Without it, the second is refused at once.
    let layer = BulkheadLayer::builder()
        .settings(parse("max_concurrent = 1"))
        .build()
        .unwrap();
    let svc = layer.layer(sleepy::<u32>());
    let (a, b) = tokio::join!(svc.clone().oneshot(1), svc.clone().oneshot(2));
    a.unwrap();
    assert!(weir_error(&b.unwrap_err()).is_bulkhead_full());
}

#[tokio::test(start_paused = true)]
async fn http_mode_holds_the_permit_in_the_body_unless_release_at_head() {
    let inner = service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::from("body")))
    });
    for (text, held) in [
        ("max_concurrent = 3", 1),
        ("max_concurrent = 3\nrelease_at_head = false", 1),
        ("max_concurrent = 3\nrelease_at_head = true", 0),
    ] {
        let config: BulkheadSettings = parse(text);
        let layer = BulkheadLayer::builder()
            .settings(config)
            .http()
            .build()
            .unwrap();
        let handle = layer.handle();
        let response = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
        assert_eq!(handle.stats().in_flight, held, "{text}");
        drop(response);
        assert_eq!(handle.stats().in_flight, 0, "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_table_builds_the_builder_defaults() {
    let config: BulkheadSettings = parse("");
    assert_eq!(config, BulkheadSettings::default());
    let from_file = BulkheadLayer::builder().settings(config).build().unwrap();
    let from_code = BulkheadLayer::builder().build().unwrap();
    // Debug shows the name, the figures (100 permits), the queue and the wait.
    assert_eq!(format!("{from_file:?}"), format!("{from_code:?}"));
    assert_eq!(from_file.handle().stats().max_concurrent, 100);

    // No queue, Retry-After 1 s.
    let svc = from_file.layer(sleepy::<u32>());
    let calls: Vec<_> = (0..101).map(|n| svc.clone().oneshot(n)).collect();
    let results = futures_join_all(calls).await;
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(refused.len(), 1);
    let err = weir_error(refused[0]);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(err.layer(), None, "an unnamed bulkhead names no layer");
}

/// Runs every future to completion on this task, in order of completion.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let mut handles = Vec::new();
    let set = tokio::task::LocalSet::new();
    set.run_until(async {
        for future in futures {
            handles.push(tokio::task::spawn_local(future));
        }
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    })
    .await
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let err = toml::from_str::<BulkheadSettings>("max_concurrent = 5\nqueue = 3").unwrap_err();
    assert!(err.to_string().contains("unknown field `queue`"), "{err}");
}

#[test]
fn bad_values_name_their_field() {
    let build_err = |text: &str| {
        BulkheadLayer::builder()
            .settings(parse(text))
            .build()
            .unwrap_err()
            .to_string()
    };
    let read_err = |text: &str| {
        toml::from_str::<BulkheadSettings>(text)
            .unwrap_err()
            .to_string()
    };

    assert_eq!(
        build_err("max_concurrent = 0"),
        "bulkhead: `max_concurrent` must be at least 1"
    );
    assert_eq!(
        build_err(r#"max_wait = "1s""#),
        "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
    );
    assert!(
        build_err("max_queue = 2\nmax_wait = \"0ms\"")
            .contains("`max_wait` must be more than zero")
    );
    assert!(build_err(r#"retry_after = "0s""#).contains("`retry_after`"));
    assert!(
        build_err("backpressure = true\nmax_queue = 4")
            .starts_with("bulkhead: `backpressure` waits in `poll_ready`")
    );
    assert_eq!(
        build_err("release_at_head = true"),
        "bulkhead: `release_at_head` applies in HTTP mode only: call `http()` on the builder"
    );

    let text = read_err(r#"max_wait = "a while""#);
    assert!(text.contains("max_wait"), "{text}");
    assert!(text.contains(r#"invalid duration "a while""#), "{text}");
    let text = read_err(r#"backpressure = "yes""#);
    assert!(text.contains("backpressure"), "{text}");
    let text = read_err("max_concurrent = -3");
    assert!(text.contains("max_concurrent"), "{text}");
}
