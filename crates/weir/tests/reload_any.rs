//! #25, every reloader: a server stack's accessors report what a reload applied; a client stack
//! of every mode (one breaker, per authority, gRPC) takes a new file; and each pattern's own
//! table (`weir::reloader`) is applied through its layer's handle, its fixed fields refused, and
//! watched from its file.

#![cfg(feature = "reload")]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use weir::core::reconfigure::Reconfigure;
use weir::{BoxError, ClientConfig, ServerConfig};

/// A table read from its text.
macro_rules! parse {
    ($text:expr $(,)?) => {
        toml::from_str($text).expect("parses")
    };
}

fn get(uri: &str) -> Request<String> {
    Request::get(uri)
        .header("x-tenant", "acme")
        .body(String::new())
        .expect("valid")
}

fn is_weir(err: &BoxError, what: fn(&weir::Error) -> bool) -> bool {
    weir::Error::find(&**err).is_some_and(what)
}

#[test]
fn the_server_stacks_accessors_report_the_settings_in_force() {
    let (stack, reloader) = toml::from_str::<ServerConfig>("timeout = \"5s\"\nmax_in_flight = 10")
        .expect("parses")
        .build_reloadable()
        .expect("valid");
    assert_eq!(
        (
            stack.timeout(),
            stack.max_in_flight(),
            stack.incoming_floor()
        ),
        (Duration::from_secs(5), 10, None)
    );
    let before = stack.clone();
    reloader
        .reload(&parse!(
            "timeout = \"2s\"\nmax_in_flight = 4\nincoming_floor = \"100ms\"\nbelow_floor = \"raise\"",
        ))
        .expect("applies");
    assert_eq!(stack.timeout(), Duration::from_secs(2));
    assert_eq!(stack.max_in_flight(), 4);
    let (floor, _) = stack.incoming_floor().expect("a floor now");
    assert_eq!(floor, Duration::from_millis(100));
    // A clone made before the reload reads the same live settings.
    assert_eq!(before.max_in_flight(), 4);
    assert_eq!(before.timeout(), Duration::from_secs(2));
}

/// A per-authority client's reload reaches every authority's breaker, those made before it
/// and after it.
#[tokio::test(start_paused = true)]
async fn a_per_authority_client_takes_a_new_breaker_threshold() {
    let text =
        |minimum: u32| format!("max_retries = 0\nfailure_rate = 50.0\nminimum_calls = {minimum}");
    let (stack, reloader) = toml::from_str::<ClientConfig>(&text(20))
        .expect("parses")
        .build_reloadable_with(|b| b.per_authority().build())
        .expect("valid");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let client = stack.layer(service_fn(
        move |_req: Request<weir::retry::ReplayBody<String>>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                let mut down = Response::new(String::new());
                *down.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, io::Error>(down)
            }
        },
    ));
    for _ in 0..5 {
        let res = client.clone().oneshot(get("http://old/")).await;
        assert_eq!(
            res.expect("a response").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    reloader.reload(&parse!(&text(5))).expect("applies");
    // `old` (made before the reload) has 5 failures: the sixth opens it, at the new minimum.
    let _ = client.clone().oneshot(get("http://old/")).await;
    let err = client
        .clone()
        .oneshot(get("http://old/"))
        .await
        .unwrap_err();
    assert!(is_weir(&err, weir::Error::is_circuit_open), "{err}");
    // `new` (made after it) opens at 5 too.
    for _ in 0..5 {
        let _ = client.clone().oneshot(get("http://new/")).await;
    }
    let err = client
        .clone()
        .oneshot(get("http://new/"))
        .await
        .unwrap_err();
    assert!(is_weir(&err, weir::Error::is_circuit_open), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        11,
        "the refused calls never reached it"
    );
    assert_eq!((reloader.applied(), reloader.refused()), (1, 0));
}

#[cfg(feature = "tonic")]
#[test]
fn a_grpc_client_stack_is_reloadable() {
    let (stack, reloader) = toml::from_str::<ClientConfig>("max_retries = 1\nmax_concurrent = 8")
        .expect("parses")
        .build_reloadable_with(|b| b.grpc().build())
        .expect("valid");
    reloader
        .reload(&parse!("max_retries = 4\nmax_concurrent = 3"))
        .expect("applies");
    assert_eq!(stack.retry_handle().settings().max_attempts, 5);
    assert_eq!(stack.bulkhead_handle().stats().max_concurrent, 3);
    let err = reloader
        .reload(&parse!("max_retries = 4\nmax_concurrent = 0"))
        .expect_err("zero");
    assert_eq!(err.field(), "max_concurrent");
    assert_eq!(stack.bulkhead_handle().stats().max_concurrent, 3);
}

/// A rate limit's own table, watched from its file: the raised quota admits at once (a fixed
/// window keeps its count), a change of its key is refused (a restart) and the running quota
/// kept.
#[tokio::test(start_paused = true)]
async fn a_rate_limit_table_is_watched_and_applied_through_its_handle() {
    use weir::rate_limit::RateLimitConfig;
    let text = |rate: u32, header: &str| {
        format!(
            "algorithm = \"fixed_window\"\nkey = {{ header = \"{header}\" }}\n\
             quota = {{ rate = {rate}, per = \"1m\" }}"
        )
    };
    let dir = std::env::temp_dir().join(format!("weir-reload-any-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rate_limit.toml");
    std::fs::write(&path, text(2, "x-tenant")).expect("written");

    let config: RateLimitConfig = parse!(&text(2, "x-tenant"));
    let layer = config.build().expect("valid");
    let reloader = weir::reloader(&config, layer.handle()).expect("valid");
    let svc = layer.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, io::Error>(Response::new(String::new()))
    }));
    let admitted = |n: usize| {
        let svc = svc.clone();
        async move {
            let mut ok = 0;
            for _ in 0..n {
                if svc.clone().oneshot(get("/")).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }
    };
    assert_eq!(admitted(3).await, 2);

    let every = Duration::from_secs(5);
    let watcher = weir::watch(path.clone(), reloader.clone(), every, |t: &str| {
        toml::from_str::<RateLimitConfig>(t)
    });
    assert_eq!(
        watcher.check().await,
        0,
        "the file as it was: nothing to apply"
    );
    std::fs::write(&path, text(5, "x-tenant")).expect("written");
    assert_eq!(watcher.check().await, 1);
    assert_eq!(admitted(4).await, 3, "5 in the minute, 2 spent");

    std::fs::write(&path, text(50, "x-other")).expect("written");
    watcher.check().await;
    assert_eq!(watcher.failed(), 1);
    assert!(
        watcher.last_error().is_some_and(|e| e.contains("`key`")),
        "{:?}",
        watcher.last_error()
    );
    assert_eq!(reloader.running(), parse!(&text(5, "x-tenant")));
    assert_eq!(admitted(1).await, 0, "the running quota is kept");
    drop(watcher);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A timeout's route table is replaced whole by a reload of its table.
#[tokio::test(start_paused = true)]
async fn a_timeout_tables_routes_are_replaced_whole() {
    use weir::timeout::TimeoutConfig;
    let config: TimeoutConfig =
        parse!("timeout = \"10s\"\n[routes]\n\"/slow/*\" = \"1s\"\n\"/fast\" = \"50ms\"");
    let (layer, handle) = config
        .builder()
        .expect("valid")
        .build_with_handle()
        .expect("valid");
    let reloader = weir::reloader(&config, handle).expect("valid");
    let svc = layer.layer(service_fn(|req: Request<String>| async move {
        if req.uri().path().starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok::<_, io::Error>(Response::new(String::new()))
    }));
    let err = svc.clone().oneshot(get("/slow/report")).await.unwrap_err();
    assert!(is_weir(&err, weir::Error::is_timeout), "{err}");
    // The new table has no `/fast`, and `/slow/*` at 3 s.
    reloader
        .reload(&parse!("timeout = \"10s\"\n[routes]\n\"/slow/*\" = \"3s\""))
        .expect("applies");
    svc.clone()
        .oneshot(get("/slow/report"))
        .await
        .expect("within 3 s");
    let err = reloader
        .reload(&parse!("name = \"edge\"\ntimeout = \"10s\""))
        .expect_err("the name is fixed");
    assert_eq!((err.field(), err.is_conflict()), ("name", true));
    let err = reloader
        .reload(&parse!("[routes]\n\"slow\" = \"3s\""))
        .expect_err("a route starts with /");
    assert_eq!(err.field(), "routes");
    assert_eq!((reloader.applied(), reloader.refused()), (1, 2));
}

/// The other patterns' tables: applied through their handles, their fixed fields refused with
/// nothing changed.
#[test]
fn every_patterns_table_is_applied_and_its_fixed_fields_refused() {
    use weir::bulkhead::{BulkheadLayer, BulkheadSettings, PartitionedConfig};
    use weir::circuit_breaker::CircuitBreakerConfig;
    use weir::core::config::SpecKey;
    use weir::load_shed::LoadShedConfig;
    use weir::retry::RetryConfig;

    // Circuit breaker, keyed.
    let config: CircuitBreakerConfig =
        parse!("failure_rate = 50\nminimum_calls = 20\nkey = \"authority\"");
    let layer = config.build_keyed().expect("valid");
    let breakers = weir::reloader(&config, layer.handle()).expect("valid");
    breakers
        .reload(&parse!(
            "failure_rate = 25\nminimum_calls = 4\nkey = \"authority\""
        ))
        .expect("applies");
    let err = breakers
        .reload(&parse!(
            "failure_rate = 25\nminimum_calls = 4\nkey = \"peer_ip\""
        ))
        .expect_err("the key is fixed");
    assert_eq!((err.field(), err.is_conflict()), ("key", true));

    // Retry.
    let config: RetryConfig = parse!("max_retries = 1\nbody_limit = 1024");
    let layer = config.build_http().expect("valid");
    let retry = weir::reloader(&config, layer.handle()).expect("valid");
    retry
        .reload(&parse!("max_retries = 3\nbody_limit = 1024"))
        .expect("applies");
    assert_eq!(layer.handle().settings().max_attempts, 4);
    let err = retry
        .reload(&parse!("max_retries = 5\nbody_limit = 2048"))
        .expect_err("fixed");
    assert_eq!(err.field(), "body_limit");
    assert_eq!(layer.handle().settings().max_attempts, 4);

    // Load shedder.
    let config: LoadShedConfig = parse!("max_in_flight = 2");
    let layer = config.build().expect("valid");
    let shed = weir::reloader(&config, layer.handle()).expect("valid");
    shed.reload(&parse!("max_in_flight = 5")).expect("applies");
    assert_eq!(layer.handle().limit(), 5);
    let err = shed
        .reload(&parse!("max_in_flight = 9\nname = \"edge\""))
        .expect_err("fixed");
    assert_eq!(err.field(), "name");
    assert_eq!(layer.handle().limit(), 5);

    // A plain bulkhead's table is its settings.
    let config: BulkheadSettings = parse!("max_concurrent = 8");
    let (_layer, handle) = BulkheadLayer::builder()
        .settings(config.clone())
        .build_with_handle()
        .expect("valid");
    let bulkhead = weir::reloader(&config, handle.clone()).expect("valid");
    bulkhead
        .reload(&parse!("max_concurrent = 3"))
        .expect("applies");
    assert_eq!(handle.stats().max_concurrent, 3);
    let err = bulkhead
        .reload(&parse!("max_concurrent = 4\nbackpressure = true"))
        .expect_err("fixed");
    assert_eq!(err.field(), "backpressure");
    assert_eq!(handle.stats().max_concurrent, 3);

    // A partitioned bulkhead: partitions resized, not added or removed.
    let table = |search: &str| {
        format!(
            "key = {{ header = \"x-downstream\" }}\npartition = {{ payments = 20{search} }}\nper_key = 4"
        )
    };
    let config: PartitionedConfig = parse!(&table(", search = 5"));
    let layer = config.build().expect("valid");
    let partitions = weir::reloader(&config, layer.handle()).expect("valid");
    partitions
        .reload(&parse!(&table(", search = 9")))
        .expect("applies");
    let search = SpecKey::Header("search".parse().expect("valid"));
    assert_eq!(layer.stats(&search).expect("a partition").max_concurrent, 9);
    let err = partitions.reload(&parse!(&table(""))).expect_err("removed");
    assert_eq!((err.field(), err.is_conflict()), ("partition", true));
    let err = partitions
        .reload(&parse!(&table(", search = 9, audit = 2")))
        .expect_err("added");
    assert_eq!(err.field(), "partition");
    assert_eq!(layer.stats(&search).expect("a partition").max_concurrent, 9);
    assert_eq!((partitions.applied(), partitions.refused()), (1, 2));
}
