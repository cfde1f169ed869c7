//! The HTTP probes: a plain tower `Service` answering `/livez`, `/readyz` and `/startupz`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::registry::{HealthRegistry, Summary};
use crate::status::Health;
use crate::tag::Tag;

/// The media type of the IETF health-check draft.
pub const HEALTH_JSON: &str = "application/health+json";

/// When a probe's answer lists every check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verbose {
    /// Never: only the overall status (the default; probes may come from anywhere).
    #[default]
    Never,
    /// When the query string asks for it: `verbose`, or `verbose=` with any value but `0` or
    /// `false` (`/readyz?verbose`, `/readyz?verbose=1`).
    OnQuery,
    /// Always.
    Always,
}

#[derive(Clone, Debug)]
struct Settings {
    live: Cow<'static, str>,
    ready: Cow<'static, str>,
    startup: Cow<'static, str>,
    verbose: Verbose,
}

/// A tower `Service<http::Request<B>>` answering the probes from a [`HealthRegistry`]: `GET
/// /livez`, `/readyz` and `/startupz` (paths configurable) run the checks tagged live, ready
/// and startup; 200 when the worst is healthy or degraded, 503 when unhealthy; any other path
/// is 404. The body is `application/health+json`. It never fails, so it serves as an axum
/// `fallback_service` or `nest_service` as it is.
#[derive(Clone, Debug)]
pub struct HealthService {
    registry: HealthRegistry,
    settings: Arc<Settings>,
}

impl HealthService {
    /// The probes of `registry`, at `/livez`, `/readyz` and `/startupz`, without detail.
    #[must_use]
    pub fn new(registry: HealthRegistry) -> Self {
        Self {
            registry,
            settings: Arc::new(Settings {
                live: Cow::Borrowed("/livez"),
                ready: Cow::Borrowed("/readyz"),
                startup: Cow::Borrowed("/startupz"),
                verbose: Verbose::Never,
            }),
        }
    }

    /// The liveness path.
    #[must_use]
    pub fn live_path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.settings).live = path.into();
        self
    }

    /// The readiness path.
    #[must_use]
    pub fn ready_path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.settings).ready = path.into();
        self
    }

    /// The startup path.
    #[must_use]
    pub fn startup_path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.settings).startup = path.into();
        self
    }

    /// When answers list every check (default [`Verbose::Never`]).
    #[must_use]
    pub fn verbose(mut self, verbose: Verbose) -> Self {
        Arc::make_mut(&mut self.settings).verbose = verbose;
        self
    }

    fn tag_of(&self, path: &str) -> Option<Tag> {
        let s = &self.settings;
        if path == s.live {
            Some(Tag::Live)
        } else if path == s.ready {
            Some(Tag::Ready)
        } else if path == s.startup {
            Some(Tag::Startup)
        } else {
            None
        }
    }
}

impl<B> Service<Request<B>> for HealthService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let Some(tag) = self.tag_of(req.uri().path()) else {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return ResponseFuture {
                state: State::Done(Some(res)),
            };
        };
        let verbose = match self.settings.verbose {
            Verbose::Never => false,
            Verbose::Always => true,
            // `verbose`, `verbose=` and any value but `0` / `false` ask for detail.
            Verbose::OnQuery => req.uri().query().is_some_and(|q| {
                q.split('&').any(|p| match p.strip_prefix("verbose") {
                    Some("") => true,
                    Some(value) => value
                        .strip_prefix('=')
                        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false")),
                    None => false,
                })
            }),
        };
        let registry = self.registry.clone();
        // A probe is not a request of the service the probes are about: boxing its future here
        // (the evaluation is an `async` block, which cannot be named) costs one allocation per
        // probe, next to the body's.
        let probe = Box::pin(async move {
            let summary = registry.evaluate(&tag).await;
            Ok(respond(&summary, verbose))
        });
        ResponseFuture {
            state: State::Probe(probe),
        }
    }
}

fn respond(summary: &Summary, verbose: bool) -> Response<Full<Bytes>> {
    let body = render(summary, verbose);
    let mut res = Response::new(Full::new(Bytes::from(body)));
    if !summary.status().is_up() {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The body, in the shape of the IETF health-check draft (`draft-inadarei-api-health-check`):
/// `{"status":"pass"}`, and when verbose, `"checks"` with one array per check holding its
/// `status`, `output` (the reason), `details` and `durationMs`.
fn render(summary: &Summary, verbose: bool) -> String {
    let mut out = String::with_capacity(if verbose { 256 } else { 24 });
    out.push_str("{\"status\":\"");
    out.push_str(summary.status().as_str());
    out.push('"');
    if verbose {
        out.push_str(",\"checks\":{");
        let mut first = true;
        if let Some(health) = summary.lifecycle() {
            push_check(
                &mut out,
                &mut first,
                "lifecycle",
                health.status(),
                health,
                None,
            );
        }
        for report in summary.checks() {
            push_check(
                &mut out,
                &mut first,
                report.name(),
                report.status(),
                report.health(),
                Some(report.duration().as_secs_f64() * 1000.0),
            );
        }
        out.push('}');
    }
    out.push('}');
    out
}

fn push_check(
    out: &mut String,
    first: &mut bool,
    name: &str,
    status: crate::status::Status,
    health: &Health,
    duration_ms: Option<f64>,
) {
    if !std::mem::take(first) {
        out.push(',');
    }
    push_string(out, name);
    out.push_str(":[{\"status\":\"");
    out.push_str(status.as_str());
    out.push('"');
    if let Some(reason) = health.reason() {
        out.push_str(",\"output\":");
        push_string(out, reason);
    }
    if let Some(details) = health.details() {
        out.push_str(",\"details\":");
        push_string(out, details);
    }
    if let Some(ms) = duration_ms {
        let _ = write!(out, ",\"durationMs\":{ms:.3}");
    }
    out.push_str("}]");
}

fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

type Probe = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// The future of a [`HealthService`] call.
pub struct ResponseFuture {
    state: State,
}

enum State {
    Done(Option<Response<Full<Bytes>>>),
    Probe(Probe),
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Done(res) => Poll::Ready(Ok(res.take().expect("polled after completion"))),
            State::Probe(probe) => probe.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #22.2: reasons are escaped so the body stays JSON whatever a check says.
    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_string(&mut out, "a \"b\"\\\n\u{1}");
        assert_eq!(out, r#""a \"b\"\\\n\u0001""#);
    }
}
