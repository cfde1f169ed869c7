//! `StatusService` route by route, called as a tower service: the page, the JSON and its schema,
//! the events, the admin actions' rules (404 without a hook, 401/403 refused and nothing changed,
//! 200 and the layer changed), and malformed requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use weir_core::Name;
use weir_core::inspect::{ActionError, Inspect, Registry, Snapshot, Transition};
use weir_status::{Authz, StatusBody, StatusService};

/// A breaker-like layer: closed (0) or open (1), with admin actions.
#[derive(Default)]
struct FakeBreaker {
    state: AtomicU8,
    rejected: AtomicU64,
    reset_keys: std::sync::Mutex<Vec<String>>,
}

impl Inspect for FakeBreaker {
    fn snapshot(&self) -> Snapshot {
        let (name, value) = match self.state.load(Ordering::SeqCst) {
            0 => ("closed", 0),
            _ => ("open", 1),
        };
        Snapshot::new("circuit_breaker", Name::new("db"))
            .state(name, value)
            .gauge("failure_rate", 0.5)
            .gauge("nan", f64::NAN)
            .counter("rejected", self.rejected.load(Ordering::SeqCst))
            .recent(vec![
                Transition::new(UNIX_EPOCH + Duration::from_millis(1_234), "closed", "open")
                    .reason("failure_rate"),
                Transition::new(UNIX_EPOCH + Duration::from_secs(60), "open", "half_open"),
            ])
    }

    fn actions(&self) -> &'static [&'static str] {
        &["force_open", "reset", "reset_key"]
    }

    fn act(&self, action: &str, argument: Option<&str>) -> Result<(), ActionError> {
        match action {
            "force_open" => self.state.store(1, Ordering::SeqCst),
            "reset" => self.state.store(0, Ordering::SeqCst),
            "reset_key" => {
                let key = argument.ok_or_else(|| ActionError::Invalid("a key is needed".into()))?;
                self.reset_keys.lock().unwrap().push(key.to_owned());
            }
            other => return Err(ActionError::Unknown(other.to_owned())),
        }
        Ok(())
    }
}

/// A layer without state or actions, with a name that needs escaping.
struct Pool;

impl Inspect for Pool {
    fn snapshot(&self) -> Snapshot {
        Snapshot::new("bulkhead", Name::new("db \"main\"/<1>"))
            .gauge("in_flight", 3.0)
            .counter("admitted", u64::from(u32::MAX) + 5)
    }
}

fn setup() -> (Registry, Arc<FakeBreaker>) {
    let registry = Registry::new();
    let breaker = Arc::new(FakeBreaker::default());
    registry.register_arc(Arc::clone(&breaker) as Arc<dyn Inspect>);
    registry.register(Pool);
    (registry, breaker)
}

async fn send(service: &StatusService, req: Request<()>) -> Response<StatusBody> {
    service.clone().oneshot(req).await.expect("infallible")
}

async fn body(res: Response<StatusBody>) -> (StatusCode, http::HeaderMap, String) {
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("infallible").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    )
}

async fn get(service: &StatusService, path: &str) -> (StatusCode, http::HeaderMap, String) {
    body(send(service, Request::get(path).body(()).unwrap()).await).await
}

async fn post(service: &StatusService, path: &str) -> (StatusCode, String) {
    let (status, _, text) = body(send(service, Request::post(path).body(()).unwrap()).await).await;
    (status, text)
}

#[tokio::test]
async fn the_page_is_one_self_contained_document() {
    let (registry, _) = setup();
    let service = StatusService::new(registry);
    for path in ["/", "/status", "/status/"] {
        let (status, headers, html) = get(&service, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<style>") && html.contains("<script>"));
        // Nothing from elsewhere: no external script, style sheet or font.
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(!html.contains("<link"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    }
    let (status, _, _) =
        body(send(&service, Request::head("/status").body(()).unwrap()).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_json_follows_the_schema() {
    let (registry, breaker) = setup();
    breaker.rejected.store(9, Ordering::SeqCst);
    let service = StatusService::new(registry);
    let (status, headers, text) = get(&service, "/status.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(doc["actions_enabled"], false);
    let layers = doc["layers"].as_array().expect("layers[]");
    assert_eq!(layers.len(), 2);

    let b = &layers[0];
    assert_eq!(b["pattern"], "circuit_breaker");
    assert_eq!(b["layer"], "db");
    assert_eq!(b["state"]["name"], "closed");
    assert_eq!(b["state"]["value"], 0);
    assert_eq!(b["gauges"]["failure_rate"], 0.5);
    assert_eq!(b["gauges"]["nan"], Value::Null, "NaN is null");
    assert_eq!(b["counters"]["rejected"], 9);
    assert_eq!(
        b["recent"],
        serde_json::json!([
            {"at_ms": 1234, "from": "closed", "to": "open", "reason": "failure_rate"},
            {"at_ms": 60000, "from": "open", "to": "half_open", "reason": null},
        ])
    );
    assert_eq!(
        b["actions"],
        serde_json::json!(["force_open", "reset", "reset_key"])
    );

    let p = &layers[1];
    assert_eq!(p["pattern"], "bulkhead");
    assert_eq!(p["layer"], "db \"main\"/<1>", "escaped and read back");
    assert!(
        !text.contains("<1>"),
        "`<` and `>` are escaped in the JSON text"
    );
    assert_eq!(p["state"], Value::Null);
    assert_eq!(p["gauges"]["in_flight"], 3.0);
    assert_eq!(p["counters"]["admitted"], u64::from(u32::MAX) + 5);
    assert_eq!(p["actions"], serde_json::json!([]));
    assert_eq!(p["recent"], serde_json::json!([]));

    // With a hook, the JSON says the actions are on.
    let service = service.authorize(|_: &http::request::Parts| Authz::Allow);
    let (_, _, text) = get(&service, "/status.json").await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["actions_enabled"], true);
}

#[tokio::test]
async fn an_empty_registry_is_an_empty_list() {
    let service = StatusService::new(Registry::new());
    let (status, _, text) = get(&service, "/status.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, r#"{"actions_enabled":false,"layers":[]}"#);
}

#[tokio::test(start_paused = true)]
async fn events_send_the_snapshot_at_once_then_every_period() {
    let (registry, breaker) = setup();
    let service = StatusService::new(registry).events_every(Duration::from_secs(2));
    let res = send(&service, Request::get("/status/events").body(()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();

    let first = next_event(&mut body).await;
    assert_eq!(first["layers"][0]["state"]["name"], "closed");

    breaker.state.store(1, Ordering::SeqCst);
    // Not before the period.
    let early = tokio::time::timeout(Duration::from_millis(1_900), body.frame()).await;
    assert!(early.is_err(), "an event before the period");
    let second = next_event(&mut body).await;
    assert_eq!(second["layers"][0]["state"]["name"], "open");
    let third = next_event(&mut body).await;
    assert_eq!(third["layers"].as_array().unwrap().len(), 2);
}

async fn next_event(body: &mut StatusBody) -> Value {
    let frame = body
        .frame()
        .await
        .expect("the stream goes on")
        .expect("infallible");
    let data: Bytes = frame.into_data().expect("a data frame");
    let text = std::str::from_utf8(&data).unwrap();
    let json = text
        .strip_prefix("data: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("one `data:` event: {text:?}"));
    assert!(!json.contains('\n'));
    serde_json::from_str(json).expect("JSON")
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let (registry, _) = setup();
    let service = StatusService::new(registry);
    for path in [
        "/nope",
        "/status.json/x",
        "/status/events/",
        "/statusjson",
        "/status/actions",
    ] {
        let (status, _, _) = get(&service, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for (method, path) in [
        (Method::POST, "/status.json"),
        (Method::DELETE, "/status"),
        (Method::PUT, "/status/events"),
        (Method::POST, "/"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(())
            .unwrap();
        let (status, headers, _) = body(send(&service, req).await).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(headers["allow"], "GET, HEAD");
    }
}

#[tokio::test]
async fn without_a_hook_every_action_is_404_and_nothing_changes() {
    let (registry, breaker) = setup();
    let service = StatusService::new(registry);
    for path in [
        "/status/actions/circuit_breaker/db/force_open",
        "/status/actions/circuit_breaker/db/nothing",
        "/status/actions/bulkhead/none/force_open",
    ] {
        let (status, _) = post(&service, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let (status, _, _) = get(&service, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
    }
    assert_eq!(breaker.state.load(Ordering::SeqCst), 0, "still closed");
}

#[tokio::test]
async fn a_refusing_hook_answers_401_or_403_and_nothing_changes() {
    let (registry, breaker) = setup();
    let asked = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&asked);
    let service = StatusService::new(registry).authorize(move |parts: &http::request::Parts| {
        seen.fetch_add(1, Ordering::SeqCst);
        match parts.headers.get("authorization") {
            None => Authz::Unauthorized,
            Some(v) if v == "Bearer good" => Authz::Allow,
            Some(_) => Authz::Forbidden,
        }
    });
    let (status, _) = post(&service, "/status/actions/circuit_breaker/db/force_open").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let req = Request::post("/status/actions/circuit_breaker/db/force_open")
        .header("authorization", "Bearer bad")
        .body(())
        .unwrap();
    let (status, _, _) = body(send(&service, req).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A refused request does not even learn whether the layer exists.
    let (status, _) = post(&service, "/status/actions/bulkhead/none/force_open").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(asked.load(Ordering::SeqCst), 3);
    assert_eq!(breaker.state.load(Ordering::SeqCst), 0, "still closed");

    // A cross-site request is refused before the hook, even with good credentials.
    let req = Request::post("/status/actions/circuit_breaker/db/force_open")
        .header("authorization", "Bearer good")
        .header("sec-fetch-site", "cross-site")
        .body(())
        .unwrap();
    let (status, _, _) = body(send(&service, req).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(asked.load(Ordering::SeqCst), 3, "the hook was not asked");
    assert_eq!(breaker.state.load(Ordering::SeqCst), 0, "still closed");
}

#[tokio::test]
async fn an_accepting_hook_runs_the_action() {
    let (registry, breaker) = setup();
    let service =
        StatusService::new(registry).authorize(|_: &http::request::Parts| Authz::from(true));

    let (status, text) = post(&service, "/status/actions/circuit_breaker/db/force_open").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(breaker.state.load(Ordering::SeqCst), 1, "forced open");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["action"], "force_open");
    let (_, _, json) = get(&service, "/status.json").await;
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["layers"][0]["state"]["name"], "open");

    let (status, _) = post(&service, "/status/actions/circuit_breaker/db/reset").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(breaker.state.load(Ordering::SeqCst), 0);

    // The key, percent-decoded (`+` stays a plus).
    let (status, _) = post(
        &service,
        "/status/actions/circuit_breaker/db/reset_key?x=1&key=client%201+a",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(*breaker.reset_keys.lock().unwrap(), ["client 1+a"]);

    // `act` decides the rest: unknown action 404, missing key 400; no such layer 404.
    let (status, text) = post(&service, "/status/actions/circuit_breaker/db/explode").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("unknown action"), "{text}");
    let (status, text) = post(&service, "/status/actions/circuit_breaker/db/reset_key").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("a key is needed"), "{text}");
    let (status, _) = post(&service, "/status/actions/circuit_breaker/cache/reset").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A layer whose name needs escaping is found by its encoded name.
    let (status, text) = post(
        &service,
        "/status/actions/bulkhead/db%20%22main%22%2F%3C1%3E/reset",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "found, but it has no actions"
    );
    assert!(text.contains("unknown action"), "{text}");
    // Bad escapes are 400; GET is 405.
    let (status, _) = post(&service, "/status/actions/circuit_breaker/db%zz/reset").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(
        &service,
        "/status/actions/circuit_breaker/db/reset_key?key=%",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, headers, _) = get(&service, "/status/actions/circuit_breaker/db/reset").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(breaker.state.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_and_huge_requests_never_panic() {
    let (registry, breaker) = setup();
    let service = StatusService::new(registry).authorize(|_: &http::request::Parts| Authz::Allow);
    let long = "a".repeat(64 * 1024);
    let paths = [
        format!("/status/actions/{long}/{long}/{long}"),
        format!("/{long}"),
        format!("/status.json?{long}"),
        "/status/actions/%/%/%".to_owned(),
        "/status/actions/%C3%28/db/reset".to_owned(),
        "/status/actions/circuit_breaker/db/reset?key=%E2%82".to_owned(),
        "/status/actions/circuit_breaker/db/reset?key&key=&=".to_owned(),
        "/status/actions/a//b".to_owned(),
        "//status.json".to_owned(),
        "*".to_owned(),
    ];
    for path in &paths {
        for method in [Method::GET, Method::POST, Method::OPTIONS, Method::PATCH] {
            let Ok(req) = Request::builder()
                .method(method)
                .uri(path.as_str())
                .header("sec-fetch-site", "CROSS-site")
                .body(())
            else {
                continue;
            };
            let (status, _, _) = body(send(&service, req).await).await;
            assert!(
                status.is_client_error() || status.is_success(),
                "{path}: {status}"
            );
        }
    }
    // A large body is never read.
    let req = Request::post("/status.json")
        .body(http_body_util::Full::new(Bytes::from(vec![0u8; 8 << 20])))
        .unwrap();
    let res = service.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(breaker.state.load(Ordering::SeqCst), 0);
}

#[test]
fn the_service_and_its_body_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    fn body<T: http_body::Body + Send + Sync + 'static>() {}
    check::<StatusService>();
    body::<StatusBody>();
}
