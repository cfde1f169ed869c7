//! The gateway's status page in a real browser (#19): the gateway's own stacks on 127.0.0.1,
//! traffic through an upstream outage until its circuit breaker opens, then Debian's headless
//! Chromium opens `/weir/status`, runs the page's script (virtual time: several polls of the
//! JSON) and dumps the rendered DOM, which must show the breaker open with the numbers of the
//! handles' own snapshot. A screenshot is kept as `target/status-page.png`. With a token for the
//! admin actions, the page offers each layer's actions as buttons (without one, none).
//!
//! Chromium comes from Debian's `chromium` package (`scripts/test.sh` installs it when it is
//! missing; `WEIR_CHROMIUM` names another binary). Without it the test fails and says so: it
//! never passes without a browser.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use weir::circuit_breaker::State;
use weir::core::inspect::Snapshot;

#[allow(dead_code)] // the example's `main`, self-drive and report are not used here
#[path = "../examples/gateway.rs"]
mod gateway;

use gateway::{Config, Gateway, PREMIUM_KEY, Upstream};

type TestClient = Client<HttpConnector, Empty<Bytes>>;

/// The browser: `WEIR_CHROMIUM`, else `chromium` on the `PATH`; a failure that says what to
/// install when there is none.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "tests/status_browser.rs needs Debian's headless Chromium and found none: install it \
             (`apt-get install chromium`; scripts/test.sh does this) or set WEIR_CHROMIUM to a \
             chromium binary. This test does not pass without a browser."
        )
    })
}

/// Runs Chromium headless on `url` with `args`, at most `limit` of wall-clock time (a guard
/// against a hung browser, not a measurement), and returns its standard output.
async fn run_chromium(url: String, args: Vec<String>, limit: Duration) -> String {
    let binary = chromium();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let profile = std::env::temp_dir().join(format!(
        "weir-status-chromium-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut command = Command::new(&binary);
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(&args)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap_or_else(|err| {
        panic!(
            "could not start {} ({err}): install Debian's chromium (scripts/test.sh does)",
            binary.display()
        )
    });
    let pid = child.id();
    let waited = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let output = match waited {
        Ok(joined) => joined.expect("no panic").expect("chromium ran"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("chromium did not finish within {limit:?} on {url}");
        }
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 DOM")
}

/// The start tag of the first element after `from` in `html` whose start tag contains `needle`.
fn tag_with<'a>(html: &'a str, needle: &str) -> Option<&'a str> {
    let at = html.find(needle)?;
    let start = html[..=at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    Some(&html[start..=end])
}

/// The value of attribute `name` in the start tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    let end = at + tag[at..].find('"')?;
    Some(&tag[at..end])
}

/// The card of `layer` (`pattern/name`): its whole `<section>`.
fn card<'a>(dom: &'a str, layer: &str) -> &'a str {
    let needle = format!("data-layer=\"{layer}\"");
    let at = dom
        .find(&needle)
        .unwrap_or_else(|| panic!("no card for {layer} in the rendered page:\n{dom}"));
    let start = dom[..at].rfind("<section").expect("a section");
    let end = at + dom[at..].find("</section>").expect("closed");
    &dom[start..end]
}

/// The number a card shows for a gauge or a counter, from its `data-value`.
fn shown(card: &str, kind: &str, name: &str) -> f64 {
    let tag = tag_with(card, &format!("data-{kind}=\"{name}\""))
        .unwrap_or_else(|| panic!("no {kind} {name} in the card:\n{card}"));
    attr(tag, "data-value")
        .expect("data-value")
        .parse()
        .expect("a number")
}

fn snapshot_of<'a>(all: &'a [Snapshot], pattern: &str, layer: &str) -> &'a Snapshot {
    all.iter()
        .find(|s| s.pattern == pattern && s.layer.as_str() == layer)
        .unwrap_or_else(|| panic!("{pattern}/{layer} is not registered"))
}

async fn get(client: &TestClient, addr: SocketAddr, path: &str) -> StatusCode {
    let req = Request::get(format!("http://{addr}{path}"))
        .header("x-api-key", PREMIUM_KEY)
        .body(Empty::new())
        .expect("valid request");
    let res = client.request(req).await.expect("the gateway answers");
    let status = res.status();
    let _ = res.into_body().collect().await;
    status
}

fn breaker_state(gateway: &Gateway) -> Option<State> {
    let mut state = None;
    gateway
        .breakers
        .for_each(|_key, snapshot| state = Some(snapshot.state()));
    state
}

fn artifact(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("target dir");
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_open_breaker_in_a_real_browser() {
    let _ = chromium(); // fail first, and clearly, without a browser
    let mut config = Config::demo();
    // Open long enough that the page sees it open whatever the machine's speed.
    config.open_duration = Duration::from_secs(120);
    let upstream = Upstream::new();
    let (upstream_addr, _server) = gateway::start_upstream(Arc::clone(&upstream))
        .await
        .expect("upstream starts");
    let gateway = gateway::start(&config, 0, upstream_addr)
        .await
        .expect("gateway starts");
    let addr = gateway.addr;
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();

    // Traffic: a few good answers, then an outage until the breaker opens, then calls it refuses.
    for _ in 0..5 {
        assert_eq!(get(&client, addr, "/api/items").await, StatusCode::OK);
    }
    upstream.set_outage(true);
    for _ in 0..200 {
        if breaker_state(&gateway) == Some(State::Open) {
            break;
        }
        let _ = get(&client, addr, "/api/items").await;
    }
    assert_eq!(
        breaker_state(&gateway),
        Some(State::Open),
        "the outage opens the breaker"
    );
    for _ in 0..3 {
        assert_eq!(
            get(&client, addr, "/api/items").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    let url = format!("http://{addr}/weir/status");
    // Five seconds of the page's virtual time: the first poll and four more, once a second.
    let dom = run_chromium(
        url.clone(),
        vec![
            "--virtual-time-budget=5000".into(),
            "--run-all-compositor-stages-before-draw".into(),
            "--dump-dom".into(),
        ],
        Duration::from_secs(90),
    )
    .await;
    // No traffic since: the handles' snapshot now is what the page showed.
    let all = gateway.registry.snapshot();

    let body = tag_with(&dom, "<body").expect("a body");
    assert_eq!(
        attr(body, "data-ready"),
        Some("true"),
        "the page drew a snapshot:\n{dom}"
    );
    let updates: u32 = attr(body, "data-updates").unwrap().parse().unwrap();
    assert!(
        updates >= 2,
        "the page polls once a second: {updates} update(s)"
    );
    assert_eq!(
        attr(body, "data-actions"),
        Some("disabled"),
        "no token, no actions"
    );
    assert!(
        !dom.contains("data-action=\""),
        "no admin buttons without a token"
    );

    // The upstream breaker (keyed by authority): one key, open, with its transitions.
    let breaker = snapshot_of(&all, "circuit_breaker", "upstream");
    let card_html = card(&dom, "circuit_breaker/upstream");
    assert_eq!(
        shown(card_html, "gauge", "open"),
        1.0,
        "shown open:\n{card_html}"
    );
    let section = tag_with(card_html, "<section").unwrap();
    assert_eq!(
        attr(section, "data-colour"),
        Some("red"),
        "in red: {section}"
    );
    assert!(
        card_html.contains(">1 open<"),
        "its badge says so:\n{card_html}"
    );
    for (name, value) in &breaker.gauges {
        assert_eq!(shown(card_html, "gauge", name), *value, "gauge {name}");
    }
    for (name, value) in &breaker.counters {
        assert_eq!(
            shown(card_html, "counter", name),
            *value as f64,
            "counter {name}"
        );
    }
    assert!(breaker.counter_value("rejected").unwrap() >= 3);
    assert!(
        card_html.contains("data-from=\"closed\" data-to=\"open\""),
        "the transition to open is listed:\n{card_html}"
    );
    // The page draws a sparkline per counter from the polls it made.
    let spark = tag_with(card_html, "class=\"spark\"").expect("a sparkline");
    let points: u32 = attr(spark, "data-points").unwrap().parse().unwrap();
    assert!(points >= 1, "{spark}");

    // Every registered layer has its card, with the same numbers as its snapshot.
    for snapshot in &all {
        let id = format!("{}/{}", snapshot.pattern, snapshot.layer.as_str());
        let html = card(&dom, &id);
        if let Some(state) = snapshot.state {
            let tag = tag_with(html, "<section").unwrap();
            assert_eq!(attr(tag, "data-state"), Some(state.name), "{id}");
        }
        for (name, value) in &snapshot.counters {
            assert_eq!(
                shown(html, "counter", name),
                *value as f64,
                "{id} counter {name}"
            );
        }
    }

    // The screenshot, kept as the test's artifact.
    let png = artifact("status-page.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        url,
        vec![
            "--virtual-time-budget=3000".into(),
            "--window-size=1280,1000".into(),
            format!("--screenshot={}", png.display()),
        ],
        Duration::from_secs(90),
    )
    .await;
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        bytes.len() > 10_000,
        "a page, not a blank: {} bytes",
        bytes.len()
    );
    upstream.set_outage(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_offers_each_layers_actions() {
    let _ = chromium();
    let mut config = Config::demo();
    config.status_token = Some("s3cret".into());
    let upstream = Upstream::new();
    let (upstream_addr, _server) = gateway::start_upstream(Arc::clone(&upstream))
        .await
        .expect("upstream starts");
    let gateway = gateway::start(&config, 0, upstream_addr)
        .await
        .expect("gateway starts");
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();
    assert_eq!(
        get(&client, gateway.addr, "/api/items").await,
        StatusCode::OK
    );

    let dom = run_chromium(
        format!("http://{}/weir/status", gateway.addr),
        vec!["--virtual-time-budget=2000".into(), "--dump-dom".into()],
        Duration::from_secs(90),
    )
    .await;
    let body = tag_with(&dom, "<body").expect("a body");
    assert_eq!(attr(body, "data-ready"), Some("true"), "{dom}");
    assert_eq!(attr(body, "data-actions"), Some("enabled"));
    let handles = gateway.registry.handles();
    assert!(handles.iter().any(|h| !h.actions().is_empty()));
    for handle in handles {
        let snapshot = handle.snapshot();
        let id = format!("{}/{}", snapshot.pattern, snapshot.layer.as_str());
        let html = card(&dom, &id);
        // The card's buttons, in order, are the handle's actions.
        let mut buttons = Vec::new();
        let mut rest = html;
        while let Some(tag) = tag_with(rest, "data-action=\"") {
            buttons.push(attr(tag, "data-action").unwrap().to_owned());
            rest = &rest[rest.find(tag).unwrap() + tag.len()..];
        }
        assert_eq!(buttons, handle.actions(), "{id}");
    }
}
