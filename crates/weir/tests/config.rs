//! `ServerConfig` and `ClientConfig` read from TOML build stacks that behave as configured, keep
//! the presets' defaults for absent fields, and refuse bad files with errors naming the field.

#![cfg(feature = "config")]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use weir::{ClientConfig, ClientStack, ConfigError, ServerConfig, ServerStack};

/// A whole application file: weir's two tables beside the application's own.
const FULL: &str = r#"
[app]
name = "checkout"

[server]
timeout = "1s"
max_in_flight = 1

[client]
total_timeout = "10s"
attempt_timeout = "1s"
max_retries = 1
failure_rate = 50.0
minimum_calls = 20
sampling_window = "2s"
open_duration = "2m"
max_concurrent = 10
"#;

/// The `[server]` and `[client]` tables of a TOML document.
fn tables(doc: &str) -> Result<(ServerConfig, ClientConfig), toml::de::Error> {
    let mut doc: toml::Table = toml::from_str(doc)?;
    let mut table = |name| {
        doc.remove(name)
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
    };
    let server = table("server").try_into()?;
    let client = table("client").try_into()?;
    Ok((server, client))
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

/// A handler that sleeps on `/slow`.
async fn handler(req: Request<String>) -> Result<Response<String>, io::Error> {
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(Response::new(String::from("ok")))
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_server_stack_with_its_timeout_and_cap() {
    let (server, _) = tables(FULL).unwrap();
    let stack = server.build().unwrap();
    assert_eq!(stack.timeout(), Duration::from_secs(1));
    assert_eq!(stack.max_in_flight(), 1);
    let server = stack.layer(service_fn(handler));

    let started = tokio::time::Instant::now();
    let Ok(slow) = server.clone().oneshot(get("/slow")).await;
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(1));

    let busy = tokio::spawn(server.clone().oneshot(get("/slow")));
    tokio::task::yield_now().await;
    let Ok(shed) = server.oneshot(get("/")).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    busy.abort();
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_client_stack_with_its_timeouts_and_retries() {
    let (_, client) = tables(FULL).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    // Hangs on every call but the second: the attempt timeout (1 s) cuts the first, the one
    // retry succeeds.
    let client = client.build().unwrap().layer(service_fn(move |n: u32| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if call != 1 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, io::Error>(n)
        }
    }));
    let started = tokio::time::Instant::now();
    assert_eq!(client.clone().oneshot(7).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(10));

    // `max_retries = 1`: two attempts, both cut at 1 s, then the timeout comes back.
    let started = tokio::time::Instant::now();
    let err = client.oneshot(8).await.unwrap_err();
    assert!(
        weir::Error::find(&*err).is_some_and(weir::Error::is_timeout),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_full_file_feeds_every_client_field_to_the_builder() {
    let (_, client) = tables(FULL).unwrap();
    let expected = ClientStack::builder()
        .total_timeout(Duration::from_secs(10))
        .attempt_timeout(Duration::from_secs(1))
        .max_retries(1)
        .failure_rate(50.0)
        .minimum_calls(20)
        .sampling_window(Duration::from_secs(2))
        .open_duration(Duration::from_secs(120))
        .max_concurrent(10);
    assert_eq!(
        format!("{:?}", client.builder().unwrap()),
        format!("{expected:?}")
    );
}

#[test]
fn empty_tables_keep_the_presets_defaults() {
    let (server, client) = tables("[server]\n[client]\n").unwrap();
    assert_eq!(server, ServerConfig::default());
    assert!(server.build().unwrap().rate_limit().get().is_none());
    let stack = server.build().unwrap();
    assert_eq!(stack.timeout(), Duration::from_secs(30));
    assert_eq!(stack.max_in_flight(), 1_000);
    assert_eq!(
        format!("{:?}", client.builder().unwrap()),
        format!("{:?}", ClientStack::builder())
    );
    assert!(client.build().is_ok());
    assert_eq!(
        format!("{:?}", ServerConfig::default().builder().unwrap()),
        format!("{:?}", ServerStack::builder())
    );
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let err = tables("[client]\ntotal_timeout = \"5s\"\nattempt_timout = \"1s\"\n").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("unknown field `attempt_timout`"),
        "{message}"
    );
    let err = tables("[server]\nmax_inflight = 3\n").unwrap_err();
    assert!(err.to_string().contains("max_inflight"), "{err}");
}

#[test]
fn a_malformed_duration_names_the_field_and_the_rule() {
    let err = tables("[client]\nattempt_timeout = \"10 seconds\"\n").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("attempt_timeout"), "{message}");
    assert!(message.contains("\"10 seconds\""), "{message}");
    assert!(message.contains("us, ms, s, m, h or d"), "{message}");

    let err = tables("[server]\ntimeout = \"1.5s\"\n").unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_table_limits_each_key_and_answers_429() {
    let (server, _) = tables(
        r#"
        [server]
        [server.rate_limit]
        key = { header = "x-tenant" }
        quota = { rate = 2, per = "1m" }
        response_headers = "ietf"
        "#,
    )
    .unwrap();
    let server = server.build().unwrap().layer(service_fn(handler));
    let tenant = |name: &str| {
        Request::get("/")
            .header("x-tenant", name)
            .body(String::new())
            .unwrap()
    };
    for _ in 0..2 {
        let Ok(ok) = server.clone().oneshot(tenant("acme")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(ok.headers().contains_key("ratelimit"), "{ok:?}");
    }
    let Ok(limited) = server.clone().oneshot(tenant("acme")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "30");
    // Another key has its own quota.
    let Ok(other) = server.oneshot(tenant("globex")).await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[test]
fn a_bad_rate_limit_table_is_refused_under_its_name() {
    let (server, _) = tables("[server.rate_limit]\nquota = { rate = 0, per = \"1s\" }\n").unwrap();
    let err = server.build().unwrap_err();
    assert_eq!(err.pattern(), "rate limit", "{err:?}");
    // The field is named inside its table.
    assert!(err.to_string().contains("rate_limit"), "{err}");
    assert!(err.to_string().contains("quota.rate"), "{err}");
    assert!(err.to_string().contains("must be at least 1"), "{err}");
    let err = tables("[server.rate_limit]\nalgorithm = \"leaky\"\n").unwrap_err();
    assert!(err.to_string().contains("leaky"), "{err}");
}

#[test]
fn no_rate_limit_table_means_no_rate_limit() {
    let (server, _) = tables("[server]\ntimeout = \"5s\"\n").unwrap();
    assert!(server.build().unwrap().rate_limit().get().is_none());
}

#[test]
fn an_attempt_timeout_longer_than_the_total_is_refused_by_name() {
    let (_, client) =
        tables("[client]\ntotal_timeout = \"5s\"\nattempt_timeout = \"10s\"\n").unwrap();
    let err = client.build().unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.field(), "attempt_timeout");
    let message = err.to_string();
    assert!(message.contains("attempt_timeout"), "{message}");
    assert!(message.contains("total_timeout"), "{message}");
}

#[test]
fn the_presets_rules_apply_to_a_file() {
    let (server, _) = tables("[server]\ntimeout = \"0s\"\n").unwrap();
    let err = server.build().unwrap_err();
    assert_eq!(
        err,
        ConfigError::zero("server stack", "timeout", "must be greater than zero")
    );
    let (_, client) = tables("[client]\nattempt_timeout = \"20s\"\n").unwrap();
    let err = client.build().unwrap_err();
    assert!(err.is_out_of_range(), "{err:?}");
    assert_eq!(err.field(), "sampling_window");
    assert!(err.to_string().contains("sampling_window"), "{err}");
}

/// #16.2: `incoming_floor` (and `below_floor`) in a `[server]` table hold a client's deadline to
/// the floor, as `ServerBuilder::incoming_floor` does; the rules name the field.
#[tokio::test(start_paused = true)]
async fn a_server_file_sets_the_incoming_floor() {
    use weir::timeout::BelowFloor;

    let (server, _) = tables("[server]\nincoming_floor = \"50ms\"\n").unwrap();
    let stack = server.build().unwrap();
    assert_eq!(
        stack.incoming_floor(),
        Some((Duration::from_millis(50), BelowFloor::Reject))
    );
    let mut req = get("/");
    req.headers_mut()
        .insert("x-timeout-ms", http::HeaderValue::from_static("1"));
    let Ok(refused) = stack.layer(service_fn(handler)).oneshot(req).await;
    assert_eq!(refused.status(), StatusCode::GATEWAY_TIMEOUT);

    let (server, _) =
        tables("[server]\nincoming_floor = \"50ms\"\nbelow_floor = \"raise\"\n").unwrap();
    assert_eq!(
        server.build().unwrap().incoming_floor(),
        Some((Duration::from_millis(50), BelowFloor::Raise))
    );

    let (server, _) = tables("[server]\ntimeout = \"1s\"\nincoming_floor = \"2s\"\n").unwrap();
    let err = server.build().unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.field(), "incoming_floor");
    let (server, _) = tables("[server]\nincoming_floor = \"0ms\"\n").unwrap();
    assert!(server.build().unwrap_err().is_zero());
    let (server, _) = tables("[server]\nbelow_floor = \"raise\"\n").unwrap();
    let err = server.build().unwrap_err();
    assert!(err.is_missing(), "{err:?}");
    assert_eq!(err.field(), "incoming_floor");
    assert!(tables("[server]\nbelow_floor = \"wait\"\n").is_err());
}

/// #23: an `[idempotency]` table beside weir's others reads into `IdempotencySettings` (the
/// `config` feature turns on weir-idempotency's `serde`), and `build()` checks it as code.
#[cfg(feature = "idempotency")]
#[test]
fn an_idempotency_table_builds_the_layer_and_a_broken_one_is_refused_by_name() {
    use weir::idempotency::{IdempotencyLayer, IdempotencySettings};

    #[derive(serde::Deserialize)]
    struct File {
        idempotency: IdempotencySettings,
    }
    let file: File = toml::from_str(
        r#"
        [idempotency]
        required = { paths = ["/api/orders"] }
        ttl = "1h"
        "#,
    )
    .unwrap();
    assert_eq!(file.idempotency.ttl, Duration::from_secs(3600));
    IdempotencyLayer::builder()
        .settings(file.idempotency)
        .build()
        .expect("a valid table builds");

    let file: File = toml::from_str("[idempotency]\nttl = \"1s\"\nlease = \"1m\"").unwrap();
    let err: ConfigError = IdempotencyLayer::builder()
        .settings(file.idempotency)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "lease");
    assert!(err.to_string().contains("must be at most `ttl`"), "{err}");
}
