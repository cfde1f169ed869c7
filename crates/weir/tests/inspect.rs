//! The presets show every stateful layer they build in a registry: the server's load shedder,
//! the client's retry layer, breaker and bulkhead, a configuration file's rate limit; their
//! snapshots follow real traffic and an admin action reaches the stack's own breaker.

#![cfg(feature = "presets")]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use weir::core::inspect::Registry;
use weir::rate_limit::RateLimitLayer;
use weir::{ClientStack, ServerStack};

fn names(registry: &Registry) -> Vec<(String, String)> {
    registry
        .snapshot()
        .iter()
        .map(|s| (s.pattern.to_owned(), s.layer.as_str().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_server_preset_registers_its_load_shedder() {
    let registry = Registry::new();
    let stack = ServerStack::builder()
        .max_in_flight(7)
        .rate_limit(
            RateLimitLayer::per_second(1)
                .name("edge")
                .registry(&registry)
                .build()
                .unwrap(),
        )
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(
        names(&registry),
        pairs(&[("rate_limit", "edge"), ("load_shed", "server")])
    );
    let server =
        ServiceBuilder::new()
            .layer(stack)
            .service(service_fn(|_: Request<String>| async {
                Ok::<_, io::Error>(Response::new(String::from("ok")))
            }));
    let get = || Request::get("/").body(String::new()).unwrap();
    let Ok(first) = server.clone().oneshot(get()).await;
    assert_eq!(first.status(), StatusCode::OK);
    drop(first);
    let Ok(second) = server.clone().oneshot(get()).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);

    let shed = registry.find("load_shed", "server").unwrap().snapshot();
    assert_eq!(shed.gauge_value("limit"), Some(7.0));
    assert_eq!(shed.gauge_value("in_flight"), Some(0.0));
    let edge = registry.find("rate_limit", "edge").unwrap().snapshot();
    assert_eq!(edge.counter_value("rejected"), Some(1));
    assert_eq!(edge.gauge_value("remaining"), Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn the_client_preset_registers_its_layers_and_takes_actions() {
    let registry = Registry::new();
    let stack = ClientStack::builder()
        .max_retries(1)
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(
        names(&registry),
        pairs(&[
            ("retry", "client"),
            ("circuit_breaker", "client"),
            ("bulkhead", "client"),
        ])
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let client = stack.layer(service_fn(move |n: u32| {
        let call = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if call == 0 {
                Err(io::Error::other("reset"))
            } else {
                Ok(n)
            }
        }
    }));
    assert_eq!(client.clone().oneshot(1).await.unwrap(), 1);
    let retry = registry.find("retry", "client").unwrap().snapshot();
    assert_eq!(retry.counter_value("retries"), Some(1));
    let breaker = registry.find("circuit_breaker", "client").unwrap();
    assert_eq!(breaker.snapshot().gauge_value("calls"), Some(2.0));
    assert_eq!(breaker.snapshot().gauge_value("failures"), Some(1.0));

    // An admin forces the stack's breaker open: the next call never reaches the service.
    breaker.act("force_open", None).unwrap();
    assert_eq!(
        stack.breaker_handle().state(),
        weir::circuit_breaker::State::ForcedOpen
    );
    assert!(client.clone().oneshot(2).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.snapshot().counter_value("rejected"), Some(1));

    // A second stack needs a name of its own.
    let err = ClientStack::builder()
        .registry(&registry)
        .build()
        .unwrap_err();
    assert!(err.is_duplicate(), "{err}");
    ClientStack::builder()
        .name("payments")
        .per_authority()
        .registry(&registry)
        .build()
        .unwrap();
    assert_eq!(registry.len(), 6);
    assert!(registry.find("bulkhead", "payments").is_some());
}

#[cfg(feature = "config")]
#[test]
fn the_configuration_files_register_their_layers() {
    let registry = Registry::new();
    let server: weir::ServerConfig = toml::from_str(
        r#"
        max_in_flight = 50
        [rate_limit]
        key = "api_key"
        quota = { rate = 100, per = "1s" }
    "#,
    )
    .unwrap();
    server.build_in(&registry).unwrap();
    let client: weir::ClientConfig = toml::from_str("max_retries = 1").unwrap();
    client.build_in(&registry).unwrap();
    assert_eq!(
        names(&registry),
        pairs(&[
            ("rate_limit", "rate_limit"),
            ("load_shed", "server"),
            ("retry", "client"),
            ("circuit_breaker", "client"),
            ("bulkhead", "client"),
        ])
    );
    let shed = registry.find("load_shed", "server").unwrap().snapshot();
    assert_eq!(shed.gauge_value("limit"), Some(50.0));
    // The same file again: the names are taken.
    assert!(server.build_in(&registry).unwrap_err().is_duplicate());
}
