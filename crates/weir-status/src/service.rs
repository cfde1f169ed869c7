//! `StatusService`: the routes, the admin actions' rules, and the answers.

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use tower_service::Service;
use weir_core::inspect::{ActionError, Registry};

use crate::authz::Authz;
use crate::body::StatusBody;
use crate::json;
use crate::page::PAGE;

/// How often `GET /status/events` sends a snapshot unless told otherwise.
pub const DEFAULT_EVENTS_EVERY: Duration = Duration::from_secs(1);

/// The shortest period [`StatusService::events_every`] accepts; a shorter one is raised to it.
pub const MIN_EVENTS_EVERY: Duration = Duration::from_millis(100);

type Hook = dyn Fn(&Parts) -> Authz + Send + Sync;

#[derive(Clone)]
struct Settings {
    authorize: Option<Arc<Hook>>,
    events_every: Duration,
}

/// The live status page of a [`Registry`], as a plain tower `Service<http::Request<B>>` that
/// never fails (mount it in axum with `Router::nest_service("/weir", service)`).
///
/// Routes, relative to where it is mounted:
///
/// | request | answer |
/// |---|---|
/// | `GET /status` (or `/`) | the HTML page |
/// | `GET /status.json` | every registered layer's snapshot as JSON |
/// | `GET /status/events` | server-sent events, the JSON once a period (1 s by default) |
/// | `POST /status/actions/{pattern}/{layer}/{action}[?key=...]` | an admin action, only with an [authorization hook](Self::authorize): 404 without one |
///
/// Any other path is 404; another method on a known path is 405. The request's body is never
/// read.
#[derive(Clone)]
pub struct StatusService {
    registry: Registry,
    settings: Arc<Settings>,
}

impl StatusService {
    /// The status page of `registry`, with admin actions off (every action answers 404).
    #[must_use]
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            settings: Arc::new(Settings {
                authorize: None,
                events_every: DEFAULT_EVENTS_EVERY,
            }),
        }
    }

    /// Turns the admin actions on, guarded by `hook`: it sees each action request's head and
    /// answers [`Authz::Allow`] (the action runs), [`Authz::Unauthorized`] (401) or
    /// [`Authz::Forbidden`] (403); a refused request changes nothing. The page shows the
    /// actions' buttons only when a hook is set.
    ///
    /// A request a browser marks as cross-site (`Sec-Fetch-Site: cross-site`) is refused with
    /// 403 before the hook is asked, so another site's form cannot use a user's cookies.
    #[must_use]
    pub fn authorize<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Parts) -> Authz + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.settings).authorize = Some(Arc::new(hook));
        self
    }

    /// How often `GET /status/events` sends a snapshot ([`DEFAULT_EVENTS_EVERY`]; at least
    /// [`MIN_EVENTS_EVERY`]).
    #[must_use]
    pub fn events_every(mut self, every: Duration) -> Self {
        Arc::make_mut(&mut self.settings).events_every = every.max(MIN_EVENTS_EVERY);
        self
    }

    /// The registry this page shows.
    #[must_use]
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    fn actions_enabled(&self) -> bool {
        self.settings.authorize.is_some()
    }

    /// The answer to `parts` (the body is never read).
    fn answer(&self, parts: &Parts) -> Response<StatusBody> {
        let read_only = || {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                None
            } else {
                Some(not_allowed("GET, HEAD"))
            }
        };
        match route(parts.uri.path()) {
            Route::Page => read_only().unwrap_or_else(page),
            Route::Json => read_only().unwrap_or_else(|| {
                let body = json::document(&self.registry, self.actions_enabled());
                respond(StatusCode::OK, JSON, StatusBody::full(body))
            }),
            Route::Events => read_only().unwrap_or_else(|| {
                let body = StatusBody::events(
                    self.registry.clone(),
                    self.actions_enabled(),
                    self.settings.events_every,
                );
                respond(StatusCode::OK, EVENT_STREAM, body)
            }),
            Route::Action(target) => self.action(parts, target),
            Route::NotFound => not_found(),
        }
    }

    fn action(&self, parts: &Parts, target: [&str; 3]) -> Response<StatusBody> {
        // Without a hook there are no actions at all, whatever the method.
        let Some(authorize) = &self.settings.authorize else {
            return not_found();
        };
        if parts.method != Method::POST {
            return not_allowed("POST");
        }
        let cross_site = parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        if cross_site {
            return error(StatusCode::FORBIDDEN, "cross-site action request refused");
        }
        match authorize(parts) {
            Authz::Allow => {}
            Authz::Unauthorized => return error(StatusCode::UNAUTHORIZED, "unauthorized"),
            Authz::Forbidden => return error(StatusCode::FORBIDDEN, "forbidden"),
        }
        let [pattern, layer, action] = match target.map(decode) {
            [Some(p), Some(l), Some(a)] => [p, l, a],
            _ => return error(StatusCode::BAD_REQUEST, "bad percent-encoding in the path"),
        };
        let key = match query_key(parts.uri.query()) {
            Ok(key) => key,
            Err(()) => return error(StatusCode::BAD_REQUEST, "bad percent-encoding in `key`"),
        };
        let Some(handle) = self.registry.find(&pattern, &layer) else {
            return error(StatusCode::NOT_FOUND, "no such layer");
        };
        match handle.act(&action, key.as_deref()) {
            Ok(()) => {
                let mut body = String::from("{\"ok\":true,\"pattern\":");
                json::string(&mut body, &pattern);
                body.push_str(",\"layer\":");
                json::string(&mut body, &layer);
                body.push_str(",\"action\":");
                json::string(&mut body, &action);
                body.push('}');
                respond(StatusCode::OK, JSON, StatusBody::full(body))
            }
            Err(err @ ActionError::Unknown(_)) => error(StatusCode::NOT_FOUND, &err.to_string()),
            Err(err) => error(StatusCode::BAD_REQUEST, &err.to_string()),
        }
    }
}

impl fmt::Debug for StatusService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusService")
            .field("registry", &self.registry)
            .field("actions_enabled", &self.actions_enabled())
            .field("events_every", &self.settings.events_every)
            .finish()
    }
}

impl<B> Service<Request<B>> for StatusService {
    type Response = Response<StatusBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<StatusBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (parts, _body) = req.into_parts();
        ready(Ok(self.answer(&parts)))
    }
}

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const HTML: &str = "text/html; charset=utf-8";

/// The page's policy: its own inline script and style, requests to its own origin, nothing else.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

enum Route<'a> {
    Page,
    Json,
    Events,
    /// `[pattern, layer, action]`, still percent-encoded.
    Action([&'a str; 3]),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "" | "/" | "/status" | "/status/" => Route::Page,
        "/status.json" => Route::Json,
        "/status/events" => Route::Events,
        _ => {
            let Some(rest) = path.strip_prefix("/status/actions/") else {
                return Route::NotFound;
            };
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(p), Some(l), Some(a), None)
                    if !p.is_empty() && !l.is_empty() && !a.is_empty() =>
                {
                    Route::Action([p, l, a])
                }
                _ => Route::NotFound,
            }
        }
    }
}

/// Percent-decodes a path segment or query value (`+` stays `+`); `None` for a bad escape or
/// bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `key` argument of an action's query string, decoded; `Ok(None)` when there is none or it
/// is empty.
fn query_key(query: Option<&str>) -> Result<Option<String>, ()> {
    let Some(raw) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("key="))
    else {
        return Ok(None);
    };
    match decode(raw) {
        Some(key) if key.is_empty() => Ok(None),
        Some(key) => Ok(Some(key)),
        None => Err(()),
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: StatusBody,
) -> Response<StatusBody> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn page() -> Response<StatusBody> {
    let mut res = respond(StatusCode::OK, HTML, StatusBody::full(PAGE));
    let headers = res.headers_mut();
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn error(status: StatusCode, message: &str) -> Response<StatusBody> {
    let mut body = String::from("{\"error\":");
    json::string(&mut body, message);
    body.push('}');
    respond(status, JSON, StatusBody::full(body))
}

fn not_found() -> Response<StatusBody> {
    error(StatusCode::NOT_FOUND, "not found")
}

fn not_allowed(allow: &'static str) -> Response<StatusBody> {
    let mut res = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/"), Route::Page));
        assert!(matches!(route("/status"), Route::Page));
        assert!(matches!(route("/status.json"), Route::Json));
        assert!(matches!(route("/status/events"), Route::Events));
        assert!(matches!(
            route("/status/actions/circuit_breaker/db/force_open"),
            Route::Action(["circuit_breaker", "db", "force_open"])
        ));
        for path in [
            "/status/actions/circuit_breaker/db",
            "/status/actions/circuit_breaker/db/force_open/more",
            "/status/actions//db/force_open",
            "/status/actions/",
            "/statusjson",
            "/status.json/",
            "/other",
        ] {
            assert!(matches!(route(path), Route::NotFound), "{path}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(decode("%2F%e2%9c%93").as_deref(), Some("/\u{2713}"));
        assert_eq!(decode("%"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%+1"), None, "a sign is not a hex digit");
        assert_eq!(decode("%ff"), None, "not UTF-8");
        assert_eq!(query_key(Some("x=1&key=a%3Db")), Ok(Some("a=b".into())));
        assert_eq!(query_key(Some("key=")), Ok(None));
        assert_eq!(query_key(None), Ok(None));
        assert_eq!(query_key(Some("key=%")), Err(()));
    }
}
