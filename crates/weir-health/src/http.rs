//! The HTTP probes: a plain tower `Service` answering `/livez`, `/readyz` and `/startupz`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::entry::CheckReport;
use crate::registry::{HealthRegistry, Summary};
use crate::status::{Health, Status};
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
        // The cached path: every check's result is fresh, so the answer is ready now, with no
        // future to box and, unless verbose, a static body.
        if let Some(res) = cached_response(&self.registry, &tag, verbose) {
            return ResponseFuture {
                state: State::Done(Some(res)),
            };
        }
        let registry = self.registry.clone();
        // A check must run (or a run in flight be waited for): boxing the evaluation here (an
        // `async` block, which cannot be named) costs one allocation per such probe, only while
        // a result is stale or missing; never on a request of the service probed.
        let probe = Box::pin(async move {
            let summary = registry.evaluate(&tag).await;
            Ok(summary_response(&summary, verbose))
        });
        ResponseFuture {
            state: State::Probe(probe),
        }
    }
}

/// The answer from cache alone, when every check tagged `tag` has a fresh result: a static body
/// unless verbose, else one buffer (the JSON, of its exact length). `None` when a check must run.
fn cached_response(
    registry: &HealthRegistry,
    tag: &Tag,
    verbose: bool,
) -> Option<Response<Full<Bytes>>> {
    let (status, body) = if verbose {
        let lifecycle = registry.lifecycle().health_for(tag);
        verbose_body(lifecycle.as_ref(), |each| registry.cached(tag, each))?
    } else {
        let status = registry.cached_status(tag)?;
        (status, short_body(status))
    };
    Some(respond(status, body))
}

/// The answer from an evaluation (a check ran, or a probe waited for a run).
fn summary_response(summary: &Summary, verbose: bool) -> Response<Full<Bytes>> {
    let (status, body) = if verbose {
        verbose_body(summary.lifecycle(), |each| {
            summary.checks().iter().for_each(|report| each(report));
            true
        })
        .expect("a summary lists every report")
    } else {
        (summary.status(), short_body(summary.status()))
    };
    respond(status, body)
}

fn respond(status: Status, body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    if !status.is_up() {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The body without detail, static: `{"status":"pass"}`, `"warn"` or `"fail"`.
const fn short_body(status: Status) -> Bytes {
    Bytes::from_static(match status {
        Status::Healthy => br#"{"status":"pass"}"#,
        Status::Degraded => br#"{"status":"warn"}"#,
        Status::Unhealthy => br#"{"status":"fail"}"#,
    })
}

/// The body with detail, in the shape of the IETF health-check draft
/// (`draft-inadarei-api-health-check`): `{"status":"pass","checks":{...}}`, one array per check
/// (the lifecycle first, when it has a say) holding its `status`, `output` (the reason),
/// `details` and `durationMs`; and the worst status.
///
/// `reports` hands every report to the function it is given, and says whether it could (the
/// cache may have none); it is called twice: once to measure the body, once to write it into a
/// buffer of that exact length, which `Bytes` then takes over without a second allocation. The
/// status is written last, over a placeholder of the same length (every status is four letters),
/// so it is the worst of the reports written even if a report changed between the two calls
/// (then the buffer only grows).
fn verbose_body(
    lifecycle: Option<&Health>,
    reports: impl Fn(&mut dyn FnMut(&CheckReport)) -> bool,
) -> Option<(Status, Bytes)> {
    let mut measure = Body::new(Length(0), lifecycle);
    if !reports(&mut |report| measure.check(report)) {
        return None;
    }
    let (Length(len), _) = measure.finish();
    let mut write = Body::new(Buffer(Vec::with_capacity(len)), lifecycle);
    if !reports(&mut |report| write.check(report)) {
        return None;
    }
    let (Buffer(mut bytes), status) = write.finish();
    bytes[STATUS_AT..STATUS_AT + 4].copy_from_slice(status.as_str().as_bytes());
    Some((status, Bytes::from(bytes)))
}

/// Where the status's four letters sit in a body: after `{"status":"`.
const STATUS_AT: usize = r#"{"status":""#.len();

/// A verbose body being written to `out`, with the worst status seen so far.
struct Body<W> {
    out: W,
    worst: Status,
    first: bool,
}

impl<W: fmt::Write> Body<W> {
    fn new(mut out: W, lifecycle: Option<&Health>) -> Self {
        // The status is not known yet: `pass` holds its place.
        let _ = out.write_str(r#"{"status":"pass","checks":{"#);
        let mut body = Self {
            out,
            worst: Status::Healthy,
            first: true,
        };
        if let Some(health) = lifecycle {
            body.entry("lifecycle", health.status(), health, None);
        }
        body
    }

    fn check(&mut self, report: &CheckReport) {
        self.entry(
            report.name(),
            report.status(),
            report.health(),
            Some(report.duration()),
        );
    }

    fn entry(&mut self, name: &str, status: Status, health: &Health, duration: Option<Duration>) {
        self.worst = self.worst.max(status);
        let out = &mut self.out;
        if !std::mem::take(&mut self.first) {
            let _ = out.write_char(',');
        }
        push_string(out, name);
        let _ = out.write_str(r#":[{"status":""#);
        let _ = out.write_str(status.as_str());
        let _ = out.write_char('"');
        if let Some(reason) = health.reason() {
            let _ = out.write_str(r#","output":"#);
            push_string(out, reason);
        }
        if let Some(details) = health.details() {
            let _ = out.write_str(r#","details":"#);
            push_string(out, details);
        }
        if let Some(duration) = duration {
            // Milliseconds with three decimals, rounded to the microsecond, in integers (a
            // float's formatting costs more than the rest of the entry).
            let micros = (duration.as_nanos() + 500) / 1000;
            let _ = write!(
                out,
                r#","durationMs":{}.{:03}"#,
                micros / 1000,
                micros % 1000
            );
        }
        let _ = out.write_str("}]");
    }

    fn finish(mut self) -> (W, Status) {
        let _ = self.out.write_str("}}");
        (self.out, self.worst)
    }
}

/// Counts the bytes written.
struct Length(usize);

impl fmt::Write for Length {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Appends the bytes written (UTF-8, as `str`s are).
struct Buffer(Vec<u8>);

impl fmt::Write for Buffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn push_string(out: &mut impl fmt::Write, text: &str) {
    let _ = out.write_char('"');
    let needs_escape = |c: char| c == '"' || c == '\\' || u32::from(c) < 0x20;
    if !text.contains(needs_escape) {
        // The common case, a name or a reason as written: at once.
        let _ = out.write_str(text);
        let _ = out.write_char('"');
        return;
    }
    for c in text.chars() {
        let _ = match c {
            '"' => out.write_str("\\\""),
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if u32::from(c) < 0x20 => write!(out, "\\u{:04x}", u32::from(c)),
            c => out.write_char(c),
        };
    }
    let _ = out.write_char('"');
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

    /// #22.2: a duration reads in milliseconds with three decimals, rounded to the microsecond.
    #[test]
    fn durations_in_milliseconds() {
        let body = |duration| {
            let mut body = Body::new(Length(0), None);
            body.entry("x", Status::Healthy, &Health::healthy(), Some(duration));
            let mut out = Body::new(Buffer(Vec::new()), None);
            out.entry("x", Status::Healthy, &Health::healthy(), Some(duration));
            let (Buffer(bytes), _) = out.finish();
            let (Length(len), _) = body.finish();
            assert_eq!(len, bytes.len(), "measured as written");
            String::from_utf8(bytes).unwrap()
        };
        for (duration, ms) in [
            (Duration::ZERO, "0.000"),
            (Duration::from_nanos(1_499), "0.001"),
            (Duration::from_nanos(1_500), "0.002"),
            (Duration::from_micros(30_250), "30.250"),
            (Duration::from_secs(2), "2000.000"),
        ] {
            let expected = format!(
                r#"{{"status":"pass","checks":{{"x":[{{"status":"pass","durationMs":{ms}}}]}}}}"#
            );
            assert_eq!(body(duration), expected);
        }
    }
}
