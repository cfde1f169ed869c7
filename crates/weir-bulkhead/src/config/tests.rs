use std::convert::Infallible;
use std::time::Duration;

use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error};

use super::*;

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

#[test]
fn an_unknown_field_is_refused_by_name() {
    let err = toml::from_str::<PartitionedConfig>("per_key = 5\npartitions = {}").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `partitions`"),
        "{err}"
    );
    let err = toml::from_str::<PartitionedConfig>("borrow = { size = 5, limit = 2 }").unwrap_err();
    assert!(err.to_string().contains("unknown field `limit`"), "{err}");
}

// --- partitions ---------------------------------------------------------------------------

const PARTITIONED: &str = r#"
    key = { header = "x-downstream" }
    partition = { payments = 3, search = 1 }
    per_key = 2
    borrow = { size = 2, cap = 1 }
    max_queue = 1
    max_wait = "50ms"
    missing_key = "reject"
    max_keys = 10
    idle_timeout = "1m"
    retry_after = "2s"
    name = "downstreams"
"#;

fn to(downstream: &'static str) -> Request<()> {
    Request::get("/")
        .header("x-downstream", downstream)
        .body(())
        .unwrap()
}

fn header(value: &'static str) -> SpecKey {
    SpecKey::Header(HeaderValue::from_static(value))
}

#[test]
fn a_full_partitioned_file_reads_every_field() {
    let config: PartitionedConfig = parse(PARTITIONED);
    assert_eq!(
        config.key,
        Some(parse::<Key>(r#"key = { header = "x-downstream" }"#).key)
    );
    let partitions = config.partition.unwrap();
    assert_eq!((partitions["payments"], partitions["search"]), (3, 1));
    assert_eq!(config.per_key, Some(2));
    assert_eq!(config.borrow, Some(BorrowSpec { size: 2, cap: 1 }));
    assert_eq!(config.max_queue, Some(1));
    assert_eq!(config.max_wait, Some(Duration::from_millis(50).into()));
    assert_eq!(config.missing_key, Some(MissingKey::Reject));
    assert_eq!(config.max_keys, NonZeroUsize::new(10));
    assert_eq!(config.idle_timeout, Some(Duration::from_secs(60).into()));
    assert_eq!(config.retry_after, Some(Duration::from_secs(2).into()));
    assert_eq!(config.name.as_deref(), Some("downstreams"));
}

#[derive(Deserialize)]
struct Key {
    key: KeySpec,
}

#[tokio::test(start_paused = true)]
async fn a_full_partitioned_file_builds_every_setting() {
    let layer = parse::<PartitionedConfig>(PARTITIONED).build().unwrap();
    assert_eq!(layer.stats(&header("payments")).unwrap().max_concurrent, 3);
    assert_eq!(layer.stats(&header("search")).unwrap().max_concurrent, 1);
    assert_eq!(layer.pool_stats().unwrap().max_concurrent, 2);
    let mut svc = layer.layer(sleepy::<Request<()>>());

    // search: its 1 permit, then 1 borrowed from the pool (cap 1), then 1 in the queue.
    let mut running = Vec::new();
    for _ in 0..2 {
        running.push(tokio::spawn(svc.ready().await.unwrap().call(to("search"))));
    }
    tokio::task::yield_now().await;
    assert_eq!(layer.pool_stats().unwrap().in_flight, 1, "borrow cap 1");
    let started = Instant::now();
    let queued = tokio::spawn(svc.ready().await.unwrap().call(to("search")));
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&header("search")).unwrap().queued, 1);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(to("search"))
        .await
        .unwrap_err();
    let err = weir_error(&err);
    assert!(err.is_bulkhead_full());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(err.layer(), Some("downstreams"));
    // max_wait: the queued one gives up after 50 ms.
    assert!(weir_error(&queued.await.unwrap().unwrap_err()).is_bulkhead_full());
    assert_eq!(started.elapsed(), Duration::from_millis(50));

    // Another downstream gets per_key = 2 permits (the pool's one is still lent out).
    for _ in 0..2 {
        running.push(tokio::spawn(svc.ready().await.unwrap().call(to("ledger"))));
    }
    tokio::task::yield_now().await;
    assert_eq!(layer.stats(&header("ledger")).unwrap().max_concurrent, 2);
    assert_eq!(layer.stats(&header("ledger")).unwrap().in_flight, 2);

    // missing_key = "reject".
    let keyless = Request::new(());
    let err = svc.ready().await.unwrap().call(keyless).await.unwrap_err();
    assert!(weir_error(&err).is_bulkhead_full());

    for call in running {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_partitioned_table_builds_the_builder_defaults() {
    let config: PartitionedConfig = parse("");
    assert_eq!(config, PartitionedConfig::default());
    let layer = config.build().unwrap();
    let from_code = BulkheadLayer::partitioned::<_, SpecKey>(KeySpec::Global)
        .build()
        .unwrap();
    assert_eq!(format!("{layer:?}"), format!("{from_code:?}"));
    assert_eq!(layer.pool_stats(), None);
    // Every request has the one global key: 10 permits, no queue, key-less never happens.
    let svc = layer.layer(sleepy::<Request<()>>());
    let calls: Vec<_> = (0..11)
        .map(|_| svc.clone().oneshot(Request::new(())))
        .collect();
    let refused = futures_join_all(calls)
        .await
        .into_iter()
        .filter(Result::is_err)
        .count();
    assert_eq!(refused, 1);
    assert_eq!(layer.stats(&SpecKey::Global).unwrap().max_concurrent, 10);
}

#[test]
fn partition_keys_are_read_as_the_extractor_reads_them() {
    let build = |text: &str| parse::<PartitionedConfig>(text).build();
    let layer = build("key = \"peer_ip\"\npartition = { \"10.0.0.7\" = 4 }").unwrap();
    let ip = SpecKey::Ip("10.0.0.7".parse().unwrap());
    assert_eq!(layer.stats(&ip).unwrap().max_concurrent, 4);

    let layer = build("key = \"authority\"\npartition = { \"inventory:8080\" = 6 }").unwrap();
    let authority = SpecKey::Authority("inventory:8080".parse().unwrap());
    assert_eq!(layer.stats(&authority).unwrap().max_concurrent, 6);

    let layer = build("key = \"api_key\"\npartition = { \"k-123\" = 2 }").unwrap();
    let token = SpecKey::ApiKey(ApiKeyToken::from(HeaderValue::from_static("k-123")));
    assert_eq!(layer.stats(&token).unwrap().max_concurrent, 2);

    for (text, rule) in [
        (
            "key = \"peer_ip\"\npartition = { web = 4 }",
            "keys must be IP addresses",
        ),
        (
            "key = { header = \"x-tenant\" }\npartition = { \"bad\\nvalue\" = 1 }",
            "keys must be valid header values",
        ),
        (
            "key = \"bearer\"\npartition = { \"\" = 1 }",
            "keys must be non-empty API keys",
        ),
        (
            "key = \"authority\"\npartition = { \"a b\" = 1 }",
            "keys must be authorities",
        ),
        (
            "partition = { payments = 3 }",
            "not `global` or `method_path`",
        ),
        (
            "key = \"method_path\"\npartition = { \"GET /a\" = 3 }",
            "not `global` or `method_path`",
        ),
    ] {
        let err = build(text).unwrap_err().to_string();
        assert!(err.starts_with("bulkhead: `partition` "), "{text}: {err}");
        assert!(err.contains(rule), "{text}: {err}");
    }
}

/// #15.15: a partition listed above the extractor's `max_len` is kept as the digest its
/// requests get, so it still names their partition.
#[test]
fn a_partition_key_longer_than_the_cap_still_names_its_requests() {
    let long = "t".repeat(weir_core::key::DEFAULT_MAX_KEY_LEN + 1);
    let text = format!("key = {{ header = \"x-tenant\" }}\npartition = {{ \"{long}\" = 4 }}");
    let layer = parse::<PartitionedConfig>(&text).build().unwrap();
    let req = http::Request::get("/")
        .header("x-tenant", long.as_str())
        .body(())
        .unwrap();
    let spec = parse::<PartitionedConfig>(&text).key.unwrap();
    let key = weir_core::KeyExtractor::extract(&spec, &req).expect("a key");
    assert_eq!(layer.stats(&key).unwrap().max_concurrent, 4);
    let text = format!("key = \"api_key\"\npartition = {{ \"{long}\" = 3 }}");
    let layer = parse::<PartitionedConfig>(&text).build().unwrap();
    let req = http::Request::get("/")
        .header("x-api-key", long.as_str())
        .body(())
        .unwrap();
    let key = weir_core::KeyExtractor::extract(&weir_core::config::KeySpec::API_KEY, &req)
        .expect("a key");
    assert_eq!(layer.stats(&key).unwrap().max_concurrent, 3);
}

#[test]
fn bad_partitioned_values_name_their_field() {
    let build_err = |text: &str| {
        parse::<PartitionedConfig>(text)
            .build()
            .unwrap_err()
            .to_string()
    };
    let read_err = |text: &str| {
        toml::from_str::<PartitionedConfig>(text)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        build_err("per_key = 0"),
        "bulkhead: `per_key` must be at least 1"
    );
    assert_eq!(
        build_err("key = \"peer_ip\"\npartition = { \"10.0.0.1\" = 0 }"),
        "bulkhead: `partition` sizes must be at least 1"
    );
    assert_eq!(
        build_err("borrow = { size = 0, cap = 0 }"),
        "bulkhead: `borrow` `size` must be at least 1"
    );
    assert_eq!(
        build_err(r#"max_wait = "1s""#),
        "bulkhead: `max_wait` needs a queue: set `max_queue` above zero"
    );
    let text = read_err(r#"missing_key = "ignore""#);
    assert!(text.contains("unknown variant `ignore`"), "{text}");
    assert!(text.contains("missing_key"), "{text}");
    let text = read_err("max_keys = 0");
    assert!(text.contains("max_keys"), "{text}");
    let text = read_err("borrow = { size = 4 }");
    assert!(text.contains("missing field `cap`"), "{text}");
    let text = read_err(r#"key = "cookie""#);
    assert!(text.contains("cookie"), "{text}");
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
