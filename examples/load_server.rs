//! The server `scripts/load.sh` loads (#18, "a real server"): an axum hello-world on 127.0.0.1
//! in one of three modes, so wrk can compare what each stack costs a real HTTP/1.1 server.
//!
//! ```sh
//! cargo run --release --example load_server -- bare             # the handler alone
//! cargo run --release --example load_server -- weir             # behind weir::ServerStack + a keyed rate limit
//! cargo run --release --example load_server -- tower 127.0.0.1:8080  # behind tower's equivalent layers
//! ```
//!
//! - **bare**: `GET /` answers `Hello, World!`, nothing around it.
//! - **weir**: the same route behind [`weir::ServerStack`] (error responses, a rate limit, load
//!   shedding at 1 000 in flight, a 30 s server timeout) with a rate limit keyed by the
//!   `x-client` header ([`KEY_HEADER`]; `scripts/load.sh`'s wrk script sends it) at
//!   `u32::MAX` requests per second per key: never refused in a run, but every request takes
//!   the keyed path (extract the header, find the key's state, update it).
//! - **tower**: the same route behind tower's layers as `benches/stacks.rs`'s `tower-server`:
//!   `LoadShed`, `ConcurrencyLimit` (1 000), `Timeout` (30 s) and `RateLimit` (`u64::MAX` a
//!   second: never throttles), with what axum needs to mount them: `HandleErrorLayer` outermost
//!   (tower's errors become 503 / 504 / 500, as weir's `ErrorResponseLayer` does) and a
//!   `Buffer` (1 024) above `RateLimit`, which is not `Clone` (axum's documented way; the
//!   `tower-server-buffered` bench row).
//!
//! The address defaults to `127.0.0.1:0` (a free port); the first line on stdout is
//! `listening on ADDR`. It serves until killed.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use http::{HeaderName, StatusCode};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use weir::core::key::Header;
use weir::rate_limit::{Quota, RateLimitLayer};
use weir::{BoxError, ServerStack};

/// The header the weir mode's rate limit is keyed by; every load request sends it.
pub(crate) const KEY_HEADER: &str = "x-client";

/// The weir mode's quota per key in a load run: `u32::MAX` a second, never reached.
pub(crate) const UNREACHED_QUOTA: Quota = Quota::per_second(u32::MAX);

/// The body of every answer.
pub(crate) const HELLO: &str = "Hello, World!";

/// What stands in front of the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing: the handler alone.
    Bare,
    /// `weir::ServerStack` with a keyed rate limit.
    Weir,
    /// tower's `LoadShed`, `ConcurrencyLimit`, `Timeout` and `RateLimit` (behind a `Buffer`).
    Tower,
}

impl Mode {
    /// Every mode, in the order `scripts/load.sh` runs them.
    #[allow(dead_code)] // the smoke test's; `main` parses one
    pub(crate) const ALL: [Self; 3] = [Self::Bare, Self::Weir, Self::Tower];

    /// The mode named `name` (`bare`, `weir`, `tower`).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "bare" => Some(Self::Bare),
            "weir" => Some(Self::Weir),
            "tower" => Some(Self::Tower),
            _ => None,
        }
    }
}

/// The hello-world router in `mode`; in the weir mode each key has `quota` ([`UNREACHED_QUOTA`]
/// in a load run). Call it inside a tokio runtime: the tower mode's
/// `Buffer` spawns its worker when the router is built.
pub(crate) fn app(mode: Mode, quota: Quota) -> Result<Router, BoxError> {
    let router = Router::new().route("/", get(|| async { HELLO }));
    Ok(match mode {
        Mode::Bare => router,
        Mode::Weir => {
            let limit = RateLimitLayer::builder()
                .quota(quota)
                .key(Header::new(HeaderName::from_static(KEY_HEADER)))
                .http()
                .build()?;
            router.layer(ServerStack::builder().rate_limit(limit).build()?)
        }
        Mode::Tower => router.layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|err: BoxError| async move {
                    tower_error(&err)
                }))
                .load_shed()
                .concurrency_limit(1_000)
                .timeout(Duration::from_secs(30))
                .buffer(1_024)
                .rate_limit(u64::MAX, Duration::from_secs(1)),
        ),
    })
}

/// The response for an error of tower's layers, as weir's `ErrorResponseLayer` maps its own.
fn tower_error(err: &BoxError) -> StatusCode {
    if err.is::<tower::load_shed::error::Overloaded>() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if err.is::<tower::timeout::error::Elapsed>() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Binds `addr` (TCP_NODELAY on every connection, as a production server sets it) and serves
/// the router in `mode` on it, in a task; returns the bound address.
pub(crate) async fn serve(
    mode: Mode,
    quota: Quota,
    addr: SocketAddr,
) -> Result<SocketAddr, BoxError> {
    use axum::serve::ListenerExt;

    let app = app(mode, quota)?;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(bound)
}

#[allow(dead_code)] // the smoke test includes this file and has its own entry point
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: load_server bare|weir|tower [ADDR]";
    let mode = args.next().as_deref().and_then(Mode::parse).ok_or(usage)?;
    let addr: SocketAddr = match args.next() {
        Some(addr) => addr.parse()?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let bound = serve(mode, UNREACHED_QUOTA, addr).await?;
    println!("listening on {bound}");
    std::future::pending::<()>().await;
    Ok(())
}
