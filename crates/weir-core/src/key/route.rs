//! Keys from the request line: [`RouteKey`], `Route`, [`MethodPath`] and [`Authority`].

use std::fmt;
use std::hash::{Hash, Hasher};

use http::uri::PathAndQuery;
use http::{Method, Request};

use super::api_key::DEFAULT_MAX_KEY_LEN;
use crate::KeyExtractor;

/// A route: axum's matched route template (`/users/{id}`), or the request's raw path. The key
/// of `Route` and part of [`MethodPath`]'s.
///
/// Compares and hashes as its text ([`as_str`](Self::as_str)); a raw path excludes the query.
/// A clone is a reference-count increment.
#[derive(Clone)]
pub struct RouteKey(RouteRepr);

#[derive(Clone)]
enum RouteRepr {
    Static(&'static str),
    /// The request's path and query; the key is the path.
    Raw(PathAndQuery),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
}

impl RouteKey {
    /// A route named by a string literal: to name a key, for example when asking a keyed
    /// layer's handle about one route (`RouteKey::from_static("/users/{id}")` equals the key of
    /// every request axum matched to that route).
    #[must_use]
    pub const fn from_static(route: &'static str) -> Self {
        Self(RouteRepr::Static(route))
    }

    /// The route template or path.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            RouteRepr::Static(route) => route,
            RouteRepr::Raw(path) => path.path(),
            #[cfg(feature = "axum")]
            RouteRepr::Matched(matched) => matched.as_str(),
        }
    }

    /// The route of `req`: axum's matched route when there is one, else the raw path; `None`
    /// for a raw path longer than [`DEFAULT_MAX_KEY_LEN`].
    fn of<B>(req: &Request<B>) -> Option<Self> {
        #[cfg(feature = "axum")]
        if let Some(matched) = req.extensions().get::<axum::extract::MatchedPath>() {
            return Some(Self(RouteRepr::Matched(matched.clone())));
        }
        match req.uri().path_and_query() {
            Some(path) if path.path().len() > DEFAULT_MAX_KEY_LEN => None,
            Some(path) => Some(Self(RouteRepr::Raw(path.clone()))),
            None => Some(Self::from_static("")),
        }
    }

    /// The same route in a buffer of its own (see [`KeyExtractor::detach`]).
    fn detached(self) -> Self {
        match &self.0 {
            RouteRepr::Raw(path) => match PathAndQuery::try_from(path.path()) {
                Ok(path) => Self(RouteRepr::Raw(path)),
                Err(_) => self,
            },
            _ => self,
        }
    }
}

impl PartialEq for RouteKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteKey {}

impl Hash for RouteKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RouteKey").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// axum's matched route template, such as `/users/{id}`. Key: [`RouteKey`].
///
/// axum records the matched route before it calls the route's service, so the key is there in
/// handlers and in layers added with `Router::layer` or `Router::route_layer`; it is missing in
/// a layer wrapped around the whole router (before routing) and for requests no route matched.
/// Every request to `/users/1`, `/users/2`, ... has the one key `/users/{id}`.
#[cfg(feature = "axum")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Route;

#[cfg(feature = "axum")]
impl<B> KeyExtractor<Request<B>> for Route {
    type Key = RouteKey;

    fn extract(&self, req: &Request<B>) -> Option<RouteKey> {
        let matched = req.extensions().get::<axum::extract::MatchedPath>()?;
        Some(RouteKey(RouteRepr::Matched(matched.clone())))
    }
}

/// The request's method and route. Key: `(Method, RouteKey)`.
///
/// The route is axum's matched route template when there is one (with the `axum` feature, see
/// `Route`) and the raw URI path otherwise (the query is not part of the key). A raw path makes
/// the key space as large as the URL space, chosen by clients: every weir keyed layer bounds its
/// state and evicts idle keys, but prefer route templates where you have them. A raw path longer
/// than [`DEFAULT_MAX_KEY_LEN`] bytes makes the key missing (a URI may be 64 KiB long, and no
/// client should choose how much a keyed layer holds per key); otherwise the key is never
/// missing.
///
/// A clone of a standard method is free; an extension method longer than 15 bytes is copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MethodPath;

impl<B> KeyExtractor<Request<B>> for MethodPath {
    type Key = (Method, RouteKey);

    fn extract(&self, req: &Request<B>) -> Option<(Method, RouteKey)> {
        Some((req.method().clone(), RouteKey::of(req)?))
    }

    fn detach(&self, (method, route): (Method, RouteKey)) -> (Method, RouteKey) {
        (method, route.detached())
    }
}

/// The authority (`host[:port]`) a request is sent to, for client-side keyed layers: one
/// circuit breaker or bulkhead per upstream. Key: [`http::uri::Authority`].
///
/// Read from the request URI (absolute-form, as hyper's and tonic's clients send it), else from
/// the `Host` header; missing when neither parses, and when the authority is longer than
/// [`DEFAULT_MAX_KEY_LEN`] bytes (a host name has at most 253). From the URI the key shares the
/// request's bytes (no allocation); from `Host` it is a small copy.
///
/// ```
/// use http::Request;
/// use weir_core::KeyExtractor;
/// use weir_core::key::Authority;
///
/// let req = Request::get("http://inventory:8080/items/7").body(()).unwrap();
/// assert_eq!(Authority.extract(&req).unwrap(), "inventory:8080");
/// let req = Request::get("/items/7").header("host", "inventory").body(()).unwrap();
/// assert_eq!(Authority.extract(&req).unwrap(), "inventory");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Authority;

impl<B> KeyExtractor<Request<B>> for Authority {
    type Key = http::uri::Authority;

    fn extract(&self, req: &Request<B>) -> Option<http::uri::Authority> {
        if let Some(authority) = req.uri().authority() {
            return (authority.as_str().len() <= DEFAULT_MAX_KEY_LEN).then(|| authority.clone());
        }
        let host = req.headers().get(http::header::HOST)?;
        if host.len() > DEFAULT_MAX_KEY_LEN {
            return None;
        }
        http::uri::Authority::try_from(host.as_bytes()).ok()
    }

    fn detach(&self, key: http::uri::Authority) -> http::uri::Authority {
        http::uri::Authority::try_from(key.as_str().as_bytes()).unwrap_or(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_path_uses_the_raw_path_without_query() {
        let get = |uri: &str| Request::get(uri).body(()).expect("request");
        let key = MethodPath.extract(&get("/users/7?page=1")).expect("key");
        assert_eq!(key, (Method::GET, RouteKey::from_static("/users/7")));
        assert_eq!(
            MethodPath.extract(&get("/users/7?page=2")),
            Some(key.clone())
        );
        assert_ne!(MethodPath.extract(&get("/users/8")), Some(key.clone()));
        let post = Request::post("/users/7").body(()).expect("request");
        assert_ne!(MethodPath.extract(&post), Some(key));
        assert_eq!(RouteKey::from_static("/x").to_string(), "/x");
    }

    #[cfg(feature = "axum")]
    mod axum_routes {
        use std::sync::{Arc, Mutex};

        use axum::Router;
        use axum::body::Body;
        use axum::extract::Request as AxumRequest;
        use axum::middleware::{self, Next};
        use axum::routing::get;
        use tower::ServiceExt;

        use super::*;

        type Seen = Arc<Mutex<Vec<(Option<RouteKey>, Option<(Method, RouteKey)>)>>>;

        fn keys(req: &AxumRequest) -> (Option<RouteKey>, Option<(Method, RouteKey)>) {
            (Route.extract(req), MethodPath.extract(req))
        }

        async fn call(app: Router, uri: &str) {
            let req = Request::get(uri).body(Body::empty()).expect("request");
            app.oneshot(req).await.expect("infallible");
        }

        #[tokio::test]
        async fn handler_sees_the_route_template() {
            let seen = Seen::default();
            let record = seen.clone();
            let app = Router::new().route(
                "/users/{id}",
                get(move |req: AxumRequest| {
                    record.lock().expect("lock").push(keys(&req));
                    async { "ok" }
                }),
            );
            call(app.clone(), "/users/1").await;
            call(app, "/users/2?x=y").await;

            let template = RouteKey::from_static("/users/{id}");
            let expected = (Some(template.clone()), Some((Method::GET, template)));
            assert_eq!(
                *seen.lock().expect("lock"),
                vec![expected.clone(), expected]
            );
        }

        #[tokio::test]
        async fn router_layer_sees_the_template_and_unmatched_requests_fall_back() {
            let seen = Seen::default();
            let record = seen.clone();
            let app = Router::new()
                .route("/orders/{id}", get(|| async { "ok" }))
                .layer(middleware::from_fn(move |req: AxumRequest, next: Next| {
                    record.lock().expect("lock").push(keys(&req));
                    next.run(req)
                }));
            call(app.clone(), "/orders/9").await;
            call(app, "/missing/9").await;

            let template = RouteKey::from_static("/orders/{id}");
            let raw = RouteKey::from_static("/missing/9");
            let seen = seen.lock().expect("lock");
            assert_eq!(
                *seen,
                vec![
                    (Some(template.clone()), Some((Method::GET, template))),
                    (None, Some((Method::GET, raw))),
                ]
            );
        }

        #[test]
        fn route_is_missing_without_axum_routing() {
            assert_eq!(
                Route.extract(&Request::get("/users/1").body(()).expect("req")),
                None
            );
        }
    }

    /// #15.15: a client-chosen raw path or authority longer than the key cap is a missing key.
    #[test]
    fn over_long_paths_and_authorities_are_missing_keys() {
        let long_path = format!("/{}", "p".repeat(DEFAULT_MAX_KEY_LEN));
        let req = Request::get(long_path.as_str()).body(()).expect("request");
        assert_eq!(MethodPath.extract(&req), None);
        let at_cap = format!("/{}", "p".repeat(DEFAULT_MAX_KEY_LEN - 1));
        let req = Request::get(format!("{at_cap}?{}", "q".repeat(4096)))
            .body(())
            .expect("request");
        let (_, route) = MethodPath.extract(&req).expect("a path at the cap");
        assert_eq!(route.as_str(), at_cap);

        let long_host = format!("{}.example", "h".repeat(DEFAULT_MAX_KEY_LEN));
        let req = Request::get("/")
            .header("host", long_host.as_str())
            .body(())
            .expect("request");
        assert_eq!(Authority.extract(&req), None);
        let req = Request::get(format!("http://{long_host}/"))
            .body(())
            .expect("request");
        assert_eq!(Authority.extract(&req), None);
        let req = Request::get("http://inventory:8080/")
            .body(())
            .expect("request");
        assert_eq!(
            Authority.extract(&req).expect("authority"),
            "inventory:8080"
        );
    }
}
