use std::time::Duration;
use weir_core::{backoff::Backoff, backoff::Jitter};

use tower::{Layer, ServiceExt, service_fn};
use weir_core::{BoxError, Error};

use super::*;
use crate::State;

fn parse(text: &str) -> CircuitBreakerConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn parse_err(text: &str) -> String {
    toml::from_str::<CircuitBreakerConfig>(text)
        .expect_err(text)
        .to_string()
}

fn build_err(text: &str) -> String {
    parse(text).build().expect_err(text).to_string()
}

/// A service that fails when asked to.
fn flaky() -> impl tower::Service<bool, Response = &'static str, Error = BoxError> + Clone {
    service_fn(|fail: bool| async move {
        if fail {
            Err::<_, BoxError>("down".into())
        } else {
            Ok("ok")
        }
    })
}

const FULL: &str = r#"
    name = "inventory"
    count_window = 10
    failure_rate = 40
    consecutive_failures = 3
    slow_calls = { threshold = "2s", rate = 80.5 }
    minimum_calls = 5
    open_backoff = { kind = "exponential", base = "4s", factor = 3, max = "1m", jitter = "none" }
    half_open_probes = 2
    max_half_open_wait = "20s"
    backpressure = true
    seed = 7
"#;

#[test]
fn a_full_file_sets_every_setting_of_the_builder() {
    let config = parse(FULL);
    let expected = CircuitBreakerLayer::builder()
        .name("inventory")
        .count_window(10)
        .failure_rate(40.0)
        .consecutive_failures(3)
        .slow_calls(Duration::from_secs(2), 80.5)
        .minimum_calls(5)
        .open_backoff(
            Backoff::exponential(Duration::from_secs(4))
                .factor(3.0)
                .max(Duration::from_secs(60)),
        )
        .half_open_probes(2)
        .max_half_open_wait(Duration::from_secs(20))
        .backpressure()
        .seed(7);
    assert_eq!(
        format!("{:?}", config.builder().unwrap()),
        format!("{expected:?}")
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_breaker_that_behaves_as_configured() {
    let mut config = parse(FULL);
    config.backpressure = None; // rejections are easier to see than waits
    let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
    let service = layer.layer(flaky());

    // consecutive_failures = 3 opens before the minimum of 5 calls.
    for _ in 0..3 {
        assert!(service.clone().oneshot(true).await.is_err());
    }
    assert_eq!(handle.state(), State::Open);
    // open_backoff: the first opening lasts the base, 4 s (no jitter).
    assert_eq!(
        handle.snapshot().open_remaining(),
        Some(Duration::from_secs(4))
    );
    let err = service.clone().oneshot(false).await.unwrap_err();
    let weir = Error::find(&*err).expect("a weir rejection");
    assert!(weir.is_circuit_open());
    assert_eq!(weir.layer(), Some("inventory"));

    // Half-open with 2 probes: one failed probe re-opens, for base × factor = 12 s.
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(service.clone().oneshot(true).await.is_err());
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        handle.snapshot().open_remaining(),
        Some(Duration::from_secs(12))
    );

    // Two good probes close it.
    tokio::time::advance(Duration::from_secs(12)).await;
    assert_eq!(service.clone().oneshot(false).await.unwrap(), "ok");
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(service.clone().oneshot(false).await.unwrap(), "ok");
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_and_a_time_window_trip_as_configured() {
    let config = parse(
        r#"
        time_window = { size = "10s", buckets = 10 }
        failure_rate = 50
        minimum_calls = 4
        open_duration = "30s"
        "#,
    );
    let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
    let service = layer.layer(flaky());
    // Failures older than the 10 s window do not count.
    service.clone().oneshot(true).await.unwrap_err();
    service.clone().oneshot(true).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(11)).await;
    for fail in [false, false, true] {
        let _ = service.clone().oneshot(fail).await;
    }
    assert_eq!(handle.state(), State::Closed, "1 failure in 3 calls");
    service.clone().oneshot(true).await.unwrap_err();
    assert_eq!(handle.state(), State::Open, "2 failures in 4 calls");
    assert_eq!(
        handle.snapshot().open_remaining(),
        Some(Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_false_leaves_only_consecutive_failures() {
    let config = parse(
        r#"
        failure_rate = false
        consecutive_failures = 4
        count_window = 4
        minimum_calls = 2
        "#,
    );
    let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
    let service = layer.layer(flaky());
    for fail in [true, true, true, false, true, true, true] {
        let _ = service.clone().oneshot(fail).await;
    }
    assert_eq!(
        handle.state(),
        State::Closed,
        "6 failures in 7 calls, never 4 in a row"
    );
    service.clone().oneshot(true).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(
        format!("{:?}", config.builder().unwrap()),
        format!(
            "{:?}",
            CircuitBreakerLayer::consecutive_failures(4)
                .count_window(4)
                .minimum_calls(2)
        )
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_circuit() {
    let config = parse(
        r#"
        slow_calls = { threshold = "1s", rate = 50 }
        minimum_calls = 2
        "#,
    );
    let (layer, handle) = config.builder().unwrap().build_with_handle().unwrap();
    let service = layer.layer(service_fn(|delay: u64| async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Ok::<_, BoxError>(())
    }));
    service.clone().oneshot(10).await.unwrap();
    service.clone().oneshot(1_500).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.snapshot().slow_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_use_the_key_and_its_bounds() {
    let config = parse(
        r#"
        consecutive_failures = 2
        key = { header = "x-tenant" }
        max_keys = 100
        idle_timeout = "1m"
        missing_key = "reject"
        "#,
    );
    let expected = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .keyed(KeySpec::Header(
            http::HeaderName::from_static("x-tenant").into(),
        ))
        .max_keys(100)
        .idle_timeout(Duration::from_secs(60))
        .missing_key(MissingKey::Reject);
    let keyed = config.keyed(config.builder().unwrap()).unwrap();
    assert_eq!(format!("{keyed:?}"), format!("{expected:?}"));

    let (layer, handle) = keyed.build_with_handle().unwrap();
    let service = layer.layer(service_fn(|req: http::Request<bool>| async move {
        if *req.body() {
            Err::<(), BoxError>("down".into())
        } else {
            Ok(())
        }
    }));
    let request = |tenant: Option<&str>, fail: bool| {
        let mut req = http::Request::new(fail);
        if let Some(tenant) = tenant {
            req.headers_mut()
                .insert("x-tenant", tenant.parse().unwrap());
        }
        req
    };
    for _ in 0..2 {
        service
            .clone()
            .oneshot(request(Some("acme"), true))
            .await
            .unwrap_err();
    }
    let err = service
        .clone()
        .oneshot(request(Some("acme"), false))
        .await
        .unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
    service
        .clone()
        .oneshot(request(Some("globex"), false))
        .await
        .unwrap();
    // (max_keys bounds each of the map's shards, so it is not two keys exactly: the bound
    // itself is `weir_core::keyed::KeyedMap`'s, tested there.)
    let mut states = Vec::new();
    handle.for_each(|key, snapshot| states.push((format!("{key:?}"), snapshot.state())));
    states.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        states,
        [
            (r#"Header("acme")"#.to_owned(), State::Open),
            (r#"Header("globex")"#.to_owned(), State::Closed),
        ]
    );
    // missing_key = "reject": no header, no call.
    let err = service
        .clone()
        .oneshot(request(None, false))
        .await
        .unwrap_err();
    assert!(Error::find(&*err).is_some_and(Error::is_circuit_open));
}

#[test]
fn an_empty_table_builds_the_defaults() {
    let config = parse("");
    assert_eq!(config, CircuitBreakerConfig::default());
    assert_eq!(
        format!("{:?}", config.builder().unwrap()),
        format!("{:?}", CircuitBreakerLayer::builder())
    );
    assert_eq!(
        format!("{:?}", config.build().unwrap()),
        format!("{:?}", CircuitBreakerLayer::new())
    );
    // Keyed: by authority, with the keyed builder's defaults.
    assert_eq!(
        format!("{:?}", config.keyed(config.builder().unwrap()).unwrap()),
        format!(
            "{:?}",
            CircuitBreakerLayer::builder().keyed(KeySpec::Authority)
        )
    );
    config.build_keyed().unwrap();
}

#[test]
fn backoff_specs_describe_whole_backoffs() {
    #[derive(serde::Deserialize)]
    struct Holder {
        b: BackoffSpec,
    }
    let backoff = |text: &str| {
        toml::from_str::<Holder>(&format!("b = {text}"))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .b
            .to_backoff()
    };
    let s = Duration::from_secs;
    assert_eq!(
        backoff(r#"{ kind = "constant", base = "5s" }"#),
        Backoff::constant(s(5))
    );
    assert_eq!(
        backoff(r#"{ kind = "linear", base = "5s", step = "1s", max = "1m", jitter = "equal" }"#),
        Backoff::linear(s(5))
            .step(s(1))
            .max(s(60))
            .jitter(Jitter::Equal)
    );
    assert_eq!(
        backoff(
            r#"{ kind = "exponential", base = "1s", factor = 1.5, jitter = { proportional = 20 } }"#
        ),
        Backoff::exponential(s(1))
            .factor(1.5)
            .jitter(Jitter::Proportional(20))
    );
    assert_eq!(
        backoff(r#"{ kind = "exponential", base = "1s", jitter = "decorrelated" }"#),
        Backoff::exponential(s(1)).jitter(Jitter::Decorrelated)
    );
    assert_eq!(
        backoff(r#"{ kind = "constant", base = "1s", jitter = "full" }"#).jitter_mode(),
        Jitter::Full
    );
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let err = parse_err("failure_rat = 50");
    assert!(err.contains("unknown field `failure_rat`"), "{err}");
    let err = parse_err(r#"time_window = { size = "10s", buckets = 10, slide = true }"#);
    assert!(err.contains("unknown field `slide`"), "{err}");
    let err = parse_err(r#"open_backoff = { kind = "constant", base = "1s", factor = 2 }"#);
    assert!(err.contains("unknown field `factor`"), "{err}");
}

#[test]
fn bad_values_name_their_field() {
    // Out of the builder's range.
    for (text, field) in [
        ("failure_rate = 150", "`failure_rate` must be a percentage"),
        ("failure_rate = 0", "`failure_rate` must be a percentage"),
        ("count_window = 0", "`count_window` must hold"),
        ("minimum_calls = 0", "`minimum_calls` must be at least 1"),
        (
            "consecutive_failures = 0",
            "`consecutive_failures` must be at least 1",
        ),
        (
            "half_open_probes = 0",
            "`half_open_probes` must be at least 1",
        ),
        (
            r#"max_half_open_wait = "0s""#,
            "`max_half_open_wait` must be above zero",
        ),
        (r#"open_duration = "0s""#, "open_duration"),
        (
            r#"open_backoff = { kind = "exponential", base = "0s" }"#,
            "open_backoff's base",
        ),
        (
            r#"slow_calls = { threshold = "1s", rate = 100.5 }"#,
            "`slow_calls` rate",
        ),
        (
            r#"slow_calls = { threshold = "0s", rate = 50 }"#,
            "`slow_calls` threshold",
        ),
        (
            r#"time_window = { size = "10s", buckets = 0 }"#,
            "`time_window` must have 1 to 1000 buckets",
        ),
        (
            r#"time_window = { size = "5ms", buckets = 10 }"#,
            "`time_window` buckets must be at least 1 ms",
        ),
    ] {
        let err = build_err(text);
        assert!(err.contains(field), "{text}: {err}");
    }
    let err = parse(r#"max_keys = 0"#)
        .build_keyed()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`max_keys` must be at least 1"), "{err}");

    // Refused while reading the file: the error quotes the line with the field.
    for (text, words) in [
        (
            r#"open_duration = "5x""#,
            &["open_duration", "invalid duration \"5x\""][..],
        ),
        (
            r#"max_half_open_wait = 30"#,
            &["max_half_open_wait", "250ms"],
        ),
        (r#"failure_rate = true"#, &["failure_rate", "or false"]),
        (
            r#"failure_rate = "half""#,
            &["failure_rate", "a percentage"],
        ),
        (
            r#"missing_key = "drop""#,
            &["missing_key", "unknown variant `drop`"],
        ),
        (r#"key = "cookie""#, &["key", "unknown variant `cookie`"]),
        (r#"count_window = -1"#, &["count_window"]),
        (
            r#"open_backoff = { kind = "fibonacci", base = "1s" }"#,
            &["open_backoff", "unknown variant `fibonacci`"],
        ),
        (
            r#"open_backoff = { kind = "exponential", base = "1s", factor = 0.5 }"#,
            &[
                "open_backoff",
                "factor must be a finite number of at least 1, got 0.5",
            ],
        ),
        (
            r#"open_backoff = { kind = "exponential", base = "1s", jitter = { proportional = 150 } }"#,
            &["open_backoff", "percentage from 0 to 100, got 150"],
        ),
        (
            r#"open_backoff = { kind = "exponential", base = "1s", jitter = "wobbly" }"#,
            &["open_backoff", "unknown variant `wobbly`"],
        ),
        (
            r#"open_backoff = { base = "1s" }"#,
            &["open_backoff", "missing field `kind`"],
        ),
        (
            r#"slow_calls = { threshold = "1s" }"#,
            &["slow_calls", "missing field `rate`"],
        ),
    ] {
        let err = parse_err(text);
        for word in words {
            assert!(err.contains(word), "{text}: {word:?} not in {err}");
        }
    }
}

#[test]
fn settings_that_exclude_each_other_are_refused() {
    let err = build_err(
        r#"
        count_window = 10
        time_window = { size = "10s", buckets = 10 }
        "#,
    );
    assert_eq!(
        err,
        "circuit breaker: `time_window` and `count_window` are both set: choose one"
    );
    let err = build_err(
        r#"
        open_duration = "5s"
        open_backoff = { kind = "constant", base = "5s" }
        "#,
    );
    assert_eq!(
        err,
        "circuit breaker: `open_backoff` and `open_duration` are both set: choose one"
    );

    // Keyed fields belong to build_keyed; backpressure to build.
    for (text, field) in [
        (r#"key = "peer_ip""#, "key"),
        ("max_keys = 10", "max_keys"),
        (r#"idle_timeout = "1m""#, "idle_timeout"),
        (r#"missing_key = "bypass""#, "missing_key"),
    ] {
        let err = build_err(text);
        assert!(
            err.starts_with(&format!(
                "circuit breaker: `{field}` configures keyed breakers"
            )),
            "{err}"
        );
        parse(text).build_keyed().unwrap();
    }
    let err = parse("backpressure = true")
        .build_keyed()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("circuit breaker: `backpressure` does not apply to keyed"),
        "{err}"
    );
    parse("backpressure = false").build_keyed().unwrap();
}
