//! weir's gateway: an axum API gateway on 127.0.0.1 in front of an in-process upstream that
//! misbehaves on a schedule, protected by a weir server stack at the edge and a weir client stack
//! on its calls upstream. It drives itself with built-in traffic, shows progress once a second,
//! prints what happened, then keeps serving until Ctrl-C.
//!
//! ```sh
//! cargo run --release --example gateway                          # ~20 s of traffic, a report, then serve
//! cargo run --release --example gateway -- --duration 5 --no-serve  # a short run that exits (CI)
//! cargo run --release --example gateway -- --no-drive --port 8080    # just serve
//! cargo run --release --example gateway -- --no-drive --host 0.0.0.0 --port 8080  # in a container
//! cargo run --release --example gateway -- --no-drive --config gateway.toml  # quotas from a file, reloaded
//! ```
//!
//! - **Listener**: HTTP/1.1 with a header read timeout (5 s to send a request's headers, from the
//!   connection's opening and after each response) and a cap on open connections (1 024; one
//!   more is closed at once), so unfinished connections (slowloris) and idle ones cost nothing
//!   lasting. `axum::serve` has neither.
//! - **Edge** (outermost first): `ErrorResponseLayer` (every refusal becomes a 429, 503 or 504)
//!   → a rate limit with three tiers, each a per-second quota and a daily quota stacked on it,
//!   keyed by API key (`x-api-key`) for the gateway's own keys and by client address for every
//!   other request (no key or an unknown one: the free tier, one bucket per address, read through
//!   `PeerIp`'s trusted-proxy rules) → load shedding above a number of requests in flight → a
//!   server timeout that honours the client's `x-timeout-ms` → the proxy, which forwards the
//!   method, path, headers (not the hop-by-hop ones; `X-Forwarded-For` appended) and body (at
//!   most 1 MiB, else a 413).
//! - **Client** (the proxy's calls upstream, outermost first): a total deadline → budgeted retry
//!   (`RetryLayer::http()`) → a circuit breaker per upstream authority → a bulkhead → a
//!   per-attempt timeout that writes the remaining budget into `x-timeout-ms` → a hyper client.
//! - **Upstream**: answers 503 to a share of requests, has latency spikes and an outage window.
//! - **Orders**: `POST /api/orders` is proxied like any `/api` route to the upstream's order
//!   handler, which sits behind weir-idempotency: the client stack gives every `POST` or
//!   `PATCH` without an `Idempotency-Key` one (`gateway-<random>-<n>`, the same on every attempt
//!   of the call), so its budgeted retry may send the `POST` again, and the upstream runs the
//!   order once and answers a repeat from its store (`Idempotent-Replayed: true`). A client that
//!   sends its own key gets the same answer for every repeat of it.
//! - **Degraded route**: `/api/recommendations` goes through the same edge and client stacks,
//!   with a fallback (weir-fallback) inside the shedder: when the upstream cannot answer (an
//!   error, an open circuit, a timeout, a 5xx), or before it is called while the edge's load
//!   level is critical, it answers a static list of bestsellers marked `weir-fallback: value`.
//!   The report counts fallback answers by source.
//! - **Health probes** (weir-health), beside the edge stack, never behind it, so no rate limit or
//!   shedder refuses them: `/livez` (the process answers), `/readyz` (fails while the upstream's
//!   circuit breaker is open, and while the gateway starts or drains; degraded, still 200, when
//!   the upstream bulkhead or the edge's load level is near saturation, or Redis is unreachable)
//!   and `/startupz`. `?verbose` lists every check. On Ctrl-C (or SIGTERM, as Kubernetes sends)
//!   readiness fails first, the gateway keeps serving for a grace period, then stops.
//! - **Status page** (weir-status), beside the edge stack as well: `/weir/status` shows the
//!   layers given the gateway's `Registry` (the upstream retry budget, breaker and bulkhead, the
//!   edge's shedder, the recommendations' fallback, and the edge's rate limit while its state is
//!   in memory) live: state, gauges, counters, per-second
//!   sparklines, transitions. `/weir/status.json` is the same as JSON, `/weir/status/events` as
//!   server-sent events. Its admin actions (reset the breaker's keys, a client's rate limit) are
//!   off unless `WEIR_STATUS_TOKEN` is set; then they take `Authorization: Bearer <token>` (the
//!   page asks for the token).
//!
//! - **Metrics** (#19): `/metrics` serves Prometheus text (metrics-exporter-prometheus, with no
//!   listener of its own): every layer reports through `weir::core::observer::Metrics` (events by outcome and
//!   reason, breaker transitions, the retry's backoff histogram), and each scrape reads the
//!   registered layers' gauges and totals (`weir::metrics::record`). The names are weir-core's
//!   naming table.
//!
//! With `--config FILE` the tiers' quotas come from a TOML file (`[free]`, `[basic]` and `[premium]`
//! tables, each `per_second = N` and `per_day = N`; without it, the embedded defaults), and the
//! gateway **watches the file**: `weir::watch` reads it every 2 s (and at once on SIGHUP) and, when
//! its text changed, applies the new quotas to the running rate limit through its handle (every
//! client's state carries over). A file that does not parse, or that `weir` refuses (a zero
//! quota), keeps the running quotas and is logged at `warn` with its field.
//!
//! With `WEIR_REDIS_URL=redis://host:port` the rate limits live in Redis (weir-redis), shared by
//! every gateway instance; without it they stay in memory. While Redis is unreachable each
//! instance limits locally with its share of every quota: set `WEIR_INSTANCES` to the number of
//! instances. Behind reverse proxies, set `WEIR_TRUSTED_PROXIES` to their addresses or networks
//! (`10.0.0.0/8,192.0.2.7`) so that clients are keyed by the address they recorded.
//!
//! Logs go to stderr through `tracing`: breaker transitions and Redis outages and recoveries by
//! default, more with `RUST_LOG` (`RUST_LOG=weir=debug` adds a line per refused request, each with its structured fields).
//!
//! The construction lives in functions (`Config`, `Upstream`, `start`, `client_stack`) that the
//! end-to-end tests in `tests/gateway.rs` run too.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::routing::{get, post};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::util::Either;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use weir::bulkhead::{BulkheadHandle, BulkheadLayer};
use weir::circuit_breaker::{CircuitBreakerLayer, KeyedCircuitBreakerHandle, State};
use weir::core::inspect::Registry;
use weir::core::reconfigure::Reconfigure;
use weir::fallback::{Cause, FallbackHandle, FallbackLayer};
use weir::health::{
    BreakerCheck, BulkheadCheck, HealthRegistry, HealthService, LoadCheck, RedisCheck, Verbose,
};
use weir::idempotency::IdempotencyLayer;
use weir::load_shed::{LoadLevelLayer, LoadShedHandle, LoadShedLayer};
use weir::rate_limit::{Quota, RateLimitLayer, RateLimitSettings};
use weir::redis::{FailurePolicy, RedisStore};
use weir::retry::{ReplayBody, RetryLayer};
use weir::status::{Authz, StatusService};
use weir::timeout::TimeoutLayer;
use weir::{
    BoxError, core::Deadline, core::KeyExtractor, core::classify::HttpStatus,
    core::degrade::LoadLevel, core::key::ApiKey, core::key::ApiKeyToken, core::key::Authority,
    core::key::Cidr, core::key::KeyExtractorExt, core::key::OrKey, core::key::PeerIp,
    core::response::ErrorResponseLayer,
};

/// The gateway's API keys (the built-in clients use them); a request with any other key, or none,
/// is on the free tier and keyed by its address.
pub(crate) const FREE_KEY: &str = "free-key";
/// A key on the basic tier.
pub(crate) const BASIC_KEY: &str = "basic-key";
/// A key on the premium tier.
pub(crate) const PREMIUM_KEY: &str = "premium-key";

/// One tier's quotas: a per-second rate (its burst too) and a daily quota stacked on it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tier {
    /// Requests per second (and the burst).
    pub(crate) per_second: u32,
    /// Requests per day.
    pub(crate) per_day: u32,
}

/// Everything the gateway's stacks are built from.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The free tier: `free-key`, and requests without a known key (each address its own bucket).
    pub(crate) free: Tier,
    /// The basic tier (`basic-key`).
    pub(crate) basic: Tier,
    /// The premium tier (`premium-key`).
    pub(crate) premium: Tier,
    /// Requests in flight at the edge above which new ones are shed.
    pub(crate) max_in_flight: usize,
    /// The edge's timeout, and the most a client's `x-timeout-ms` may ask for.
    pub(crate) edge_timeout: Duration,
    /// The client stack's total deadline for one upstream call, retries included.
    pub(crate) total_timeout: Duration,
    /// The client stack's timeout for each attempt.
    pub(crate) attempt_timeout: Duration,
    /// Retry attempts in all, the first included.
    pub(crate) max_attempts: u32,
    /// How long the breaker stays open before it lets probes through.
    pub(crate) open_duration: Duration,
    /// Calls to the upstream at once (the client bulkhead).
    pub(crate) upstream_concurrency: usize,
    /// What the attempt timeout takes off the budget it writes into `x-timeout-ms`, for the
    /// network.
    pub(crate) allowance: Duration,
    /// Where the rate limits live: `None` in memory (the default), or a Redis URL
    /// (`WEIR_REDIS_URL`) so every gateway instance shares them.
    pub(crate) redis_url: Option<String>,
    /// How long a client has to send a request's headers, from the moment the connection is
    /// ready for them (its opening, or the end of the previous response). Past it the connection
    /// is closed: a client that trickles its headers (slowloris) or idles holds no connection.
    pub(crate) header_read_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub(crate) max_connections: usize,
    /// The largest request body the proxy forwards; a larger one is a 413.
    pub(crate) max_body_bytes: usize,
    /// The reverse proxies in front of the gateway, by address or network
    /// (`WEIR_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7`): `X-Forwarded-For` is read only when the
    /// peer is one of them, and walked from the right over them only. Empty (the default):
    /// clients connect directly and the header is ignored. Requests without a known API key are
    /// limited by the client address found this way.
    pub(crate) trusted_proxies: Vec<Cidr>,
    /// How many gateway instances share the Redis limits (`WEIR_INSTANCES`, 1 by default): while
    /// Redis is unreachable, each instance limits locally with `1 / instances` of every quota,
    /// so the fleet stays within the limit.
    pub(crate) instances: u32,
    /// How long the gateway keeps serving after Ctrl-C or SIGTERM with its readiness failing,
    /// so load balancers stop sending it traffic first (a little more than the readiness probe's
    /// period times its failure threshold: 5 s x 1 in the README's Kubernetes example).
    pub(crate) drain_grace: Duration,
    /// The address the gateway listens on (127.0.0.1; `--host 0.0.0.0` in a container).
    pub(crate) host: IpAddr,
    /// The bearer token of the status page's admin actions (`WEIR_STATUS_TOKEN`): `None` (the
    /// default) leaves them off, every action a 404.
    pub(crate) status_token: Option<String>,
}

impl Config {
    /// The demo's settings (the daily quotas are tiny so that a 20 s run reaches one).
    pub(crate) const fn demo() -> Self {
        Self {
            free: Tier {
                per_second: 5,
                per_day: 60,
            },
            basic: Tier {
                per_second: 10,
                per_day: 5_000,
            },
            premium: Tier {
                per_second: 100,
                per_day: 100_000,
            },
            max_in_flight: 16,
            edge_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_millis(900),
            attempt_timeout: Duration::from_millis(300),
            max_attempts: 3,
            open_duration: Duration::from_secs(1),
            upstream_concurrency: 32,
            allowance: Duration::from_millis(5),
            redis_url: None,
            header_read_timeout: Duration::from_secs(5),
            max_connections: 1_024,
            max_body_bytes: 1 << 20,
            trusted_proxies: Vec::new(),
            instances: 1,
            drain_grace: Duration::from_secs(6),
            host: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            status_token: None,
        }
    }
}

/// The gateway's configuration file (`--config`): each tier's quotas. Read at start and again
/// whenever it changes (see [`EdgeLimits`]).
///
/// ```toml
/// [free]
/// per_second = 5
/// per_day = 60
///
/// [basic]
/// per_second = 10
/// per_day = 5000
///
/// [premium]
/// per_second = 100
/// per_day = 100000
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayFile {
    pub(crate) free: TierFile,
    pub(crate) basic: TierFile,
    pub(crate) premium: TierFile,
}

/// One tier in a [`GatewayFile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TierFile {
    pub(crate) per_second: u32,
    pub(crate) per_day: u32,
}

impl GatewayFile {
    /// Parses the file's text (TOML).
    pub(crate) fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The tiers, each quota at least 1 (a zero is a `ConfigError` naming its field, as
    /// `tier.per_second`).
    pub(crate) fn tiers(&self) -> Result<[Tier; 3], weir::ConfigError> {
        let tier = |name: &'static str, t: TierFile| {
            for (field, n) in [("per_second", t.per_second), ("per_day", t.per_day)] {
                if n == 0 {
                    return Err(weir::ConfigError::zero(
                        "gateway",
                        format!("{name}.{field}"),
                        "must be at least 1",
                    ));
                }
            }
            Ok(Tier {
                per_second: t.per_second,
                per_day: t.per_day,
            })
        };
        Ok([
            tier("free", self.free)?,
            tier("basic", self.basic)?,
            tier("premium", self.premium)?,
        ])
    }
}

impl Config {
    /// These settings with the file's quotas.
    pub(crate) fn with_file(mut self, file: &GatewayFile) -> Result<Self, weir::ConfigError> {
        [self.free, self.basic, self.premium] = file.tiers()?;
        Ok(self)
    }
}

/// The edge's rate limit quotas of the three tiers (in the order the router adds them).
fn edge_settings([free, basic, premium]: [Tier; 3]) -> RateLimitSettings {
    let [second, day] = tier_quotas(free);
    RateLimitSettings::new()
        .quota(second)
        .quota(day)
        .tier("basic", tier_quotas(basic))
        .tier("premium", tier_quotas(premium))
}

/// One tier's quotas: a per-second rate (its burst too) and a daily quota stacked on it.
fn tier_quotas(tier: Tier) -> [Quota; 2] {
    [
        Quota::per_second(tier.per_second).named("per-second"),
        Quota::per_day(tier.per_day).named("daily"),
    ]
}

/// The edge rate limit's handle, in memory or on Redis: what the file watcher reloads.
#[derive(Clone)]
pub(crate) struct EdgeLimits(Arc<dyn Reconfigure<Settings = RateLimitSettings> + Send + Sync>);

impl std::fmt::Debug for EdgeLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EdgeLimits").finish_non_exhaustive()
    }
}

/// A changed file: its quotas validated, then applied to the running rate limit whole (the
/// tiers keep their names and their two quotas, so every client's state carries over).
impl weir::Reload for EdgeLimits {
    type Config = GatewayFile;

    fn reload(&self, file: &GatewayFile) -> Result<(), weir::ConfigError> {
        self.0.apply(edge_settings(file.tiers()?))
    }
}

/// What the observers saw, filled by closures on each layer.
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    /// Rate-limit refusals by tier (`default` is the free tier) and quota name.
    pub(crate) rate_limited: Mutex<BTreeMap<(String, String), u64>>,
    /// Requests shed at the edge.
    pub(crate) shed: AtomicU64,
    /// Timeouts by layer name (`edge`, `total`, `attempt`).
    pub(crate) timed_out: Mutex<BTreeMap<String, u64>>,
    /// Calls the breaker refused without calling the upstream.
    pub(crate) circuit_rejected: AtomicU64,
    /// Calls the client bulkhead refused.
    pub(crate) bulkhead_rejected: AtomicU64,
    /// Retries the client stack made.
    pub(crate) retries: AtomicU64,
    /// Calls on which retry gave up and returned the last failure.
    pub(crate) gave_up: AtomicU64,
    /// Breaker transitions: when (since start), from, to.
    pub(crate) transitions: Mutex<Vec<(Duration, State, State)>>,
}

impl Stats {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            rate_limited: Mutex::default(),
            shed: AtomicU64::new(0),
            timed_out: Mutex::default(),
            circuit_rejected: AtomicU64::new(0),
            bulkhead_rejected: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            transitions: Mutex::default(),
        })
    }

    /// The breaker's transitions so far.
    pub(crate) fn transitions(&self) -> Vec<(Duration, State, State)> {
        self.transitions.lock().expect("not poisoned").clone()
    }
}

/// The in-process upstream's controls and counters: the schedule (or a test) flips them.
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    /// Requests the upstream has received.
    pub(crate) hits: AtomicU64,
    /// Every request gets a 503 while this is set.
    pub(crate) outage: AtomicBool,
    /// Every request is slow (`spike_ms`) while this is set.
    pub(crate) spike: AtomicBool,
    /// How slow a request is during a spike, in milliseconds.
    pub(crate) spike_ms: AtomicU64,
    /// One request in this many gets a 503 (0: none).
    pub(crate) error_every: AtomicU64,
    /// The `x-timeout-ms` of the last request that carried one.
    pub(crate) last_timeout_ms: Mutex<Option<u64>>,
    /// The last request received: its method, headers and body.
    pub(crate) last_request: Mutex<Option<(Method, HeaderMap, Bytes)>>,
    /// Orders the order handler has taken (it runs behind the idempotency layer).
    pub(crate) orders: AtomicU64,
    /// This many of the next order answers are lost after the order was taken (and kept by
    /// the idempotency layer): the client gets a 503, as when the connection drops.
    pub(crate) lose_order_answers: AtomicU64,
    /// Requests to `/api/held` that have arrived (each counted in `hits` too) and wait for
    /// `release`: a test holds requests in flight with them, without a timer.
    pub(crate) held: watch::Sender<u64>,
    /// Once `true`, every request to `/api/held`, waiting or later, answers `200`.
    pub(crate) release: watch::Sender<bool>,
}

impl Upstream {
    /// An upstream that behaves until told otherwise.
    pub(crate) fn new() -> Arc<Self> {
        let upstream = Self::default();
        upstream.spike_ms.store(250, Ordering::Relaxed);
        Arc::new(upstream)
    }

    /// Requests received so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Starts or ends the outage.
    pub(crate) fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }
}

async fn upstream_handler(
    AxumState(upstream): AxumState<Arc<Upstream>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let n = upstream.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(ms) = headers
        .get("x-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        *upstream.last_timeout_ms.lock().expect("not poisoned") = Some(ms);
    }
    *upstream.last_request.lock().expect("not poisoned") = Some((method, headers, body));
    if upstream.outage.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream outage\n".into());
    }
    let every = upstream.error_every.load(Ordering::Relaxed);
    if every > 0 && n % every == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream hiccup\n".into());
    }
    let delay = if upstream.spike.load(Ordering::SeqCst) {
        upstream.spike_ms.load(Ordering::Relaxed)
    } else {
        n % 5 // 0 to 4 ms of ordinary work
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    (
        StatusCode::OK,
        format!("{{\"items\":[1,2,3],\"served\":{n}}}\n"),
    )
}

/// The longest a request to `/api/held` waits for `release`: anyone can reach the route
/// through the gateway, so a held request must not pin the demo upstream's memory forever
/// once the gateway's timeout has given up on it.
const HELD_AT_MOST: Duration = Duration::from_secs(60);

/// `GET /api/held`: counted, then held until the upstream's `release` is set (then `200`), or
/// for [`HELD_AT_MOST`] at most (then `503`).
async fn held_handler(AxumState(upstream): AxumState<Arc<Upstream>>) -> (StatusCode, String) {
    upstream.hits.fetch_add(1, Ordering::SeqCst);
    upstream.held.send_modify(|held| *held += 1);
    let mut release = upstream.release.subscribe();
    match tokio::time::timeout(HELD_AT_MOST, release.wait_for(|open| *open)).await {
        Ok(_) => (StatusCode::OK, "{\"held\":true}\n".into()),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "{\"held\":false}\n".into()),
    }
}

/// The upstream's order handler: takes an order (counted) and answers `201` with its number.
async fn take_order(
    AxumState(upstream): AxumState<Arc<Upstream>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    upstream.hits.fetch_add(1, Ordering::SeqCst);
    let len = body.len();
    *upstream.last_request.lock().expect("not poisoned") = Some((method, headers, body));
    let n = upstream.orders.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::CREATED,
        format!("{{\"order\":{n},\"bytes\":{len}}}\n"),
    )
}

/// Outside the order route's idempotency layer: loses the answer of an order already taken
/// (and kept) while `lose_order_answers` is above zero, as a dropped connection would.
async fn lose_order_answer(
    AxumState(upstream): AxumState<Arc<Upstream>>,
    response: Response<Body>,
) -> Response<Body> {
    let lose = upstream
        .lose_order_answers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if lose {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "order answer lost\n");
    }
    response
}

/// Serves the upstream on 127.0.0.1 (an OS-assigned port): `POST /api/orders` behind
/// weir-idempotency (a repeat of a key is answered from the store, the order taken once),
/// `GET /api/held` held until released (the tests' requests in flight), every other request by
/// the misbehaving handler.
pub(crate) async fn start_upstream(
    upstream: Arc<Upstream>,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let idempotency = IdempotencyLayer::builder()
        .name("orders")
        .required_on(["/api/orders"])
        .observer((weir::core::observer::Tracing, weir::core::observer::Metrics))
        // Answers axum's own `Body`: no box per response (the orders are JSON of known size).
        .handler_body()
        .build()
        .map_err(std::io::Error::other)?;
    let orders =
        post(take_order)
            .layer(idempotency)
            .layer(axum::middleware::map_response_with_state(
                Arc::clone(&upstream),
                lose_order_answer,
            ));
    let app = Router::new()
        .route("/api/orders", orders)
        .route("/api/held", get(held_handler))
        .fallback(upstream_handler)
        .with_state(upstream);
    Ok((
        addr,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    ))
}

/// The body the client stack sends upstream.
pub(crate) type UpstreamBody = Full<Bytes>;

/// Gives a `POST` or `PATCH` without an `Idempotency-Key` one, before retry: every attempt of
/// the call sends the same key, so weir-retry may retry it and the upstream runs it once.
#[derive(Clone, Debug)]
struct IdempotencyKeys {
    /// Random per process, so two gateways never send the same key.
    process: u64,
    next: Arc<AtomicU64>,
}

impl IdempotencyKeys {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        Self {
            process: std::hash::RandomState::new().build_hasher().finish(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    fn give<B>(&self, mut req: Request<B>) -> Request<B> {
        let unsafe_method = matches!(*req.method(), Method::POST | Method::PATCH);
        if unsafe_method
            && !req
                .headers()
                .contains_key(weir::core::wire::IDEMPOTENCY_KEY)
        {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let key = format!("gateway-{:016x}-{n}", self.process);
            if let Ok(value) = HeaderValue::try_from(key) {
                req.headers_mut()
                    .insert(weir::core::wire::IDEMPOTENCY_KEY, value);
            }
        }
        req
    }
}

/// The client stack, outermost first: total deadline → an `Idempotency-Key` for a `POST` or
/// `PATCH` without one → budgeted retry → circuit breaker per authority → bulkhead → attempt
/// timeout (writing `x-timeout-ms`) → hyper client.
pub(crate) fn client_stack(
    config: &Config,
    stats: &Arc<Stats>,
    registry: &Registry,
) -> Result<
    (
        impl Service<
            Request<UpstreamBody>,
            Response = Response<Incoming>,
            Error = BoxError,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
        KeyedCircuitBreakerHandle,
        BulkheadHandle,
    ),
    BoxError,
> {
    let connector = HttpConnector::new();
    let client: Client<_, ReplayBody<UpstreamBody>> =
        Client::builder(TokioExecutor::new()).build(connector);

    let seen = Arc::clone(stats);
    let total = TimeoutLayer::builder()
        .timeout(config.total_timeout)
        .name("total")
        .observer((
            move |event: &weir::timeout::Event<'_>| seen.timed_out(event),
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ))
        .build()?;
    let seen = Arc::clone(stats);
    let retry = RetryLayer::http()
        .name("upstream")
        .registry(registry)
        .max_attempts(config.max_attempts)
        .observer((
            move |event: &weir::retry::Event<'_>| match event {
                weir::retry::Event::Retry { .. } => {
                    seen.retries.fetch_add(1, Ordering::Relaxed);
                }
                weir::retry::Event::GaveUp { .. } => {
                    seen.gave_up.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ))
        .build()?;
    let seen = Arc::clone(stats);
    let (breaker, breaker_handle) = CircuitBreakerLayer::builder()
        .name("upstream")
        .classifier(HttpStatus::new())
        .count_window(20)
        .minimum_calls(10)
        .failure_rate(50.0)
        .open_duration(config.open_duration)
        .half_open_probes(2)
        .registry(registry)
        // Transitions are logged here (as the gateway's own lines) rather than through
        // `weir::core::observer::Tracing`; `weir::core::observer::Metrics` counts them and every refusal.
        .observer((
            move |event: &weir::circuit_breaker::Event<'_>| match *event {
                weir::circuit_breaker::Event::StateChange {
                    from, to, key, ..
                } => {
                    let at = seen.started.elapsed();
                    if matches!(to, State::Open | State::ForcedOpen) {
                        tracing::warn!(target: "gateway", upstream = ?key, %from, %to, "circuit breaker opened");
                    } else {
                        tracing::info!(target: "gateway", upstream = ?key, %from, %to, "circuit breaker state change");
                    }
                    seen.transitions
                        .lock()
                        .expect("not poisoned")
                        .push((at, from, to));
                }
                weir::circuit_breaker::Event::Rejected { .. } => {
                    seen.circuit_rejected.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
            weir::core::observer::Metrics,
        ))
        .keyed(Authority)
        .build_with_handle()?;
    let seen = Arc::clone(stats);
    let (bulkhead, bulkhead_handle) = BulkheadLayer::builder()
        .max_concurrent(config.upstream_concurrency)
        .name("upstream")
        .registry(registry)
        .observer((
            move |_: &weir::bulkhead::Event<'_>| {
                seen.bulkhead_rejected.fetch_add(1, Ordering::Relaxed);
            },
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ))
        .build_with_handle()?;
    let seen = Arc::clone(stats);
    let attempt = TimeoutLayer::builder()
        .timeout(config.attempt_timeout)
        .propagate(config.allowance)
        .name("attempt")
        .observer((
            move |event: &weir::timeout::Event<'_>| seen.timed_out(event),
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ))
        .build()?;

    let keys = IdempotencyKeys::new();
    let stack = ServiceBuilder::new()
        .layer(total)
        .map_request(move |req| keys.give(req))
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .layer(attempt)
        .service(client);
    Ok((stack, breaker_handle, bulkhead_handle))
}

impl Stats {
    fn timed_out(&self, event: &weir::timeout::Event<'_>) {
        if let weir::timeout::Event::TimedOut { layer, .. } = event {
            *self
                .timed_out
                .lock()
                .expect("not poisoned")
                .entry(layer.to_string())
                .or_default() += 1;
        }
    }
}

/// The gateway's parts a caller may want to look at.
#[derive(Debug)]
pub(crate) struct Gateway {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The upstream it forwards to.
    pub(crate) upstream: SocketAddr,
    /// What the observers saw.
    pub(crate) stats: Arc<Stats>,
    /// The breakers, one per upstream authority.
    pub(crate) breakers: KeyedCircuitBreakerHandle,
    /// The edge's load shedder.
    pub(crate) shedder: LoadShedHandle,
    /// The health registry behind `/livez`, `/readyz` and `/startupz`.
    pub(crate) health: HealthRegistry,
    /// The fallback of `/api/recommendations`: its answers by source.
    pub(crate) fallbacks: FallbackHandle,
    /// The edge rate limit's handle, to apply new quotas (`--config`'s watcher).
    pub(crate) limits: EdgeLimits,
    /// The layers the status page at `/weir/status` shows.
    pub(crate) registry: Registry,
    /// The server task.
    pub(crate) server: JoinHandle<std::io::Result<()>>,
}

/// The tier of a known API key; `None` for any other key.
fn known_tier(key: &[u8]) -> Option<&'static str> {
    match key {
        b"free-key" => Some("free"),
        b"basic-key" => Some("basic"),
        b"premium-key" => Some("premium"),
        _ => None,
    }
}

/// The API key of a request when it is one of the gateway's keys. An unknown key counts as no
/// key: were each invented key its own bucket, a client could send a new key with every request
/// and never be limited.
#[derive(Clone, Debug, Default)]
pub(crate) struct KnownKey(ApiKey);

impl<B> KeyExtractor<Request<B>> for KnownKey {
    type Key = ApiKeyToken;

    fn extract(&self, req: &Request<B>) -> Option<ApiKeyToken> {
        self.0
            .extract(req)
            .filter(|key| known_tier(key.as_bytes()).is_some())
    }

    fn detach(&self, key: ApiKeyToken) -> ApiKeyToken {
        KeyExtractor::<Request<B>>::detach(&self.0, key)
    }
}

/// Who the edge's rate limit counts a request against: a known API key, else the client's
/// address.
pub(crate) type ClientKey = OrKey<ApiKeyToken, IpAddr>;

/// The edge's tier of a client: `None` is the free (default) tier, which the `free-key`, unknown
/// keys and requests without a key get (these last two keyed by address).
fn tier_of(key: &ClientKey) -> Option<&'static str> {
    match key {
        OrKey::Left(key) => known_tier(key.as_bytes()).filter(|tier| *tier != "free"),
        OrKey::Right(_) => None,
    }
}

/// Builds the gateway's router: the edge stack (outermost first: error responses → keyed rate
/// limit with tiers → load shed → server timeout) in front of a proxy that calls `upstream`
/// through [`client_stack`], and beside it the health probes, fed by the same layers' handles.
pub(crate) fn router(
    config: &Config,
    upstream: SocketAddr,
    registry: &Registry,
) -> Result<
    (
        Router,
        Arc<Stats>,
        KeyedCircuitBreakerHandle,
        LoadShedHandle,
        HealthRegistry,
        FallbackHandle,
        EdgeLimits,
    ),
    BoxError,
> {
    let stats = Stats::new();
    let (client, breakers, bulkhead) = client_stack(config, &stats, registry)?;
    // Starting: not ready until `start` has bound the listener.
    let health = HealthRegistry::starting();

    let seen = Arc::clone(&stats);
    let quotas = tier_quotas;
    let [free_second, free_day] = quotas(config.free);
    let limits = RateLimitLayer::builder()
        .name("edge")
        .quota(free_second)
        .quota(free_day)
        .tier("basic", quotas(config.basic))
        .tier("premium", quotas(config.premium))
        // A known API key, else the client's address: the peer of the connection, or the address
        // the trusted proxies in front of the gateway recorded in `X-Forwarded-For`. Never one
        // bucket shared by every client without a key.
        .key(KnownKey::default().or(PeerIp::new().trust(config.trusted_proxies.iter().copied())))
        .tier_of(tier_of)
        .http()
        .observer((
            move |event: &weir::rate_limit::Event<'_>| {
                if let weir::rate_limit::Event::Rejected { tier, policy, .. } = event {
                    *seen
                        .rate_limited
                        .lock()
                        .expect("not poisoned")
                        .entry(((*tier).to_owned(), policy.to_string()))
                        .or_default() += 1;
                }
            },
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ));
    // In memory by default; in Redis, shared by every gateway instance, with `WEIR_REDIS_URL`.
    // If Redis cannot be reached, each instance limits on its own with its share of every quota
    // (`1 / instances`), so the fleet as a whole stays within the limit.
    let rate_limit = match &config.redis_url {
        Some(url) => {
            let store = RedisStore::builder(url.clone())
                .name("edge")
                .failure_policy(FailurePolicy::Local)
                .instances(config.instances)
                .build()?;
            // Degraded (still ready) while Redis is unreachable: each instance then limits
            // locally with its share of every quota, so the gateway keeps serving.
            health
                .register("redis", RedisCheck::new(store.handle()))
                .ready()
                .add()?;
            Either::Left(limits.build_with_store(store)?)
        }
        // In memory, the limiter is on the status page too (a Redis store's admin calls are
        // async, which a page's action cannot wait for, so that one is not registered).
        None => Either::Right(limits.registry(registry).build()?),
    };
    let edge_limits = match &rate_limit {
        Either::Left(layer) => EdgeLimits(Arc::new(layer.handle())),
        Either::Right(layer) => EdgeLimits(Arc::new(layer.handle())),
    };
    let seen = Arc::clone(&stats);
    let (shed, shedder) = LoadShedLayer::builder()
        .max_in_flight(config.max_in_flight)
        .name("edge")
        .registry(registry)
        .observer((
            move |event: &weir::load_shed::Event<'_>| {
                if matches!(event, weir::load_shed::Event::Shed { .. }) {
                    seen.shed.fetch_add(1, Ordering::Relaxed);
                }
            },
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ))
        .build_with_handle()?;
    let seen = Arc::clone(&stats);
    let edge_timeout = TimeoutLayer::server(config.edge_timeout)
        .name("edge")
        .observer((
            move |event: &weir::timeout::Event<'_>| seen.timed_out(event),
            (weir::core::observer::Tracing, weir::core::observer::Metrics),
        ))
        .build()?;

    let max_body = config.max_body_bytes;
    let proxy =
        service_fn(move |req: Request<Body>| proxy(client.clone(), upstream, max_body, req));
    // `/api/recommendations` degrades rather than fails (#20): when the upstream cannot answer
    // (an error, a circuit open, a timeout, a 5xx), or before it is even called while the edge
    // is near its limit (the load level, read by `LoadLevelLayer`), the answer is a static list
    // of bestsellers, marked `weir-fallback: value` (and `Degraded` for the layers outside). The
    // rate limit and the shedder sit outside the fallback: a client over its quota still gets
    // its 429, not a fallback answer.
    let (fallback, fallbacks) = FallbackLayer::builder()
        .name("recommendations")
        .registry(registry)
        .classify(HttpStatus::new())
        .value(|_: Cause<'_, Response<Body>, BoxError>| Some(bestsellers()))
        .at_load(LoadLevel::Critical)
        .http()
        .observer((weir::core::observer::Tracing, weir::core::observer::Metrics))
        .build_with_handle()?;
    let recommendations = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(rate_limit.clone())
        .layer(shed.clone())
        .layer(LoadLevelLayer::new(shedder.clone()))
        .layer(fallback)
        .layer(edge_timeout.clone())
        .service(proxy.clone());
    let edge = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(rate_limit)
        .layer(shed)
        .layer(edge_timeout)
        .service(proxy);

    // The probes read the layers' own state. The breaker check is a few atomic reads, so it is
    // not cached: readiness fails as soon as the upstream's breaker opens, and passes again
    // (degraded) as soon as its open time is over, so traffic can probe the upstream.
    health
        .register("upstream", BreakerCheck::critical_keyed(breakers.clone()))
        .ready()
        .cache_for(Duration::ZERO)
        .add()?;
    health
        .register("upstream-bulkhead", BulkheadCheck::new(bulkhead))
        .ready()
        .add()?;
    health
        .register("edge-load", LoadCheck::new(shedder.clone()))
        .ready()
        .add()?;
    let probes = HealthService::new(health.clone()).verbose(Verbose::OnQuery);
    let status = status_page(registry, config.status_token.clone());

    // The probes sit beside the edge stack, not behind it: no rate limit or load shedder ever
    // refuses the probes that report on them.
    let router = Router::new()
        .route("/", get(|| async { "weir gateway: try GET /api/items\n" }))
        .route_service("/api/recommendations", recommendations)
        .route_service("/api/{*path}", edge)
        .route_service("/livez", probes.clone())
        .route_service("/readyz", probes.clone())
        .route_service("/startupz", probes)
        // Prometheus text (#19), beside the edge stack as well.
        .route("/metrics", get(scrape(registry.clone())))
        // The status page (`/weir/status`, `/weir/status.json`, `/weir/status/events`), beside
        // the edge stack too: it must answer while the edge refuses everything else.
        .nest_service("/weir", status);
    Ok((
        router,
        stats,
        breakers,
        shedder,
        health,
        fallbacks,
        edge_limits,
    ))
}

/// The process's Prometheus recorder, installed as the `metrics` facade's global recorder the
/// first time (metrics-exporter-prometheus, with no listener of its own: `/metrics` renders it).
/// Every layer's `weir::core::observer::Metrics` observer counts into it.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if something else installed a recorder first; then this one renders
            // nothing but the gateway still serves.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(target: "gateway", "a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

/// The handler of `GET /metrics`: the registry's gauges and totals are read at the scrape
/// (`weir::metrics::record`, a few atomic loads per layer, nothing on the request path), then
/// everything the recorder holds is rendered as Prometheus text: the counters and histograms
/// the layers' `weir::core::observer::Metrics` observers wrote, and those gauges.
fn scrape(
    registry: Registry,
) -> impl Fn() -> std::future::Ready<([(header::HeaderName, &'static str); 1], String)>
+ Clone
+ Send
+ 'static {
    let handle = prometheus();
    move || {
        weir::metrics::record(&registry);
        handle.run_upkeep();
        std::future::ready((
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        ))
    }
}

/// The status page of `registry`; its admin actions (reset a breaker's keys, a client's limit) only
/// with a token, for requests that carry `Authorization: Bearer <token>`.
fn status_page(registry: &Registry, token: Option<String>) -> StatusService {
    let status = StatusService::new(registry.clone());
    let Some(token) = token else {
        return status;
    };
    let expected = format!("Bearer {token}");
    status.authorize(move |parts: &http::request::Parts| {
        match parts.headers.get(header::AUTHORIZATION) {
            None => Authz::Unauthorized,
            Some(given) if given.as_bytes() == expected.as_bytes() => Authz::Allow,
            Some(_) => Authz::Forbidden,
        }
    })
}

/// The degraded answer of `/api/recommendations`: the same list for everyone.
fn bestsellers() -> Response<Body> {
    let mut response = Response::new(Body::from("{\"items\":[\"bestsellers\"]}\n"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Headers that describe one connection, not the request (RFC 9110, section 7.6.1), with the
/// old `proxy-connection`: a proxy never forwards them.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The headers to send upstream: the client's, without the hop-by-hop ones (those listed above
/// and those the client's `Connection` names), without `Host` and `Content-Length` (the client
/// stack writes its own), and with the client's address appended to `X-Forwarded-For`.
pub(crate) fn forwarded_headers(incoming: &HeaderMap, peer: Option<SocketAddr>) -> HeaderMap {
    let mut headers = incoming.clone();
    for listed in incoming.get_all(header::CONNECTION) {
        for name in listed.as_bytes().split(|&b| b == b',') {
            if let Ok(name) = HeaderName::from_bytes(name.trim_ascii()) {
                headers.remove(name);
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    // One more line is the same list as one more comma-separated entry.
    if let Some(Ok(client)) =
        peer.map(|peer| HeaderValue::try_from(peer.ip().to_canonical().to_string()))
    {
        headers.append(HeaderName::from_static("x-forwarded-for"), client);
    }
    headers
}

/// Forwards a request upstream through the client stack: its method, path, headers (see
/// [`forwarded_headers`]), body (read whole, so that a retry can send it again; at most
/// `max_body` bytes, else a 413) and deadline.
async fn proxy<C>(
    client: C,
    upstream: SocketAddr,
    max_body: usize,
    req: Request<Body>,
) -> Result<Response<Body>, BoxError>
where
    C: Service<Request<UpstreamBody>, Response = Response<Incoming>, Error = BoxError>,
{
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ));
        }
        // The client went away or sent a malformed body.
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "unreadable request body\n")),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut outgoing = Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{upstream}{path}"))
        .body(Full::new(body))?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    *outgoing.headers_mut() = forwarded_headers(&parts.headers, peer);
    if let Some(deadline) = Deadline::get(&parts.extensions) {
        deadline.set_earliest(outgoing.extensions_mut());
    }
    let response = client.oneshot(outgoing).await?;
    Ok(response.map(Body::new))
}

/// A short plain-text answer of the gateway's own.
fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

/// Serves `router` on `listener` over HTTP/1.1 the way an edge must, where `axum::serve` does
/// neither of these:
///
/// - each connection has `header_read_timeout` to send a request's headers, from its opening and
///   again after each response, so a client that trickles its headers (slowloris) or idles loses
///   the connection;
/// - at most `max_connections` are open at once; one more is closed as soon as it is accepted,
///   so a flood of connections costs the gateway a bounded number of sockets and tasks.
///
/// Each request carries the peer address as axum's `ConnectInfo<SocketAddr>`, which the edge's
/// key extractor (`PeerIp`) reads.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    max_connections: usize,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait a
                // little rather than spin, and go on.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(%peer, max_connections, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Starts the gateway on `config.host:port` (127.0.0.1 unless set; port 0: any free port) in
/// front of `upstream`.
pub(crate) async fn start(
    config: &Config,
    port: u16,
    upstream: SocketAddr,
) -> Result<Gateway, BoxError> {
    let registry = Registry::new();
    let (router, stats, breakers, shedder, health, fallbacks, limits) =
        router(config, upstream, &registry)?;
    let listener = TcpListener::bind((config.host, port)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(
        listener,
        router,
        config.header_read_timeout,
        config.max_connections,
    ));
    // Bound and accepting: ready (if the checks agree).
    health.lifecycle().serving();
    Ok(Gateway {
        addr,
        upstream,
        stats,
        breakers,
        shedder,
        health,
        fallbacks,
        limits,
        registry,
        server,
    })
}

/// The log filter: `RUST_LOG` when it is set and valid (`target=level` pairs and a default
/// level, as `weir=info,gateway=debug`), else `info` for the gateway (breaker transitions) and
/// weir-redis (Redis outages and recoveries), and `warn` for everything else. `weir=debug` adds
/// every refusal the layers report through `weir::core::observer::Tracing` (a line per refused request).
pub(crate) fn log_filter(rust_log: Option<&str>) -> Targets {
    let default = || {
        Targets::new()
            .with_default(LevelFilter::WARN)
            .with_target("gateway", LevelFilter::INFO)
            .with_target("weir_redis", LevelFilter::INFO)
    };
    match rust_log.map(str::parse::<Targets>) {
        Some(Ok(targets)) => targets,
        Some(Err(err)) => {
            eprintln!("RUST_LOG ignored ({err}); logging weir at info");
            default()
        }
        None => default(),
    }
}

/// Logs to `writer` (stderr in `main`) through `tracing`, filtered by [`log_filter`]. The
/// gateway's layers report to it (`weir::core::observer::Tracing`, the breaker's observer, weir-redis's own
/// logs), so Redis outages and recoveries and breaker transitions show on the console as they
/// happen.
pub(crate) fn log_subscriber<W>(
    rust_log: Option<&str>,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(writer))
        .with(log_filter(rust_log))
}

// ---------------------------------------------------------------------------------------------
// The self-drive: built-in clients, progress, the report.
// ---------------------------------------------------------------------------------------------

/// One built-in client: who it is, its key, how many requests a second it sends, and the
/// deadline it asks for (`x-timeout-ms`), if any.
struct Driver {
    name: &'static str,
    path: &'static str,
    key: &'static str,
    per_second: u32,
    timeout_ms: Option<&'static str>,
}

const DRIVERS: &[Driver] = &[
    Driver {
        path: "/api/items",
        name: "free",
        key: FREE_KEY,
        per_second: 8,
        timeout_ms: None,
    },
    Driver {
        path: "/api/items",
        name: "unknown key (free, by address)",
        key: "who-knows",
        per_second: 4,
        timeout_ms: None,
    },
    Driver {
        path: "/api/items",
        name: "basic, 200 ms deadline",
        key: BASIC_KEY,
        per_second: 15,
        timeout_ms: Some("200"),
    },
    Driver {
        path: "/api/items",
        name: "premium #1",
        key: PREMIUM_KEY,
        per_second: 30,
        timeout_ms: None,
    },
    Driver {
        path: "/api/items",
        name: "premium #2",
        key: PREMIUM_KEY,
        per_second: 30,
        timeout_ms: None,
    },
    Driver {
        path: "/api/recommendations",
        name: "recommendations (degrades)",
        key: PREMIUM_KEY,
        per_second: 10,
        timeout_ms: None,
    },
];

/// One answer the built-in clients got.
#[derive(Clone, Copy, Debug)]
struct Record {
    driver: usize,
    status: u16,
    latency: Duration,
}

#[derive(Default)]
struct Progress {
    records: Mutex<Vec<Record>>,
}

impl Progress {
    fn counts(&self) -> (usize, BTreeMap<u16, u64>) {
        let records = self.records.lock().expect("not poisoned");
        let mut statuses = BTreeMap::new();
        for record in records.iter() {
            *statuses.entry(record.status).or_default() += 1;
        }
        (records.len(), statuses)
    }
}

/// The hyper client the built-in traffic uses (status 0: no answer).
type TrafficClient = Client<HttpConnector, http_body_util::Empty<Bytes>>;

async fn one_request(
    client: TrafficClient,
    addr: SocketAddr,
    path: &'static str,
    key: &'static str,
    timeout_ms: Option<&'static str>,
) -> u16 {
    let mut req = Request::get(format!("http://{addr}{path}")).header("x-api-key", key);
    if let Some(timeout_ms) = timeout_ms {
        req = req.header("x-timeout-ms", timeout_ms);
    }
    let Ok(req) = req.body(http_body_util::Empty::new()) else {
        return 0;
    };
    match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            // Read the body so the connection goes back to the pool.
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            status
        }
        _ => 0,
    }
}

/// Sends the built-in traffic for `duration`, flipping the upstream's schedule on the way, and
/// prints progress once a second.
async fn drive(addr: SocketAddr, upstream: &Arc<Upstream>, duration: Duration) -> Vec<Record> {
    let progress = Arc::new(Progress::default());
    let client: TrafficClient = Client::builder(TokioExecutor::new()).build_http();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (index, driver) in DRIVERS.iter().enumerate() {
        let progress = Arc::clone(&progress);
        let client = client.clone();
        let period = Duration::from_secs(1) / driver.per_second;
        let key = driver.key;
        let path = driver.path;
        let timeout_ms = driver.timeout_ms;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut inflight = Vec::new();
            while start.elapsed() < duration {
                tick.tick().await;
                let progress = Arc::clone(&progress);
                let client = client.clone();
                inflight.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let status = one_request(client, addr, path, key, timeout_ms).await;
                    progress.records.lock().expect("not poisoned").push(Record {
                        driver: index,
                        status,
                        latency: sent.elapsed(),
                    });
                }));
            }
            for task in inflight {
                let _ = task.await;
            }
        }));
    }

    // The upstream's schedule, as fractions of the run: a latency spike, then an outage.
    let at = |fraction: f64| start + duration.mul_f64(fraction);
    let schedule = [
        (at(0.20), "latency spike starts", Change::Spike(true)),
        (at(0.30), "latency spike ends", Change::Spike(false)),
        (at(0.50), "outage starts", Change::Outage(true)),
        (at(0.65), "outage ends", Change::Outage(false)),
    ];
    let mut schedule = schedule.into_iter().peekable();
    let mut second =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut events: Vec<&str> = Vec::new();
    while start.elapsed() < duration {
        let next_change = schedule.peek().map(|(when, ..)| *when);
        tokio::select! {
            () = async { tokio::time::sleep_until(next_change.unwrap_or(start + duration)).await },
                if next_change.is_some() =>
            {
                if let Some((_, what, change)) = schedule.next() {
                    change.apply(upstream);
                    events.push(what);
                }
            }
            _ = second.tick() => {
                let (total, statuses) = progress.counts();
                let statuses: Vec<String> =
                    statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
                let note = if events.is_empty() {
                    String::new()
                } else {
                    format!("  <- upstream {}", events.join(", "))
                };
                events.clear();
                println!(
                    "[{:>4.1}s] {total:>5} requests  {}{note}",
                    start.elapsed().as_secs_f64(),
                    statuses.join("  ")
                );
            }
        }
    }
    upstream.set_outage(false);
    upstream.spike.store(false, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    progress.records.lock().expect("not poisoned").clone()
}

enum Change {
    Spike(bool),
    Outage(bool),
}

impl Change {
    fn apply(&self, upstream: &Upstream) {
        match *self {
            Self::Spike(on) => upstream.spike.store(on, Ordering::SeqCst),
            Self::Outage(on) => upstream.set_outage(on),
        }
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn report(records: &[Record], gateway: &Gateway, upstream: &Upstream, config: &Config) {
    let stats = &gateway.stats;
    println!("\n== What happened ==");
    println!("{:<54} {:>8}", "requests sent", records.len());
    println!("{:<54} {:>8}", "upstream saw (attempts)", upstream.hits());

    println!("\nStatuses, by client:");
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for record in records {
        *statuses.entry(record.status).or_default() += 1;
    }
    let columns: Vec<u16> = statuses.keys().copied().collect();
    let mut header = format!("  {:<44}", "client (x-api-key)");
    for status in &columns {
        let label = if *status == 0 {
            "none".to_owned()
        } else {
            status.to_string()
        };
        header.push_str(&format!(" {label:>6}"));
    }
    println!("{header}");
    for (index, driver) in DRIVERS.iter().enumerate() {
        let mut line = format!("  {:<44}", format!("{} ({})", driver.name, driver.key));
        for status in &columns {
            let n = records
                .iter()
                .filter(|r| r.driver == index && r.status == *status)
                .count();
            line.push_str(&format!(" {n:>6}"));
        }
        println!("{line}");
    }
    let mut line = format!("  {:<44}", "all");
    for status in &columns {
        line.push_str(&format!(" {:>6}", statuses[status]));
    }
    println!("{line}");

    println!("\nRejections by reason (from the layers' observers):");
    let rate_limited = stats.rate_limited.lock().expect("not poisoned").clone();
    for ((tier, policy), n) in &rate_limited {
        let tier = if tier == "default" {
            "free"
        } else {
            tier.as_str()
        };
        let quota = match (tier, policy.as_str()) {
            ("free", "daily") => config.free.per_day,
            ("free", _) => config.free.per_second,
            ("basic", "daily") => config.basic.per_day,
            ("basic", _) => config.basic.per_second,
            (_, "daily") => config.premium.per_day,
            _ => config.premium.per_second,
        };
        let what = format!("429 rate limited: {tier} tier, {policy} quota ({quota})");
        println!("  {what:<52} {n:>8}");
    }
    if rate_limited.is_empty() {
        println!("  {:<52} {:>8}", "429 rate limited", 0);
    }
    let row = |what: &str, n: u64| println!("  {what:<52} {n:>8}");
    row(
        "503 shed at the edge (load shed)",
        stats.shed.load(Ordering::Relaxed),
    );
    row(
        "503 circuit open (upstream not called)",
        stats.circuit_rejected.load(Ordering::Relaxed),
    );
    row(
        "    client bulkhead full",
        stats.bulkhead_rejected.load(Ordering::Relaxed),
    );
    let timed_out = stats.timed_out.lock().expect("not poisoned").clone();
    for layer in ["edge", "total", "attempt"] {
        let what = match layer {
            "edge" => "timeouts at the edge",
            "total" => "timeouts of the total deadline",
            _ => "timeouts of one attempt",
        };
        row(what, timed_out.get(layer).copied().unwrap_or(0));
    }

    println!("\nRetries:");
    row("retries made", stats.retries.load(Ordering::Relaxed));
    row(
        "calls given up (last failure returned)",
        stats.gave_up.load(Ordering::Relaxed),
    );

    println!("\nBreaker transitions (one breaker per upstream authority):");
    let transitions = stats.transitions();
    if transitions.is_empty() {
        println!("  none");
    }
    for (at, from, to) in transitions {
        println!("  {:>6.2}s  {from} -> {to}", at.as_secs_f64());
    }
    gateway.breakers.for_each(|key, snapshot| {
        println!(
            "  breaker {key:?}: now {}, times opened: {}, calls refused: {}",
            snapshot.state(),
            snapshot.opened(),
            snapshot.rejected()
        );
    });
    let shed = gateway.shedder.stats();
    println!(
        "  edge load shedder: limit {} in flight, {} shed, {} admitted and answered",
        shed.limit, shed.shed, shed.succeeded
    );
    let fallbacks = gateway.fallbacks.stats();
    println!(
        "  /api/recommendations fallback answers by source: value (bestsellers) {}, service {}, \
         last good {}; {} sent to it before the upstream (load level critical)",
        fallbacks.value, fallbacks.service, fallbacks.last_good, fallbacks.switched
    );

    println!("\nLatency seen by the clients:");
    let mut all: Vec<Duration> = records.iter().map(|r| r.latency).collect();
    all.sort_unstable();
    let mut ok: Vec<Duration> = records
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.latency)
        .collect();
    ok.sort_unstable();
    println!("  {:<18} {:>10} {:>10} {:>10}", "", "p50", "p90", "p99");
    for (what, sorted) in [("all answers", &all), ("200 only", &ok)] {
        println!(
            "  {what:<18} {:>10} {:>10} {:>10}",
            ms(percentile(sorted, 50)),
            ms(percentile(sorted, 90)),
            ms(percentile(sorted, 99)),
        );
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    host: IpAddr,
    port: u16,
    duration: Duration,
    drive: bool,
    serve: bool,
    config: Option<std::path::PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        host: IpAddr::from([127, 0, 0, 1]),
        port: 0,
        duration: Duration::from_secs(20),
        drive: true,
        serve: true,
        config: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--host" => {
                let value = iter.next().ok_or("--host needs a value")?;
                args.host = value.parse().map_err(|_| format!("bad address: {value}"))?;
            }
            "--port" => {
                let value = iter.next().ok_or("--port needs a value")?;
                args.port = value.parse().map_err(|_| format!("bad port: {value}"))?;
            }
            "--duration" => {
                let value = iter.next().ok_or("--duration needs a value")?;
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("bad duration: {value}"))?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(format!("bad duration: {value}"));
                }
                args.duration = Duration::from_secs_f64(secs);
            }
            "--config" => {
                let value = iter.next().ok_or("--config needs a file")?;
                args.config = Some(value.into());
            }
            "--no-drive" => args.drive = false,
            "--no-serve" | "--exit" => args.serve = false,
            "-h" | "--help" => {
                return Err(
                    "usage: gateway [--host ADDR] [--port N] [--duration SECS] [--config FILE] [--no-drive] [--no-serve|--exit]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(args)
}

/// Ctrl-C, or SIGTERM (what Kubernetes sends a pod it stops).
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    tracing::subscriber::set_global_default(log_subscriber(rust_log.as_deref(), std::io::stderr))?;
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mut config = Config::demo();
    if let Some(path) = &args.config {
        let file = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                GatewayFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
            })
            .and_then(|file| {
                config
                    .clone()
                    .with_file(&file)
                    .map_err(|e| format!("{}: {e}", path.display()))
            });
        match file {
            Ok(with_file) => config = with_file,
            Err(message) => {
                eprintln!("{message}");
                std::process::exit(2);
            }
        }
    }
    config.host = args.host;
    config.redis_url = std::env::var("WEIR_REDIS_URL").ok();
    if let Ok(proxies) = std::env::var("WEIR_TRUSTED_PROXIES") {
        for proxy in proxies.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match proxy.parse::<Cidr>() {
                Ok(network) => config.trusted_proxies.push(network),
                Err(err) => {
                    eprintln!("WEIR_TRUSTED_PROXIES: {proxy}: {err}");
                    std::process::exit(2);
                }
            }
        }
    }
    config.status_token = std::env::var("WEIR_STATUS_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    if let Ok(instances) = std::env::var("WEIR_INSTANCES") {
        match instances.trim().parse::<u32>() {
            Ok(n) if n >= 1 => config.instances = n,
            _ => {
                eprintln!("WEIR_INSTANCES: {instances}: a whole number of at least 1");
                std::process::exit(2);
            }
        }
    }
    match &config.redis_url {
        Some(url) => println!(
            "rate limits in Redis at {url} (WEIR_REDIS_URL), shared by {} instance(s) \
             (WEIR_INSTANCES); while Redis is down each limits locally with 1/{} of every quota",
            config.instances, config.instances
        ),
        None => println!(
            "rate limits in memory (set WEIR_REDIS_URL=redis://... to share them through Redis)"
        ),
    }
    let upstream = Upstream::new();
    upstream.error_every.store(8, Ordering::Relaxed);
    let (upstream_addr, _upstream_server) = start_upstream(Arc::clone(&upstream)).await?;
    let gateway = start(&config, args.port, upstream_addr).await?;
    let addr = gateway.addr;
    // With a file, the quotas follow it: polled every 2 s, and at once on SIGHUP.
    let _watcher = args.config.as_ref().map(|path| {
        let watcher = Arc::new(weir::watch(
            path.clone(),
            gateway.limits.clone(),
            Duration::from_secs(2),
            GatewayFile::parse,
        ));
        println!(
            "quotas from {} (reloaded when it changes: polled every 2 s, or at once on SIGHUP)",
            path.display()
        );
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let on_hup = Arc::clone(&watcher);
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    on_hup.check_now();
                }
            });
        }
        watcher
    });

    println!(
        "weir gateway on http://{addr}/ in front of an upstream on http://{}/",
        gateway.upstream
    );
    println!("Prometheus metrics on http://{addr}/metrics");
    println!(
        "status page on http://{addr}/weir/status ({} layers; admin actions {})",
        gateway.registry.len(),
        if config.status_token.is_some() {
            "on, with WEIR_STATUS_TOKEN as a bearer token"
        } else {
            "off; set WEIR_STATUS_TOKEN to turn them on"
        }
    );
    println!(
        "listener: {:?} to send a request's headers, at most {} connections open, bodies up to {} bytes",
        config.header_read_timeout, config.max_connections, config.max_body_bytes,
    );
    println!(
        "edge:   ErrorResponseLayer -> rate limit by x-api-key, else by client address (free {}/s + {}/day, \
         basic {}/s + {}/day, premium {}/s + {}/day) -> load shed above {} in flight -> timeout {:?}",
        config.free.per_second,
        config.free.per_day,
        config.basic.per_second,
        config.basic.per_day,
        config.premium.per_second,
        config.premium.per_day,
        config.max_in_flight,
        config.edge_timeout,
    );
    println!(
        "client: deadline {:?} -> retry (HTTP, {} attempts, budgeted) -> breaker per authority (open {:?}) \
         -> bulkhead {} -> attempt timeout {:?} (writes x-timeout-ms) -> hyper",
        config.total_timeout,
        config.max_attempts,
        config.open_duration,
        config.upstream_concurrency,
        config.attempt_timeout,
    );
    println!(
        "upstream: 1 in 8 requests is a 503; a 250 ms latency spike at 20-30 % of the run, an outage at 50-65 %\n"
    );

    if args.drive {
        let clients: Vec<String> = DRIVERS
            .iter()
            .map(|d| format!("{} {}/s", d.name, d.per_second))
            .collect();
        println!(
            "Driving {:?} of traffic: {}",
            args.duration,
            clients.join(", ")
        );
        let records = drive(addr, &upstream, args.duration).await;
        report(&records, &gateway, &upstream, &config);
    }

    if args.serve {
        println!("\nServing on http://{addr}/ until Ctrl-C. Try:");
        println!("  curl -i -H 'x-api-key: premium-key' http://{addr}/api/items");
        println!(
            "  curl -i -H 'x-api-key: free-key' http://{addr}/api/items   # again and again: 429"
        );
        println!(
            "  curl -i -H 'x-api-key: basic-key' -H 'x-timeout-ms: 50' http://{addr}/api/items"
        );
        println!(
            "  curl -i -H 'x-api-key: premium-key' http://{addr}/api/recommendations   # weir-fallback: value when the upstream is down"
        );
        println!(
            "  curl -i -X POST -H 'x-api-key: premium-key' -H 'idempotency-key: order-1' -d '{{\"item\":\"tea\"}}' http://{addr}/api/orders   # twice: Idempotent-Replayed: true"
        );
        println!("  curl -i http://{addr}/readyz?verbose   # readiness, every check listed");
        println!("  curl -i http://{addr}/livez");
        println!(
            "  open http://{addr}/weir/status   # the live status page (JSON: /weir/status.json)"
        );
        println!("  curl http://{addr}/metrics   # Prometheus text: every weir_* family");
        shutdown_signal().await?;
        println!(
            "draining: /readyz fails now; serving {:?} more before stopping",
            config.drain_grace
        );
        gateway.health.lifecycle().drain(config.drain_grace).await;
    }
    gateway.server.abort();
    Ok(())
}
