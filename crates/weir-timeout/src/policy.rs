//! How long a request may take: a fixed duration, a closure, or a per-route table.

use std::sync::Arc;
use std::time::Duration;

use http::Request;

/// Picks the timeout of one request; `None` means this layer sets no timeout of its own (a
/// deadline already in the request still holds).
///
/// Implemented by [`Duration`] (the same for every request), by closures
/// `Fn(&Req) -> Option<Duration>` (by method, by header, ...) and by [`RouteTimeouts`] (a
/// per-route table for HTTP).
///
/// ```
/// use std::time::Duration;
/// use http::{Method, Request};
/// use weir_timeout::TimeoutPolicy;
///
/// let by_method = |req: &Request<()>| {
///     Some(if req.method() == Method::GET { Duration::from_secs(2) } else { Duration::from_secs(10) })
/// };
/// assert_eq!(by_method.timeout(&Request::new(())), Some(Duration::from_secs(2)));
/// ```
pub trait TimeoutPolicy<Req> {
    /// The timeout for `req`, counted from the moment the layer's `call` receives it.
    fn timeout(&self, req: &Req) -> Option<Duration>;
}

impl<Req> TimeoutPolicy<Req> for Duration {
    #[inline]
    fn timeout(&self, _req: &Req) -> Option<Duration> {
        Some(*self)
    }
}

impl<Req, F> TimeoutPolicy<Req> for F
where
    F: Fn(&Req) -> Option<Duration>,
{
    #[inline]
    fn timeout(&self, req: &Req) -> Option<Duration> {
        self(req)
    }
}

/// A per-route timeout table for HTTP, with a default for the routes it does not name.
///
/// - [`route`](Self::route) names a route exactly: axum's matched route template (such as
///   `/users/{id}`, with this crate's `axum` feature, when the layer sits inside the router:
///   `Router::layer` or `Router::route_layer`), or else the request's path (`/health`).
/// - [`prefix`](Self::prefix) names every path that starts with it (`/reports/`); the longest
///   matching prefix wins.
/// - An exact route wins over a prefix; with neither, the [`default`](Self::new) applies.
///
/// `None` as a timeout (the default or a route's) means "no timeout from this table" (a long
/// poll, a stream). Lookups walk the table (keep it to tens of routes) and never allocate;
/// cloning the table is a reference-count increment.
///
/// ```
/// use std::time::Duration;
/// use http::Request;
/// use weir_timeout::{RouteTimeouts, TimeoutPolicy};
///
/// let table = RouteTimeouts::new(Some(Duration::from_secs(5)))
///     .route("/health", Some(Duration::from_millis(200)))
///     .prefix("/reports/", Some(Duration::from_secs(60)))
///     .prefix("/events/", None);
/// let get = |path: &str| Request::get(path).body(()).unwrap();
/// assert_eq!(table.timeout(&get("/health")), Some(Duration::from_millis(200)));
/// assert_eq!(table.timeout(&get("/reports/2026/q3")), Some(Duration::from_secs(60)));
/// assert_eq!(table.timeout(&get("/events/stream")), None);
/// assert_eq!(table.timeout(&get("/users/7")), Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug)]
pub struct RouteTimeouts {
    default: Option<Duration>,
    entries: Arc<Vec<Entry>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) route: Box<str>,
    pub(crate) prefix: bool,
    pub(crate) timeout: Option<Duration>,
}

impl RouteTimeouts {
    /// A table whose routes all get `default` until [`route`](Self::route) or
    /// [`prefix`](Self::prefix) say otherwise.
    #[must_use]
    pub fn new(default: Option<Duration>) -> Self {
        Self {
            default,
            entries: Arc::new(Vec::new()),
        }
    }

    /// Gives `route` (an axum route template or an exact path) its own timeout. Naming the same
    /// route twice keeps the last.
    #[must_use]
    pub fn route(self, route: impl Into<String>, timeout: Option<Duration>) -> Self {
        self.insert(route.into(), false, timeout)
    }

    /// Gives every path starting with `prefix` its own timeout. Naming the same prefix twice
    /// keeps the last.
    #[must_use]
    pub fn prefix(self, prefix: impl Into<String>, timeout: Option<Duration>) -> Self {
        self.insert(prefix.into(), true, timeout)
    }

    fn insert(mut self, route: String, prefix: bool, timeout: Option<Duration>) -> Self {
        let entries = Arc::make_mut(&mut self.entries);
        entries.retain(|e| !(e.prefix == prefix && *e.route == *route));
        entries.push(Entry {
            route: route.into_boxed_str(),
            prefix,
            timeout,
        });
        self
    }

    /// The timeout for a request whose matched route template is `matched` (if any) and whose
    /// path is `path`.
    #[must_use]
    fn lookup(&self, matched: Option<&str>, path: &str) -> Option<Duration> {
        let exact = |key: &str| {
            self.entries
                .iter()
                .find(|e| !e.prefix && *e.route == *key)
                .map(|e| e.timeout)
        };
        if let Some(found) = matched.and_then(exact).or_else(|| exact(path)) {
            return found;
        }
        self.entries
            .iter()
            .filter(|e| e.prefix && path.starts_with(&*e.route))
            .max_by_key(|e| e.route.len())
            .map_or(self.default, |e| e.timeout)
    }

    /// The default and every entry, for the builder's checks.
    pub(crate) fn parts(&self) -> (Option<Duration>, &[Entry]) {
        (self.default, &self.entries)
    }
}

impl<B> TimeoutPolicy<Request<B>> for RouteTimeouts {
    fn timeout(&self, req: &Request<B>) -> Option<Duration> {
        #[cfg(feature = "axum")]
        {
            use weir_core::KeyExtractor as _;
            let matched = weir_core::key::Route.extract(req);
            self.lookup(
                matched.as_ref().map(weir_core::key::RouteKey::as_str),
                req.uri().path(),
            )
        }
        #[cfg(not(feature = "axum"))]
        {
            self.lookup(None, req.uri().path())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let table = RouteTimeouts::new(ms(1000))
            .prefix("/a/", ms(10))
            .prefix("/a/b/", ms(20))
            .route("/a/b/c", ms(30))
            .route("/users/{id}", ms(40));
        assert_eq!(table.lookup(None, "/a/x"), ms(10));
        assert_eq!(table.lookup(None, "/a/b/x"), ms(20));
        assert_eq!(table.lookup(None, "/a/b/c"), ms(30));
        assert_eq!(table.lookup(None, "/a/b/c/d"), ms(20));
        assert_eq!(table.lookup(None, "/b"), ms(1000));
        // The matched template wins over the path's prefix.
        assert_eq!(table.lookup(Some("/users/{id}"), "/users/7"), ms(40));
        assert_eq!(table.lookup(Some("/unknown"), "/a/b/c"), ms(30));
    }

    #[test]
    fn renaming_a_route_keeps_the_last_and_clones_share() {
        let table = RouteTimeouts::new(None)
            .route("/x", ms(1))
            .route("/x", None)
            .prefix("/x", ms(2));
        assert_eq!(table.lookup(None, "/x"), None);
        assert_eq!(table.lookup(None, "/xy"), ms(2));
        assert_eq!(table.lookup(None, "/y"), None);
        assert_eq!(table.parts().1.len(), 2);
        let clone = table.clone();
        assert!(Arc::ptr_eq(&clone.entries, &table.entries));
    }
}
