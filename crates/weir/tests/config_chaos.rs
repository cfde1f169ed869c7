//! #24: the `[chaos]` table of `ServerConfig` and `ClientConfig`. Absent, the stack has no chaos
//! layer at all; present, the layer is built in the stack's chaos slot, disabled unless the
//! table says `enabled = true`, deaf to the `x-weir-fault` header unless it says
//! `header = true`; a broken field is refused by name; a reload applies the switch and the
//! probabilities and refuses the rest as needing a restart.

#![cfg(feature = "config")]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use weir::chaos::Fault;
use weir::core::inspect::Registry;
use weir::{ClientConfig, ServerConfig};

fn server(text: &str) -> ServerConfig {
    toml::from_str(text).expect("parses")
}

fn client(text: &str) -> ClientConfig {
    toml::from_str(text).expect("parses")
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

/// A request carrying the fault header.
fn asking(fault: &str) -> Request<String> {
    Request::get("/api")
        .header("x-weir-fault", fault)
        .body(String::new())
        .unwrap()
}

async fn handler(_req: Request<String>) -> Result<Response<String>, io::Error> {
    Ok(Response::new(String::from("ok")))
}

/// The status `config`'s stack answers `req` with, over [`handler`].
async fn status(stack: &weir::ConfigServerStack, req: Request<String>) -> StatusCode {
    let Ok(response) = stack.layer(service_fn(handler)).oneshot(req).await;
    response.status()
}

#[tokio::test(start_paused = true)]
async fn no_chaos_table_means_no_chaos_layer() {
    let stack = server("timeout = \"5s\"").build().unwrap();
    assert!(stack.chaos_layer().get().is_none());
    assert!(stack.chaos_layer().handle().is_none());
    // Nothing reads the fault header either.
    assert_eq!(status(&stack, asking("status=503")).await, StatusCode::OK);

    let stack = client("max_retries = 1").build().unwrap();
    assert!(stack.chaos_layer().handle().is_none());
    let client = stack.layer(service_fn(|n: u32| async move { Ok::<_, io::Error>(n) }));
    assert_eq!(client.oneshot(7).await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_chaos_table_builds_a_disabled_layer_until_it_says_enabled() {
    let stack = server("[chaos]\nstatus = 1.0\nstatus_code = 500")
        .build()
        .unwrap();
    let faults = stack.chaos_layer().handle().expect("a chaos layer");
    assert!(!faults.is_enabled(), "a file's chaos layer starts disabled");
    assert_eq!(status(&stack, get("/")).await, StatusCode::OK);
    faults.enable();
    assert_eq!(
        status(&stack, get("/")).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // Innermost: the health probes bypass it.
    assert_eq!(status(&stack, get("/readyz")).await, StatusCode::OK);
    assert_eq!(faults.injected(Fault::Status), 1);

    let stack = server("[chaos]\nenabled = true\nstatus = 1.0")
        .build()
        .unwrap();
    assert_eq!(
        status(&stack, get("/")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn the_fault_header_is_ignored_unless_the_table_allows_it() {
    // A copied file that enables the layer still lets no client ask for faults.
    let stack = server("[chaos]\nenabled = true").build().unwrap();
    assert_eq!(status(&stack, asking("status=502")).await, StatusCode::OK);
    let faults = stack.chaos_layer().handle().unwrap();
    assert_eq!(faults.injected_total(), 0);

    let stack = server("[chaos]\nenabled = true\nheader = true")
        .build()
        .unwrap();
    assert_eq!(
        status(&stack, asking("status=502")).await,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_chaos_table_stalls_the_transport_inside_the_attempt_timeout() {
    let config = client(
        r#"
        attempt_timeout = "1s"
        max_retries = 1
        [chaos]
        enabled = true
        stall = 1.0
        "#,
    );
    let stack = config.build().unwrap();
    let faults = stack.chaos_layer().handle().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let client = stack.layer(service_fn(move |n: u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, io::Error>(n) }
    }));
    let err = client.clone().oneshot(7).await.unwrap_err();
    assert!(
        weir::Error::find(&*err).is_some_and(weir::Error::is_timeout),
        "{err}"
    );
    // Each attempt stalled (the retry retried the first), none reached the transport.
    assert_eq!(faults.injected(Fault::Stall), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    faults.disable();
    assert_eq!(client.oneshot(8).await.unwrap(), 8);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_broken_chaos_table_is_refused_under_its_name() {
    let err = server("[chaos]\nstatus = 1.5").build().unwrap_err();
    assert_eq!((err.pattern(), err.field()), ("chaos", "chaos.status"));
    assert!(err.is_out_of_range(), "{err}");
    let err = server("[chaos]\nstatus_code = 99").build().unwrap_err();
    assert_eq!(err.field(), "chaos.status_code");
    let err = server("[chaos]\nroute_prefix = \"api\"")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "chaos.route_prefix");
    // The client's layer is in plain mode: the HTTP fields are refused.
    let err = client("[chaos]\nstatus = 0.1").build().unwrap_err();
    assert_eq!(err.field(), "chaos.status");
    let err = client("[chaos]\nheader = true").build().unwrap_err();
    assert_eq!(err.field(), "chaos.header");
    // An error fault is code, not a file field.
    let err = toml::from_str::<ServerConfig>("[chaos]\nerror = 0.1").unwrap_err();
    assert!(err.to_string().contains("unknown field `error`"), "{err}");
}

#[test]
fn a_registry_shows_the_chaos_layer_under_its_name() {
    let registry = Registry::new();
    let config = server("[chaos]\nname = \"game-day\"");
    let stack = config.build_in(&registry).unwrap();
    let shown = registry.find("chaos", "game-day").expect("registered");
    let state = shown.snapshot().state.map(|s| (s.name, s.value));
    assert_eq!(state, Some(("disabled", 0)));
    shown.act("enable", None).unwrap();
    assert!(stack.chaos_layer().handle().unwrap().is_enabled());
    // A second stack of the same file: the name is taken.
    assert!(config.build_in(&registry).unwrap_err().is_duplicate());
}

#[cfg(feature = "reload")]
#[tokio::test(start_paused = true)]
async fn a_reload_applies_the_switch_and_probabilities_and_refuses_the_rest() {
    let running = server("[chaos]\nstatus = 1.0");
    let (stack, reloader) = running.build_reloadable().unwrap();
    assert_eq!(status(&stack, get("/")).await, StatusCode::OK);

    let on = server("[chaos]\nenabled = true\nstatus = 1.0");
    reloader.reload(&on).unwrap();
    assert_eq!(
        status(&stack, get("/")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    for (text, field) in [
        (
            "[chaos]\nenabled = true\nheader = true\nstatus = 1.0",
            "chaos.header",
        ),
        (
            "[chaos]\nenabled = true\nseed = 1\nstatus = 1.0",
            "chaos.seed",
        ),
        ("timeout = \"5s\"", "chaos"),
    ] {
        let err = reloader.reload(&server(text)).unwrap_err();
        assert!(err.is_conflict() && err.field() == field, "{err}");
    }
    let err = reloader
        .reload(&server("[chaos]\nenabled = false\nstatus = 2.0"))
        .unwrap_err();
    assert_eq!(err.field(), "chaos.status");
    // Refused files changed nothing: still enabled, still failing every call.
    assert!(reloader.running() == on);
    assert_eq!(
        status(&stack, get("/")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    reloader
        .reload(&server("[chaos]\nenabled = true\nstatus = 0.0"))
        .unwrap();
    assert_eq!(status(&stack, get("/")).await, StatusCode::OK);
    assert_eq!((reloader.applied(), reloader.refused()), (2, 4));

    // A stack built without the table cannot grow one.
    let (_, reloader) = server("").build_reloadable().unwrap();
    let err = reloader.reload(&on).unwrap_err();
    assert!(err.is_conflict() && err.field() == "chaos", "{err}");
}

#[cfg(feature = "reload")]
#[tokio::test(start_paused = true)]
async fn a_client_reload_switches_its_chaos_layer() {
    let text = |enabled: bool| {
        format!(
            "attempt_timeout = \"1s\"\nmax_retries = 0\n[chaos]\nenabled = {enabled}\nstall = 1.0"
        )
    };
    let (stack, reloader) = client(&text(false)).build_reloadable().unwrap();
    let svc = stack.layer(service_fn(|n: u32| async move { Ok::<_, io::Error>(n) }));
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    reloader.reload(&client(&text(true))).unwrap();
    let err = svc.oneshot(2).await.unwrap_err();
    assert!(
        weir::Error::find(&*err).is_some_and(weir::Error::is_timeout),
        "the stall, cut by the attempt timeout: {err}"
    );
    let faults = stack.chaos_layer().handle().unwrap();
    assert_eq!(faults.injected(Fault::Stall), 1);
    let err = reloader
        .reload(&client(&format!("{}\nseed = 3", text(true))))
        .unwrap_err();
    assert!(err.is_conflict() && err.field() == "chaos.seed", "{err}");
}
