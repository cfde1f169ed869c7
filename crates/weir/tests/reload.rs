//! #25: a stack built from a `ServerConfig` takes a new file while it runs: validated whole
//! first, a change that needs a restart refused with nothing applied, the rate limit's new quotas
//! in the next response; and `weir::watch` reloads the file when its text changes, on paused
//! time, keeping the running settings on a broken file.

#![cfg(feature = "reload")]

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir::core::reconfigure::Reconfigure;
use weir::{ConfigError, ServerConfig};

fn config(text: &str) -> ServerConfig {
    toml::from_str(text).expect("parses")
}

fn limits(per_second: u32, gold: u32) -> ServerConfig {
    config(&format!(
        r#"
        timeout = "5s"
        [rate_limit]
        key = {{ header = "x-tenant" }}
        response_headers = "ietf"
        quota = {{ rate = {per_second}, per = "1s", name = "api" }}
        tier = {{ gold = {{ rate = {gold}, per = "1s", name = "api" }} }}
        tier_of = {{ acme = "gold" }}
        "#
    ))
}

/// The `RateLimit-Policy` of one request from `tenant` through `svc`.
async fn policy<S, B>(svc: &mut S, tenant: &str) -> String
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
{
    let req = Request::builder()
        .header("x-tenant", tenant)
        .body(String::new())
        .expect("valid");
    let res = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("infallible");
    res.headers()
        .get("ratelimit-policy")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_the_new_quotas_to_the_running_stack() {
    let (stack, reloader) = limits(10, 100).build_reloadable().expect("valid");
    let mut svc = stack.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    assert_eq!(policy(&mut svc, "zed").await, r#""api";q=10;w=1"#);
    assert_eq!(policy(&mut svc, "acme").await, r#""api";q=100;w=1"#);
    reloader.reload(&limits(20, 300)).expect("applies");
    assert_eq!(policy(&mut svc, "zed").await, r#""api";q=20;w=1"#);
    assert_eq!(policy(&mut svc, "acme").await, r#""api";q=300;w=1"#);
    assert_eq!((reloader.applied(), reloader.refused()), (1, 0));
    assert_eq!(reloader.running(), limits(20, 300));
}

/// Every refusal applies nothing: an invalid table (by the builders' rules, the field named in
/// its table), and each change that needs a restart (`is_conflict`, the field named).
#[tokio::test(start_paused = true)]
async fn a_refused_reload_applies_nothing() {
    let (stack, reloader) = limits(10, 100).build_reloadable().expect("valid");
    let mut svc = stack.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    let refused =
        |text: &str| -> ConfigError { reloader.reload(&config(text)).expect_err("refused") };
    let zero = refused(
        r#"
        timeout = "5s"
        [rate_limit]
        key = { header = "x-tenant" }
        response_headers = "ietf"
        quota = { rate = 0, per = "1s", name = "api" }
        tier = { gold = { rate = 100, per = "1s", name = "api" } }
        tier_of = { acme = "gold" }
        "#,
    );
    assert_eq!(zero.field(), "rate_limit.quota.rate");
    let key = refused(
        r#"
        timeout = "5s"
        [rate_limit]
        key = "peer_ip"
        response_headers = "ietf"
        quota = { rate = 20, per = "1s", name = "api" }
        tier = { gold = { rate = 100, per = "1s", name = "api" } }
        tier_of = { "10.0.0.1" = "gold" }
        "#,
    );
    assert!(key.is_conflict());
    assert_eq!(key.field(), "rate_limit.tier_of");
    assert!(key.to_string().contains("needs a restart"), "{key}");
    let new_tier = refused(
        r#"
        timeout = "5s"
        [rate_limit]
        key = { header = "x-tenant" }
        response_headers = "ietf"
        quota = { rate = 20, per = "1s", name = "api" }
        tier = { gold = { rate = 100, per = "1s", name = "api" }, silver = { rate = 50, per = "1s" } }
        tier_of = { acme = "gold" }
        "#,
    );
    assert!(new_tier.is_conflict());
    assert_eq!(new_tier.field(), "rate_limit.tier");
    let removed = refused(r#"timeout = "5s""#);
    assert_eq!(removed.field(), "rate_limit");
    let body = refused(
        r#"
        timeout = "5s"
        refusal_body = "problem_json"
        [rate_limit]
        key = { header = "x-tenant" }
        response_headers = "ietf"
        quota = { rate = 20, per = "1s", name = "api" }
        tier = { gold = { rate = 100, per = "1s", name = "api" } }
        tier_of = { acme = "gold" }
        "#,
    );
    assert!(body.is_conflict());
    assert_eq!(body.field(), "refusal_body");
    assert_eq!((reloader.applied(), reloader.refused()), (0, 5));
    assert_eq!(reloader.running(), limits(10, 100));
    assert_eq!(policy(&mut svc, "zed").await, r#""api";q=10;w=1"#);
}

/// The watcher polls the file on (paused) time: an edit is applied at the next poll, an
/// unchanged file is not reloaded, a broken one keeps the running settings and is counted.
#[tokio::test(start_paused = true)]
async fn the_watcher_reloads_the_file_when_its_text_changes() {
    let dir = std::env::temp_dir().join(format!("weir-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("server.toml");
    let text = |per_second: u32| {
        format!(
            "timeout = \"5s\"\n[rate_limit]\nkey = {{ header = \"x-tenant\" }}\n\
             response_headers = \"ietf\"\nquota = {{ rate = {per_second}, per = \"1s\", name = \"api\" }}\n\
             tier = {{ gold = {{ rate = 100, per = \"1s\", name = \"api\" }} }}\n\
             tier_of = {{ acme = \"gold\" }}\n"
        )
    };
    std::fs::write(&path, text(10)).expect("write");
    let (stack, reloader) = config(&text(10)).build_reloadable().expect("valid");
    let mut svc = stack.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    let every = Duration::from_secs(5);
    let watcher = weir::watch(path.clone(), reloader.clone(), every, |t: &str| {
        toml::from_str::<ServerConfig>(t)
    });
    /// Lets the poll due after `every` run.
    async fn poll(watcher: &weir::Watcher, every: Duration) {
        let before = watcher.checks();
        // The watcher's task first reaches its sleep, then the sleep's time passes.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::advance(every).await;
        for _ in 0..1_000 {
            if watcher.checks() > before {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the watcher did not poll");
    }
    poll(&watcher, every).await;
    assert_eq!((watcher.applied(), reloader.applied()), (0, 0), "unchanged");
    std::fs::write(&path, text(40)).expect("edit");
    poll(&watcher, every).await;
    assert_eq!((watcher.applied(), reloader.applied()), (1, 1));
    assert_eq!(policy(&mut svc, "zed").await, r#""api";q=40;w=1"#);
    std::fs::write(&path, text(40).replace("rate = 40", "rate = 0")).expect("break");
    poll(&watcher, every).await;
    assert_eq!((watcher.applied(), watcher.failed()), (1, 1));
    assert!(
        watcher
            .last_error()
            .expect("an error")
            .contains("rate_limit.quota.rate"),
        "{:?}",
        watcher.last_error()
    );
    // Not retried while the text stays the same.
    poll(&watcher, every).await;
    assert_eq!(watcher.failed(), 1);
    assert_eq!(policy(&mut svc, "zed").await, r#""api";q=40;w=1"#);
    std::fs::write(&path, "not = [toml").expect("garble");
    poll(&watcher, every).await;
    assert_eq!(watcher.failed(), 2);
    assert_eq!(policy(&mut svc, "zed").await, r#""api";q=40;w=1"#);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server whose rate limit is keyed by `x-tenant`, with `max_in_flight` and `timeout`.
fn server(max_in_flight: usize, timeout: &str, per_second: u32) -> ServerConfig {
    config(&format!(
        r#"
        timeout = "{timeout}"
        max_in_flight = {max_in_flight}
        [rate_limit]
        key = {{ header = "x-tenant" }}
        response_headers = "ietf"
        quota = {{ rate = {per_second}, per = "1s", name = "api" }}
        "#
    ))
}

fn request() -> Request<String> {
    Request::builder()
        .header("x-tenant", "zed")
        .body(String::new())
        .expect("valid")
}

/// One call through `svc`; its response is held (a call is in flight until its body ends).
async fn call<S, B>(svc: &mut S) -> Response<B>
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
{
    svc.ready()
        .await
        .expect("ready")
        .call(request())
        .await
        .expect("infallible")
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_max_in_flight_sheds_at_the_new_level() {
    let (stack, reloader) = server(2, "5s", 1_000).build_reloadable().expect("valid");
    let mut svc = stack.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    let mut held = Vec::new();
    for _ in 0..2 {
        let res = call(&mut svc).await;
        assert_eq!(res.status(), StatusCode::OK);
        held.push(res);
    }
    assert_eq!(
        call(&mut svc).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    reloader.reload(&server(4, "5s", 1_000)).expect("applies");
    assert_eq!(stack.load_shed().limit(), 4);
    for _ in 0..2 {
        let res = call(&mut svc).await;
        assert_eq!(res.status(), StatusCode::OK, "admitted up to the new limit");
        held.push(res);
    }
    assert_eq!(
        call(&mut svc).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Lowered below the calls in flight: they finish; no new one until they are below it.
    reloader.reload(&server(1, "5s", 1_000)).expect("applies");
    assert_eq!(
        call(&mut svc).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    held.clear();
    let first = call(&mut svc).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        call(&mut svc).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!((reloader.applied(), reloader.refused()), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_timeout_applies_to_the_calls_started_after() {
    let (stack, reloader) = server(10, "5s", 1_000).build_reloadable().expect("valid");
    let svc = stack.layer(service_fn(|_req: Request<String>| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    let before = tokio::spawn(svc.clone().oneshot(request()));
    tokio::time::advance(Duration::from_secs(1)).await;
    reloader.reload(&server(10, "2s", 1_000)).expect("applies");
    let after = tokio::spawn(svc.clone().oneshot(request()));
    let before = before.await.expect("joins").expect("infallible");
    let after = after.await.expect("joins").expect("infallible");
    assert_eq!(
        before.status(),
        StatusCode::OK,
        "started under 5 s, done in 3 s"
    );
    assert_eq!(
        after.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "started under 2 s"
    );
    assert_eq!(stack.timeout_handle().version(), 1);
}

/// A file with one bad table applies none of its other changes: the shedder's limit, the
/// timeout and the rate limit keep their running settings.
#[tokio::test(start_paused = true)]
async fn a_file_with_one_bad_table_applies_nothing() {
    let (stack, reloader) = server(2, "5s", 10).build_reloadable().expect("valid");
    let mut svc = stack.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    let timeout_settings = stack.timeout_handle().settings();
    let err = reloader
        .reload(&server(4, "2s", 0))
        .expect_err("a zero quota is refused");
    assert_eq!(err.field(), "rate_limit.quota.rate");
    assert_eq!(stack.load_shed().limit(), 2);
    assert_eq!(stack.timeout_handle().version(), 0);
    assert_eq!(
        format!("{:?}", stack.timeout_handle().settings()),
        format!("{timeout_settings:?}")
    );
    assert_eq!(reloader.running(), server(2, "5s", 10));
    let held = [call(&mut svc).await, call(&mut svc).await];
    assert!(held.iter().all(|r| r.status() == StatusCode::OK));
    assert_eq!(
        held[0].headers()["ratelimit-policy"],
        r#""api";q=10;w=1"#,
        "the quota in force"
    );
    assert_eq!(
        call(&mut svc).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

fn client(text: &str) -> weir::ClientConfig {
    toml::from_str(text).expect("parses")
}

/// A transport that always fails, counting its calls.
fn failing(
    calls: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone + Send + 'static
{
    let calls = std::sync::Arc::clone(calls);
    service_fn(move |_n: u32| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Err::<u32, _>(std::io::Error::other("down")) }
    })
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_max_retries_applies_to_the_next_call() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let (stack, reloader) = client("max_retries = 1").build_reloadable().expect("valid");
    let svc = stack.layer(failing(&calls));
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(calls.swap(0, Ordering::SeqCst), 2, "one retry");
    reloader
        .reload(&client("max_retries = 3"))
        .expect("applies");
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(calls.swap(0, Ordering::SeqCst), 4, "three retries");
    assert_eq!(stack.retry_handle().settings().max_attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_breaker_threshold_opens_at_the_new_minimum() {
    use std::sync::atomic::AtomicUsize;
    use weir::circuit_breaker::State;
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let text =
        |minimum: u32| format!("max_retries = 0\nfailure_rate = 50.0\nminimum_calls = {minimum}");
    let (stack, reloader) = client(&text(20)).build_reloadable().expect("valid");
    let svc = stack.layer(failing(&calls));
    for _ in 0..5 {
        assert!(svc.clone().oneshot(1).await.is_err());
    }
    assert_eq!(
        stack.breaker_handle().state(),
        State::Closed,
        "5 calls, 20 needed"
    );
    reloader.reload(&client(&text(5))).expect("applies");
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(
        stack.breaker_handle().state(),
        State::Open,
        "6 failures, 5 needed"
    );
}

/// A client file with one bad setting applies none of its other changes.
#[tokio::test(start_paused = true)]
async fn a_client_file_with_one_bad_setting_applies_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let (stack, reloader) = client("max_retries = 1\nmax_concurrent = 8\nminimum_calls = 20")
        .build_reloadable()
        .expect("valid");
    let svc = stack.layer(failing(&calls));
    let breaker = format!("{:?}", stack.breaker_handle().settings());
    let err = reloader
        .reload(&client(
            "max_retries = 3\nmax_concurrent = 2\nminimum_calls = 5\n\
             total_timeout = \"1s\"\nattempt_timeout = \"2s\"",
        ))
        .expect_err("attempt longer than total");
    assert_eq!(err.field(), "attempt_timeout");
    assert_eq!(stack.retry_handle().settings().max_attempts, 2);
    assert_eq!(stack.bulkhead_handle().settings().max_concurrent, 8);
    assert_eq!(format!("{:?}", stack.breaker_handle().settings()), breaker);
    let (total, attempt) = stack.timeout_handles();
    assert_eq!((total.version(), attempt.version()), (0, 0));
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "still one retry");
    assert_eq!((reloader.applied(), reloader.refused()), (0, 1));
}
