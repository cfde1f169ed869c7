//! weir's quick start: a small stack on 127.0.0.1 that shows what each piece of the shared
//! vocabulary does, end to end over real HTTP.
//!
//! ```sh
//! cargo run --release --example quickstart            # drive it, print a table, exit
//! cargo run --release --example quickstart -- --serve # then keep serving; try it with curl
//! ```
//!
//! The server is an axum router behind `ErrorResponseLayer`. Its handler is a tiny stand-in for
//! the pattern layers still to come: it keys each request by client IP through one trusted proxy
//! (`PeerIp`), reads the request's deadline from `x-timeout-ms` or `grpc-timeout` (`Deadline`),
//! allows three requests per client (refusing the rest with `Error::rate_limited` and the
//! `RateLimit` fields) and refuses work it cannot finish in the remaining budget
//! (`Error::timeout`). A hyper client sends scripted requests and classifies every answer with
//! `HttpStatus` / `GrpcStatus`, the way a retrying client would.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use http::Response;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, service_fn};
use weir::{
    BoxError, Error, core::Classify, core::Deadline, core::KeyExtractor, core::Outcome,
    core::classify::GrpcStatus, core::classify::HttpStatus, core::key::Cidr, core::key::PeerIp,
    core::response::ErrorResponseLayer, core::wire::RateLimitInfo, core::wire::ServerHint,
};

/// Requests each client may make before it is refused.
const QUOTA: u64 = 3;
/// The longest deadline a client may ask for.
const MAX_DEADLINE: Duration = Duration::from_secs(5);
/// What the handler needs to do its work.
const WORK: Duration = Duration::from_millis(20);

#[derive(Clone, Default)]
struct Counts(Arc<Mutex<HashMap<IpAddr, u64>>>);

async fn handler(
    counts: Counts,
    client_ip: Arc<PeerIp>,
    req: Request,
) -> Result<Response<Body>, BoxError> {
    // The proxy is trusted by address: the client is the rightmost X-Forwarded-For entry written by
    // a trusted hop, never the leftmost one it wrote itself.
    let client = client_ip.extract(&req);
    let deadline = Deadline::from_headers(req.headers(), MAX_DEADLINE);

    let seen = {
        let mut counts = counts.0.lock().expect("not poisoned");
        let seen = counts
            .entry(client.unwrap_or([0, 0, 0, 0].into()))
            .or_default();
        *seen += 1;
        *seen
    };
    if seen > QUOTA {
        let info = RateLimitInfo::new("per-client", QUOTA, Duration::from_secs(60))
            .remaining(0)
            .reset(Duration::from_millis(42_500));
        return Err(Error::rate_limited(Duration::from_millis(42_500))
            .with_layer("quickstart")
            .with_rate_limit(info)
            .into());
    }
    if deadline.is_some_and(|deadline| deadline.remaining() < WORK) {
        return Err(Error::timeout().with_layer("quickstart").into());
    }
    tokio::time::sleep(WORK).await;
    let client = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let budget = deadline.map_or_else(
        || "no deadline".to_owned(),
        |d| format!("{} ms budget", d.remaining().as_millis()),
    );
    Ok(Response::new(Body::from(format!(
        "hello {client}, {seen} of {QUOTA}, {budget}"
    ))))
}

fn app() -> Router {
    let counts = Counts::default();
    // The scripted client connects from 127.0.0.1 and plays the proxy: trust that address only.
    let client_ip = Arc::new(PeerIp::new().trust([Cidr::host(Ipv4Addr::LOCALHOST.into())]));
    // `route_service` wants an infallible service: the mapping layer makes the handler one.
    let handler = service_fn(move |req| handler(counts.clone(), client_ip.clone(), req));
    Router::new().route_service("/", ErrorResponseLayer::new().layer(handler))
}

/// One scripted request: what it is, and its headers.
struct Step {
    what: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

const SCRIPT: &[Step] = &[
    Step {
        what: "client A",
        headers: &[("x-forwarded-for", "203.0.113.7")],
    },
    Step {
        what: "client A, spoofing 6.6.6.6 on the left",
        headers: &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")],
    },
    Step {
        what: "client A, 100 ms budget",
        headers: &[("x-forwarded-for", "203.0.113.7"), ("x-timeout-ms", "100")],
    },
    Step {
        what: "client A, 4th request",
        headers: &[("x-forwarded-for", "203.0.113.7")],
    },
    Step {
        what: "client B, 5 ms budget",
        headers: &[("x-forwarded-for", "198.51.100.9"), ("x-timeout-ms", "5")],
    },
    Step {
        what: "client B, gRPC, 10H asked",
        headers: &[
            ("x-forwarded-for", "198.51.100.9"),
            ("content-type", "application/grpc"),
            ("grpc-timeout", "10H"),
        ],
    },
    Step {
        what: "client A, gRPC",
        headers: &[
            ("x-forwarded-for", "203.0.113.7"),
            ("content-type", "application/grpc"),
        ],
    },
];

async fn send(addr: SocketAddr, step: &Step) -> Result<(Response<()>, String), BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .uri("/")
        .header("host", addr.to_string());
    for (name, value) in step.headers {
        req = req.header(*name, *value);
    }
    let response = sender
        .send_request(req.body(Empty::<bytes::Bytes>::new())?)
        .await?;
    let (head, body) = response.into_parts();
    let body = String::from_utf8_lossy(&body.collect().await?.to_bytes()).into_owned();
    Ok((Response::from_parts(head, ()), body))
}

fn describe(outcome: Outcome) -> String {
    match outcome {
        Outcome::Success => "success".into(),
        Outcome::Ignored => "ignored".into(),
        Outcome::Failure(failure) => {
            let kind = if failure.is_retryable() {
                "retryable"
            } else {
                "permanent"
            };
            match failure.hint() {
                Some(ServerHint::RetryAfter(after)) => {
                    format!("{kind} failure, retry in {after:?}")
                }
                Some(ServerHint::DoNotRetry) => format!("{kind} failure, server says stop"),
                None => format!("{kind} failure"),
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let serve = std::env::args().any(|arg| arg == "--serve");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app().into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    println!("weir quickstart: server on http://{addr}/ (ErrorResponseLayer + a demo handler)\n");
    let header = ("request", "status", "what the client saw");
    println!(
        "{:<40} {:>6}  {:<62} classified as",
        header.0, header.1, header.2
    );
    println!("{}", "-".repeat(140));

    for step in SCRIPT {
        let (response, body) = send(addr, step).await?;
        let headers = response.headers();
        let grpc = headers.contains_key("grpc-status");
        let seen = if grpc {
            format!(
                "grpc-status {} {}",
                headers["grpc-status"].to_str().unwrap_or("?"),
                headers
                    .get("grpc-retry-pushback-ms")
                    .map_or(String::new(), |v| {
                        format!("pushback {}ms", v.to_str().unwrap_or("?"))
                    })
            )
        } else {
            let mut seen = body.clone();
            for name in ["retry-after", "ratelimit"] {
                if let Some(value) = headers.get(name) {
                    seen = format!("{seen}; {name}: {}", value.to_str().unwrap_or("?"));
                }
            }
            seen
        };
        let result: Result<_, Infallible> = Ok(response);
        let outcome = if grpc {
            GrpcStatus::new().classify(&result)
        } else {
            HttpStatus::new().classify(&result)
        };
        let Ok(response) = result;
        println!(
            "{:<40} {:>6}  {:<62} {}",
            step.what,
            response.status().as_u16(),
            seen,
            describe(outcome)
        );
    }

    println!("\nWhat each piece did:");
    println!(
        "- PeerIp::trust(127.0.0.1) keyed client A as 203.0.113.7 even when it wrote 6.6.6.6 first."
    );
    println!(
        "- Deadline::from_headers read x-timeout-ms and grpc-timeout, capping the 10H ask at {MAX_DEADLINE:?};"
    );
    println!(
        "  5 ms is less than the {WORK:?} of work, so the handler refused with Error::timeout -> 504."
    );
    println!(
        "- Error::rate_limited + RateLimitInfo became a 429 with Retry-After (seconds, rounded up) and"
    );
    println!(
        "  the IETF RateLimit fields, or RESOURCE_EXHAUSTED with grpc-retry-pushback-ms for gRPC."
    );
    println!("- HttpStatus / GrpcStatus classified each answer as a retrying client would.");

    if serve {
        println!("\nServing on http://{addr}/ until Ctrl-C. Try:");
        println!("  curl -i http://{addr}/ -H 'x-forwarded-for: 192.0.2.1'");
        println!("  curl -i http://{addr}/ -H 'x-timeout-ms: 5'");
        tokio::signal::ctrl_c().await?;
    }
    server.abort();
    Ok(())
}
