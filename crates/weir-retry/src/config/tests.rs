use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::{backoff::Backoff, backoff::Jitter};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::BoxError;

use super::*;
use crate::{BudgetSpec, ReplayBody, RetryBudget};

const MS: Duration = Duration::from_millis(1);

fn parse(text: &str) -> RetryConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn parse_err(text: &str) -> String {
    toml::from_str::<RetryConfig>(text)
        .expect_err(text)
        .to_string()
}

/// A service that always fails, recording when each call started.
fn failing() -> (
    impl Service<u32, Response = u32, Error = BoxError> + Clone,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let service = service_fn(move |_: u32| {
        seen.lock().unwrap().push(Instant::now());
        std::future::ready(Err::<u32, BoxError>("connection reset".into()))
    });
    (service, calls)
}

type HttpReq = Request<ReplayBody<Full<Bytes>>>;

/// An HTTP service answering 503 with these headers, counting its calls.
fn unavailable(
    headers: &'static [(&'static str, &'static str)],
) -> (
    impl Service<HttpReq, Response = Response<Full<Bytes>>, Error = BoxError> + Clone,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let service = service_fn(move |_: HttpReq| {
        seen.lock().unwrap().push(Instant::now());
        let mut res = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE);
        for (name, value) in headers {
            res = res.header(*name, *value);
        }
        std::future::ready(Ok(res.body(Full::new(Bytes::new())).unwrap()))
    });
    (service, calls)
}

fn post(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::post("http://upstream/orders")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

fn gaps(calls: &[Instant]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

const FULL: &str = r#"
    name = "inventory"
    max_retries = 4
    backoff = { kind = "linear", base = "100ms", step = "50ms", max = "180ms", jitter = "none" }
    max_duration = "10s"
    max_server_delay = "1s"
    budget = { kind = "grpc_throttle", max_tokens = 10, token_ratio = 0.5 }
    seed = 7
"#;

const HTTP: &str = r#"
    body_limit = 4
    wait_for_body = false
    retry_non_idempotent = true
"#;

/// A builder's one budget, as a file without `budget_per_server` describes it.
fn unscoped<R, C, O, P>(
    builder: RetryBuilder<R, C, O, P>,
) -> RetryBuilder<R, C, O, P, ServerScope> {
    builder.map_parts(|r, c, o, ()| (r, c, o, None))
}

fn expected<R, C, O, P>(builder: RetryBuilder<R, C, O, P>) -> RetryBuilder<R, C, O, P> {
    builder
        .name("inventory")
        .max_attempts(5)
        .backoff(
            Backoff::linear(100 * MS)
                .step(50 * MS)
                .max(180 * MS)
                .jitter(Jitter::None),
        )
        .max_duration(Duration::from_secs(10))
        .max_server_delay(Duration::from_secs(1))
        .budget(RetryBudget::grpc_throttle(10, 0.5))
        .seed(7)
}

#[test]
fn a_full_file_sets_every_setting_of_the_builder() {
    let config = parse(FULL);
    assert_eq!(
        format!("{:?}", config.builder().unwrap()),
        format!("{:?}", expected(RetryLayer::builder()))
    );
    let config = parse(&format!("{FULL}{HTTP}"));
    assert_eq!(
        format!("{:?}", config.http_builder().unwrap()),
        format!(
            "{:?}",
            unscoped(expected(RetryLayer::http()))
                .body_limit(4)
                .wait_for_body(false)
                .retry_non_idempotent()
        )
    );
    assert_eq!(
        format!("{:?}", config.grpc_builder().unwrap()),
        format!(
            "{:?}",
            unscoped(expected(RetryLayer::grpc()))
                .body_limit(4)
                .wait_for_body(false)
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_file_retries_as_configured() {
    let (service, calls) = failing();
    let (layer, handle) = parse(FULL).builder().unwrap().build_with_handle().unwrap();
    assert!(layer.layer(service).oneshot(1).await.is_err());
    let calls = calls.lock().unwrap();
    // max_retries = 4: five calls; linear 100, 150, then capped at 180 ms, no jitter.
    assert_eq!(gaps(&calls), [100 * MS, 150 * MS, 180 * MS, 180 * MS]);
    assert_eq!(handle.retries(), 4);
    // The gRPC throttle: 10 tokens, 5 failures took 5, so none is left above the half.
    assert_eq!(handle.available(), Some(0));
    assert!(
        format!("{layer:?}").contains(r#"name: "inventory""#),
        "{layer:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_duration_and_the_server_delay_cap_are_applied() {
    // Retry-After: 1 is within max_server_delay, 1 s; max_duration 2500 ms stops the third
    // retry (it would start at 3 s).
    let config = parse(
        r#"
        max_attempts = 10
        max_server_delay = "1s"
        max_duration = "2500ms"
        "#,
    );
    let (service, calls) = unavailable(&[("retry-after", "1")]);
    let res = config
        .build_http()
        .unwrap()
        .layer(service)
        .oneshot(
            Request::get("http://upstream/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        gaps(&calls.lock().unwrap()),
        [Duration::from_secs(1), Duration::from_secs(1)]
    );

    // #16.3: Retry-After: 120 is beyond max_server_delay: never shortened, no retry.
    let (service, calls) = unavailable(&[("retry-after", "120")]);
    let res = config
        .build_http()
        .unwrap()
        .layer(service)
        .oneshot(
            Request::get("http://upstream/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn which_requests_are_retried_follows_the_file() {
    let count = |config: &str, grpc: bool, req: Request<Full<Bytes>>| {
        let config = parse(config);
        async move {
            let (service, calls) = unavailable(&[]);
            let status = if grpc {
                let layer = config.build_grpc().unwrap();
                layer.layer(service).oneshot(req).await.unwrap().status()
            } else {
                let layer = config.build_http().unwrap();
                layer.layer(service).oneshot(req).await.unwrap().status()
            };
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            calls.lock().unwrap().len()
        }
    };
    // HTTP: a POST is sent once by default, retried with retry_non_idempotent = true.
    assert_eq!(count("", false, post(b"x")).await, 1);
    assert_eq!(
        count("retry_non_idempotent = true", false, post(b"x")).await,
        3
    );
    // gRPC retries every method by default; false keeps it to idempotent calls.
    assert_eq!(count("", true, post(b"x")).await, 3);
    assert_eq!(
        count("retry_non_idempotent = false", true, post(b"x")).await,
        1
    );
    let mut keyed = post(b"x");
    keyed
        .headers_mut()
        .insert("idempotency-key", "order-17".parse().unwrap());
    assert_eq!(count("retry_non_idempotent = false", true, keyed).await, 3);
    // body_limit: a body over the limit is sent once.
    let limited = "retry_non_idempotent = true\nbody_limit = 4";
    assert_eq!(count(limited, false, post(b"1234")).await, 3);
    assert_eq!(count(limited, false, post(b"12345")).await, 1);
}

#[tokio::test(start_paused = true)]
async fn budget_per_server_keys_the_budget_by_authority() {
    // #16.4 in the file: 3 tokens per server, so each server's first failing request is retried
    // once and its second not at all; at most two servers keep a budget of their own.
    let config = parse(
        r#"
        max_attempts = 3
        backoff = { kind = "constant", base = "10ms" }
        budget = { kind = "grpc_throttle", max_tokens = 3, token_ratio = 1 }
        budget_per_server = true
        max_servers = 2
        "#,
    );
    let (service, calls) = unavailable(&[]);
    let (layer, handle) = config.http_builder().unwrap().build_with_handle().unwrap();
    let client = layer.layer(service);
    let get = |host: &str| {
        Request::get(format!("http://{host}/"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    for host in ["a.test", "a.test", "b.test", "c.test"] {
        client.clone().oneshot(get(host)).await.unwrap();
    }
    // a: 2 + 1 calls; b: 2 (its own budget, untouched by a's failures); c: 2 (the overflow's).
    assert_eq!(calls.lock().unwrap().len(), 3 + 2 + 2);
    assert_eq!(handle.budget().servers(), 2);

    // Without the flag, one budget: a's failures leave nothing for b.
    let config = parse(
        r#"
        max_attempts = 3
        backoff = { kind = "constant", base = "10ms" }
        budget = { kind = "grpc_throttle", max_tokens = 3, token_ratio = 1 }
        "#,
    );
    let (service, calls) = unavailable(&[]);
    let client = config.build_http().unwrap().layer(service);
    for host in ["a.test", "a.test", "b.test"] {
        client.clone().oneshot(get(host)).await.unwrap();
    }
    assert_eq!(calls.lock().unwrap().len(), 3 + 1);

    // `max_servers` says nothing without `budget_per_server`.
    let err = parse("max_servers = 10").build_http().unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.field(), "max_servers");
}

#[test]
fn an_empty_table_builds_the_defaults() {
    let config = parse("");
    assert_eq!(config, RetryConfig::default());
    assert_eq!(
        format!("{:?}", config.builder().unwrap()),
        format!("{:?}", RetryLayer::builder())
    );
    assert_eq!(
        format!("{:?}", config.http_builder().unwrap()),
        format!("{:?}", unscoped(RetryLayer::http()))
    );
    assert_eq!(
        format!("{:?}", config.grpc_builder().unwrap()),
        format!("{:?}", unscoped(RetryLayer::grpc()))
    );
    assert_eq!(
        format!("{:?}", config.build().unwrap()),
        format!("{:?}", RetryLayer::builder().build().unwrap())
    );
}

#[test]
fn budget_specs_describe_budgets() {
    #[derive(serde::Deserialize)]
    struct Holder {
        b: BudgetSpec,
    }
    let budget = |text: &str| {
        toml::from_str::<Holder>(&format!("b = {text}"))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .b
            .to_budget()
    };
    assert_eq!(budget(r#"{ kind = "ratio" }"#), RetryBudget::default());
    assert_eq!(
        budget(r#"{ kind = "ratio", ratio = 0.1, min_per_second = 5, window = "30s" }"#),
        RetryBudget::ratio(0.1)
            .min_per_second(5)
            .window(Duration::from_secs(30))
    );
    assert_eq!(
        budget(r#"{ kind = "ratio", window = "30s" }"#),
        RetryBudget::default().window(Duration::from_secs(30))
    );
    assert_eq!(
        budget(r#"{ kind = "grpc_throttle", max_tokens = 100, token_ratio = 1 }"#),
        RetryBudget::grpc_throttle(100, 1.0)
    );
    assert_eq!(
        budget(r#"{ kind = "unlimited" }"#),
        RetryBudget::unlimited()
    );
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let err = parse_err("max_retry = 3");
    assert!(err.contains("unknown field `max_retry`"), "{err}");
    let err = parse_err(r#"budget = { kind = "ratio", floor = 5 }"#);
    assert!(err.contains("unknown field `floor`"), "{err}");
    let err = parse_err(r#"budget = { kind = "unlimited", ratio = 1 }"#);
    assert!(err.contains("unknown field `ratio`"), "{err}");
    let err = parse_err(r#"backoff = { kind = "linear", base = "1s", factor = 2 }"#);
    assert!(err.contains("unknown field `factor`"), "{err}");
}

#[test]
fn bad_values_name_their_field() {
    // Out of the builder's range, or against the file's own rules.
    for (text, message) in [
        ("max_attempts = 0", "`max_attempts` must be at least 1"),
        (
            r#"budget = { kind = "ratio", ratio = 1500.0 }"#,
            "`budget.ratio` must be finite and within 0..=1000",
        ),
        (
            r#"budget = { kind = "ratio", window = "0s" }"#,
            "`budget.window` must be within 1 s..=60 s",
        ),
        (
            r#"budget = { kind = "grpc_throttle", max_tokens = 0, token_ratio = 0.1 }"#,
            "`budget.max_tokens` must be within 1..=1000",
        ),
        (
            r#"budget = { kind = "grpc_throttle", max_tokens = 10, token_ratio = 0 }"#,
            "`budget.token_ratio` must be finite and above 0",
        ),
        (
            "body_limit = 1024",
            "`body_limit` applies to HTTP requests only",
        ),
        (
            "wait_for_body = true",
            "`wait_for_body` applies to HTTP requests only",
        ),
        (
            "retry_non_idempotent = false",
            "`retry_non_idempotent` applies to HTTP requests only",
        ),
    ] {
        let err = parse(text).build().expect_err(text).to_string();
        assert!(err.contains(message), "{text}: {err}");
    }
    let err = parse("max_attempts = 0")
        .build_http()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`max_attempts`"), "{err}");
    parse("body_limit = 1024").build_http().unwrap();

    // Refused while reading the file: the error quotes the line with the field.
    for (text, words) in [
        (
            r#"max_duration = "1.5s""#,
            &["max_duration", "invalid duration \"1.5s\""][..],
        ),
        ("max_server_delay = 30", &["max_server_delay", "250ms"]),
        ("max_retries = -1", &["max_retries"]),
        (
            "max_attempts = 3\nmax_retries = 2",
            &["retry: `max_attempts` and `max_retries` are both set: choose one"],
        ),
        ("body_limit = \"64KiB\"", &["body_limit"]),
        (
            r#"budget = { kind = "token_bucket" }"#,
            &["budget", "unknown variant `token_bucket`"],
        ),
        (
            r#"budget = { kind = "grpc_throttle", max_tokens = 10 }"#,
            &["budget", "missing field `token_ratio`"],
        ),
        (
            r#"backoff = { kind = "exponential", base = "1s", factor = 0 }"#,
            &[
                "backoff",
                "factor must be a finite number of at least 1, got 0",
            ],
        ),
        (
            r#"backoff = { kind = "exponential", base = "1s", jitter = { proportional = 101 } }"#,
            &["backoff", "percentage from 0 to 100, got 101"],
        ),
        (
            r#"backoff = { kind = "constant", base = "1s", jitter = "random" }"#,
            &["backoff", "unknown variant `random`"],
        ),
        (
            r#"backoff = { kind = "constant" }"#,
            &["backoff", "missing field `base`"],
        ),
    ] {
        let err = parse_err(text);
        for word in words {
            assert!(err.contains(word), "{text}: {word:?} not in {err}");
        }
    }
}
