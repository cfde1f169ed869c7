//! `TimeoutConfig`: a timeout layer's settings read from a configuration file (feature `serde`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use weir_core::config::ConfigDuration;

use weir_core::ConfigError;

use crate::builder::{TimeoutBuilder, zero_timeout};
use crate::layer::TimeoutLayer;
use crate::policy::RouteTimeouts;
use crate::settings::PATTERN;
use crate::state::BelowFloor;

/// The settings of a [`TimeoutLayer`] read from a configuration file (TOML, or any serde
/// format). Every field is optional: an empty table gives the builder's defaults (no timeout of
/// the layer's own, no header mode, name `"default"`; a deadline already in a request is still
/// enforced). An unknown field is an error.
///
/// | field | type | example | builder method |
/// |---|---|---|---|
/// | `timeout` | duration | `"5s"` | [`timeout`](TimeoutBuilder::timeout); with `routes`, the timeout of the routes the table does not name |
/// | `routes` | table: route to duration or `"none"` | `{ "/health" = "200ms", "/reports/*" = "60s", "/events/*" = "none" }` | [`routes`](TimeoutBuilder::routes) |
/// | `incoming` | duration | `"30s"` | [`incoming`](TimeoutBuilder::incoming) (server mode: the cap on a client's `grpc-timeout` / `x-timeout-ms`) |
/// | `incoming_floor` | duration | `"50ms"` | [`incoming_floor`](TimeoutBuilder::incoming_floor) (server mode: a client's deadline shorter than this is refused at once or raised to it; at most `incoming`) |
/// | `below_floor` | `"reject"` or `"raise"` | `"raise"` | what `incoming_floor` does with a shorter deadline ([`BelowFloor`]; default `"reject"`: a timeout of the caller's own deadline, 504 / `DEADLINE_EXCEEDED`, before the handler runs); only with `incoming_floor` |
/// | `reject_malformed_incoming` | boolean | `true` | [`reject_malformed_incoming`](TimeoutBuilder::reject_malformed_incoming) (server mode: a malformed `grpc-timeout` / `x-timeout-ms` is answered 400 / `INVALID_ARGUMENT` instead of ignored) |
/// | `propagate` | duration | `"20ms"` | [`propagate`](TimeoutBuilder::propagate) (client mode: the network allowance) |
/// | `expose_deadline` | boolean | `true` | [`expose_deadline`](TimeoutBuilder::expose_deadline) (store every request's deadline in its extensions; default: except in server mode) |
/// | `name` | string | `"edge"` | [`name`](TimeoutBuilder::name) |
///
/// Durations are strings, a whole number and a unit (`"500us"`, `"250ms"`, `"10s"`, `"2m"`,
/// `"1h"`). In `routes`, a key names a route exactly (an axum route template such as
/// `/users/{id}` with the `axum` feature, or a path), and a key ending in `*` names every path
/// starting with what comes before the `*` ([`RouteTimeouts::prefix`]: `"/reports/*"` is the
/// prefix `/reports/`); `"none"` means no timeout from this layer for that route (a stream, a
/// long poll).
///
/// **One type for every file.** Whether a file names routes or not, the layer is a
/// `TimeoutLayer<RouteTimeouts>`: `timeout` is the table's default and `routes` its entries
/// (a table with no entries gives every request `timeout`). It serves `http::Request`s (and so
/// axum, hyper and tonic); for another request type, build the layer in code with
/// [`TimeoutLayer::new`] or [`TimeoutLayer::builder`].
///
/// **What stays in code**: a per-request closure ([`timeout_fn`](TimeoutBuilder::timeout_fn),
/// which replaces the file's `timeout` and `routes`) and the [`observer`](TimeoutBuilder::observer):
/// call them on the builder [`builder`](Self::builder) returns.
///
/// ```
/// use weir_timeout::TimeoutConfig;
///
/// let config: TimeoutConfig = toml::from_str(r#"
///     timeout = "5s"
///     incoming = "30s"
///     name = "edge"
///
///     [routes]
///     "/health" = "200ms"
///     "/reports/*" = "60s"
///     "/events/*" = "none"
/// "#).unwrap();
/// let layer = config.build().unwrap();
/// assert_eq!(layer.name().as_str(), "edge");
///
/// let err = toml::from_str::<TimeoutConfig>(r#"timeout = "0s""#).unwrap().build().unwrap_err();
/// assert!(err.to_string().starts_with("timeout: `timeout` must be greater than zero"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// The timeout of every request, counted from `call`; with `routes`, the timeout of the
    /// routes the table does not name. Greater than zero.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Per-route timeouts: a route (or, ending in `*`, a path prefix) to its timeout, `None`
    /// (written `"none"`) for no timeout. Every route starts with `/`; every timeout is greater
    /// than zero.
    #[serde(default, deserialize_with = "routes")]
    pub routes: Option<BTreeMap<String, Option<ConfigDuration>>>,
    /// Server mode: the longest deadline a client's `grpc-timeout` or `x-timeout-ms` may ask
    /// for. Greater than zero.
    #[serde(default)]
    pub incoming: Option<ConfigDuration>,
    /// Server mode: a client's deadline shorter than this is not honoured as sent (see
    /// `below_floor`). Greater than zero, at most `incoming`.
    #[serde(default)]
    pub incoming_floor: Option<ConfigDuration>,
    /// Server mode: what `incoming_floor` does with a shorter deadline (unset: refuse it,
    /// [`BelowFloor::Reject`]). Only with `incoming_floor`.
    #[serde(default)]
    pub below_floor: Option<BelowFloor>,
    /// Server mode: whether a malformed incoming `grpc-timeout` or `x-timeout-ms` is refused
    /// (400 / `INVALID_ARGUMENT`) rather than ignored (unset: ignored).
    #[serde(default)]
    pub reject_malformed_incoming: Option<bool>,
    /// Client mode: the time left, minus this allowance, is written on outgoing requests.
    #[serde(default)]
    pub propagate: Option<ConfigDuration>,
    /// Whether every HTTP request's deadline is stored in its extensions (unset: always,
    /// except in server mode, where only a deadline the request carried is).
    #[serde(default)]
    pub expose_deadline: Option<bool>,
    /// The layer's name in errors and events.
    #[serde(default)]
    pub name: Option<String>,
}

impl TimeoutConfig {
    /// A [`TimeoutBuilder`] with these settings on top of the builder's defaults; chain
    /// [`observer`](TimeoutBuilder::observer) before `build()` to add one.
    ///
    /// # Errors
    ///
    /// A zero `timeout` ([`ConfigError::is_zero`]), a `below_floor` without `incoming_floor`
    /// ([`ConfigError::is_missing`]); the builder's other rules (a zero `incoming`, a zero
    /// `incoming_floor` or one longer than `incoming`, a route that does not start with `/`, a
    /// zero route timeout) are reported by `build()`.
    pub fn builder(&self) -> Result<TimeoutBuilder<RouteTimeouts>, ConfigError> {
        let default = self.timeout.map(ConfigDuration::get);
        if default.is_some_and(|d| d.is_zero()) {
            return Err(zero_timeout());
        }
        let mut table = RouteTimeouts::new(default);
        for (route, timeout) in self.routes.iter().flatten() {
            let timeout = timeout.map(ConfigDuration::get);
            table = match route.strip_suffix('*') {
                Some(prefix) => table.prefix(prefix, timeout),
                None => table.route(route.as_str(), timeout),
            };
        }
        let mut builder = TimeoutLayer::builder().routes(table);
        if let Some(max) = self.incoming {
            builder = builder.incoming(max.get());
        }
        match (self.incoming_floor, self.below_floor) {
            (Some(floor), below) => {
                builder = builder.incoming_floor(floor.get(), below.unwrap_or(BelowFloor::Reject));
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    PATTERN,
                    "incoming_floor",
                    "must be given with `below_floor`",
                ));
            }
            (None, None) => {}
        }
        if let Some(reject) = self.reject_malformed_incoming {
            builder = builder.reject_malformed_incoming(reject);
        }
        if let Some(allowance) = self.propagate {
            builder = builder.propagate(allowance.get());
        }
        if let Some(expose) = self.expose_deadline {
            builder = builder.expose_deadline(expose);
        }
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        Ok(builder)
    }

    /// Builds the layer: [`builder`](Self::builder), then [`TimeoutBuilder::build`].
    ///
    /// # Errors
    ///
    /// The first rule broken; its message names the field.
    pub fn build(&self) -> Result<TimeoutLayer<RouteTimeouts>, ConfigError> {
        self.builder()?.build()
    }
}

/// A route's timeout in a file: a duration, or `"none"` for no timeout.
struct RouteTimeout(Option<ConfigDuration>);

impl<'de> Deserialize<'de> for RouteTimeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = RouteTimeout;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration such as "250ms" or "10s", or "none""#)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RouteTimeout, E> {
                if text.trim() == "none" {
                    return Ok(RouteTimeout(None));
                }
                ConfigDuration::parse(text)
                    .map(|d| RouteTimeout(Some(d)))
                    .map_err(|rule| {
                        E::custom(format_args!(
                            r#"invalid route timeout {text:?}: {rule}, or "none""#
                        ))
                    })
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Reads `routes`: a table of route to [`RouteTimeout`].
fn routes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, Option<ConfigDuration>>>, D::Error> {
    let table = BTreeMap::<String, RouteTimeout>::deserialize(deserializer)?;
    Ok(Some(
        table.into_iter().map(|(route, t)| (route, t.0)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue, Request, Response};
    use tower::{Layer, ServiceExt, service_fn};
    use weir_core::{BoxError, Deadline, Error};

    use super::*;
    use crate::policy::TimeoutPolicy;

    fn parse(text: &str) -> TimeoutConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// What the inner service saw: the time left on the request's deadline and the
    /// `x-timeout-ms` header the layer sent on.
    type Seen = (Option<Duration>, Option<HeaderValue>);

    async fn seen<P>(layer: &TimeoutLayer<P>, req: Request<()>) -> Result<Seen, BoxError>
    where
        P: TimeoutPolicy<Request<()>> + Clone,
    {
        let inner = service_fn(|req: Request<()>| async move {
            let left = Deadline::get(req.extensions()).map(Deadline::remaining);
            let header = req.headers().get("x-timeout-ms").cloned();
            Ok::<_, BoxError>(Response::new((left, header)))
        });
        Ok(layer.layer(inner).oneshot(req).await?.into_body())
    }

    fn get(path: &str, headers: &[(&'static str, &'static str)]) -> Request<()> {
        let mut req = Request::get(path).body(()).unwrap();
        let map: &mut HeaderMap = req.headers_mut();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        req
    }

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const FULL: &str = r#"
        timeout = "5s"
        incoming = "30s"
        reject_malformed_incoming = true
        propagate = "20ms"
        expose_deadline = true
        name = "edge"

        [routes]
        "/health" = "200ms"
        "/reports/*" = "60s"
        "/events/*" = "none"
    "#;

    #[test]
    fn a_full_file_reads_every_field() {
        let config = parse(FULL);
        let d = |n| Some(ConfigDuration::from(ms(n)));
        assert_eq!(config.timeout, d(5_000));
        assert_eq!(config.incoming, d(30_000));
        assert_eq!(config.reject_malformed_incoming, Some(true));
        assert_eq!(config.propagate, d(20));
        assert_eq!(config.expose_deadline, Some(true));
        assert_eq!(config.name.as_deref(), Some("edge"));
        let routes = config.routes.unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes["/health"], d(200));
        assert_eq!(routes["/reports/*"], d(60_000));
        assert_eq!(routes["/events/*"], None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_file_builds_a_layer_with_every_setting() {
        let layer = parse(FULL).build().unwrap();
        assert_eq!(layer.name().as_str(), "edge");

        // `timeout` is the default; `propagate` sends the time left minus 20 ms.
        let (left, header) = seen(&layer, get("/users/7", &[])).await.unwrap();
        assert_eq!(left, Some(ms(5_000)));
        assert_eq!(header.unwrap(), "4980");

        // An exact route.
        let (left, header) = seen(&layer, get("/health", &[])).await.unwrap();
        assert_eq!(left, Some(ms(200)));
        assert_eq!(header.unwrap(), "180");

        // A prefix route, and `incoming` caps the client's 100 s at 30 s (below the route's 60 s).
        let req = get("/reports/2026/q3", &[("x-timeout-ms", "100000")]);
        let (left, header) = seen(&layer, req).await.unwrap();
        assert_eq!(left, Some(ms(30_000)));
        assert_eq!(header.unwrap(), "29980");

        // A client's shorter deadline wins over the route's.
        let req = get("/reports/x", &[("x-timeout-ms", "700")]);
        assert_eq!(seen(&layer, req).await.unwrap().0, Some(ms(700)));

        // "none": no deadline, so nothing is sent on either.
        let (left, header) = seen(&layer, get("/events/stream", &[])).await.unwrap();
        assert_eq!((left, header), (None, None));

        // The timeout fires, and its error carries the name.
        let slow = layer.layer(service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, BoxError>(())
        }));
        let err = slow.oneshot(get("/health", &[])).await.unwrap_err();
        let err = Error::find(&*err).unwrap();
        assert!(err.is_timeout());
        assert_eq!(err.layer(), Some("edge"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_alone_applies_to_every_route() {
        let layer = parse(r#"timeout = "250ms""#).build().unwrap();
        for path in ["/", "/health", "/a/b/c"] {
            let (left, header) = seen(&layer, get(path, &[])).await.unwrap();
            assert_eq!(left, Some(ms(250)), "{path}");
            // Client mode is off: nothing is written.
            assert_eq!(header, None);
        }
        // Server mode is off: a client's header does not start a deadline.
        let layer = parse("").build().unwrap();
        let req = get("/", &[("x-timeout-ms", "100")]);
        assert_eq!(seen(&layer, req).await.unwrap().0, None);
    }

    #[tokio::test(start_paused = true)]
    async fn expose_deadline_decides_what_a_server_stores() {
        // Server mode without client mode: by default only a deadline the request carried is
        // stored; `expose_deadline = true` stores the layer's own too.
        let server = "timeout = \"5s\"\nincoming = \"30s\"\n";
        let default = parse(server).build().unwrap();
        let exposed = parse(&format!("{server}expose_deadline = true"))
            .build()
            .unwrap();
        assert_eq!(seen(&default, get("/", &[])).await.unwrap().0, None);
        assert_eq!(
            seen(&exposed, get("/", &[])).await.unwrap().0,
            Some(ms(5_000))
        );
        let carried = || get("/", &[("x-timeout-ms", "800")]);
        assert_eq!(seen(&default, carried()).await.unwrap().0, Some(ms(800)));
        assert_eq!(seen(&exposed, carried()).await.unwrap().0, Some(ms(800)));

        // And `false` keeps a plain timeout's deadline out of the extensions.
        let hidden = parse("timeout = \"5s\"\nexpose_deadline = false")
            .build()
            .unwrap();
        assert_eq!(seen(&hidden, get("/", &[])).await.unwrap().0, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_table_builds_the_builder_defaults() {
        let config = parse("");
        assert_eq!(config, TimeoutConfig::default());
        let from_file = config.build().unwrap();
        let from_code = TimeoutLayer::builder().build().unwrap();
        assert_eq!(from_file.name(), from_code.name());
        assert_eq!(from_file.name().as_str(), "default");

        // No timeout of its own, no server mode, no client mode: the same as the builder's.
        for headers in [&[][..], &[("x-timeout-ms", "100")][..]] {
            let file = seen(&from_file, get("/users/7", headers)).await.unwrap();
            let code = seen(&from_code, get("/users/7", headers)).await.unwrap();
            assert_eq!(file, code);
            assert_eq!(file.0, None);
        }

        // Both still enforce a deadline the request already carries.
        let with_deadline = || {
            let mut req = get("/", &[]);
            Deadline::after(ms(40)).set_earliest(req.extensions_mut());
            req
        };
        assert_eq!(
            seen(&from_file, with_deadline()).await.unwrap().0,
            Some(ms(40))
        );
        assert_eq!(
            seen(&from_code, with_deadline()).await.unwrap().0,
            Some(ms(40))
        );
    }

    /// #16.2: `reject_malformed_incoming = true` in a file answers a malformed incoming
    /// timeout header with 400 (a bad request) before the handler runs; unset, it is ignored.
    #[tokio::test(start_paused = true)]
    async fn reject_malformed_incoming_is_read_from_a_file() {
        let server = "timeout = \"5s\"\nincoming = \"30s\"\n";
        let strict = parse(&format!("{server}reject_malformed_incoming = true"));
        assert_eq!(strict.reject_malformed_incoming, Some(true));
        let strict = strict.build().unwrap();
        let lenient = parse(server).build().unwrap();
        for header in [("x-timeout-ms", "abc"), ("grpc-timeout", "123456789n")] {
            let err = seen(&strict, get("/", &[header])).await.unwrap_err();
            let err = Error::find(&*err).unwrap();
            assert!(
                err.is_bad_request() && !err.is_timeout(),
                "{header:?}: {err}"
            );
            // Ignored by default: the layer's own 5 s applies, the handler runs.
            let (left, _) = seen(&lenient, get("/", &[header])).await.unwrap();
            assert_eq!(
                left, None,
                "{header:?}: server mode stores no deadline of its own"
            );
        }
        // A well-formed header is honoured either way.
        let (left, _) = seen(&strict, get("/", &[("x-timeout-ms", "800")]))
            .await
            .unwrap();
        assert_eq!(left, Some(ms(800)));
    }

    /// #16.2: `incoming_floor` (with `below_floor`, `"reject"` by default) in a file holds a
    /// client's deadline to a floor: a shorter one is refused at once as a timeout of the
    /// caller's own deadline, or raised to the floor; one at the floor is honoured.
    #[tokio::test(start_paused = true)]
    async fn incoming_floor_is_read_from_a_file() {
        let server = "incoming = \"30s\"\nincoming_floor = \"50ms\"\n";
        let reject = parse(server);
        assert_eq!(reject.incoming_floor, Some(ConfigDuration::from(ms(50))));
        assert_eq!(reject.below_floor, None);
        let reject = reject.build().unwrap();
        let err = seen(&reject, get("/", &[("x-timeout-ms", "1")]))
            .await
            .unwrap_err();
        let err = Error::find(&*err).unwrap();
        assert!(err.is_timeout() && err.is_caller_deadline(), "{err}");
        let (left, _) = seen(&reject, get("/", &[("grpc-timeout", "50m")]))
            .await
            .unwrap();
        assert_eq!(left, Some(ms(50)), "at the floor: honoured");

        let raise = parse(&format!("{server}below_floor = \"raise\""));
        assert_eq!(raise.below_floor, Some(BelowFloor::Raise));
        let (left, _) = seen(&raise.build().unwrap(), get("/", &[("x-timeout-ms", "1")]))
            .await
            .unwrap();
        assert_eq!(left, Some(ms(50)), "raised to the floor");

        let explicit = parse(&format!("{server}below_floor = \"reject\""));
        assert_eq!(explicit.below_floor, Some(BelowFloor::Reject));
        let err = seen(
            &explicit.build().unwrap(),
            get("/", &[("x-timeout-ms", "1")]),
        )
        .await
        .unwrap_err();
        assert!(Error::find(&*err).unwrap().is_caller_deadline());

        // Without a floor the client's 1 ms is honoured.
        let plain = parse("incoming = \"30s\"").build().unwrap();
        let (left, _) = seen(&plain, get("/", &[("x-timeout-ms", "1")]))
            .await
            .unwrap();
        assert_eq!(left, Some(ms(1)));
    }

    /// #16.2: the floor's rules, each naming its field.
    #[test]
    fn incoming_floor_rules_name_their_field() {
        let build_err = |text: &str| parse(text).build().unwrap_err();

        let err = build_err("incoming = \"30s\"\nincoming_floor = \"0ms\"");
        assert!(err.is_zero(), "{err}");
        assert_eq!(err.field(), "incoming_floor");

        let err = build_err("incoming = \"1s\"\nincoming_floor = \"2s\"");
        assert!(err.is_conflict(), "{err}");
        assert_eq!(
            err.to_string(),
            "timeout: `incoming_floor` (2s) must not be longer than `incoming` (1s)"
        );

        let err = build_err("incoming = \"1s\"\nbelow_floor = \"raise\"");
        assert!(err.is_missing(), "{err}");
        assert_eq!(err.field(), "incoming_floor");

        let text = toml::from_str::<TimeoutConfig>("below_floor = \"wait\"")
            .unwrap_err()
            .to_string();
        assert!(text.contains("below_floor"), "{text}");
        assert!(text.contains("reject") && text.contains("raise"), "{text}");
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let err = toml::from_str::<TimeoutConfig>("timeout = \"1s\"\nretries = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown field `retries`"), "{text}");
        assert!(
            text.contains("routes"),
            "the expected fields are listed: {text}"
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let build_err = |text: &str| parse(text).build().unwrap_err().to_string();
        let read_err = |text: &str| {
            toml::from_str::<TimeoutConfig>(text)
                .unwrap_err()
                .to_string()
        };

        let text = build_err(r#"timeout = "0s""#);
        assert!(
            text.starts_with("timeout: `timeout` must be greater than zero"),
            "{text}"
        );
        // Also with routes: the zero is reported as `timeout`, not as the table's default.
        let text = build_err("timeout = \"0ms\"\nroutes = { \"/a\" = \"1s\" }");
        assert!(text.starts_with("timeout: `timeout` must be"), "{text}");

        let text = build_err(r#"incoming = "0s""#);
        assert_eq!(
            text,
            "timeout: `incoming` maximum must be greater than zero"
        );

        let text = build_err(r#"routes = { "/a" = "0ms" }"#);
        assert!(
            text.starts_with("timeout: `routes` the timeout of `/a`"),
            "{text}"
        );

        let text = build_err(r#"routes = { "api/*" = "1s" }"#);
        assert_eq!(text, "timeout: `routes` route `api/` must start with `/`");

        let text = read_err(r#"timeout = "5 seconds""#);
        assert!(text.contains("timeout"), "{text}");
        assert!(text.contains(r#"invalid duration "5 seconds""#), "{text}");

        let text = read_err(r#"propagate = 20"#);
        assert!(text.contains("propagate"), "{text}");

        let text = read_err(r#"routes = { "/a" = "never" }"#);
        assert!(text.contains("routes"), "{text}");
        assert!(text.contains(r#"invalid route timeout "never""#), "{text}");
        assert!(text.contains(r#"or "none""#), "{text}");

        let text = read_err(r#"name = 7"#);
        assert!(text.contains("name"), "{text}");
    }
}
