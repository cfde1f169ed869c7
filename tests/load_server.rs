//! `examples/load_server.rs`, the server `scripts/load.sh` loads (#18), over real sockets on
//! 127.0.0.1: each mode starts and answers a request; the weir mode's rate limit is keyed by the
//! header the load script sends. No load and no timing here: the load run is the script's.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use weir::rate_limit::Quota;

#[path = "../examples/load_server.rs"]
mod load_server;

use load_server::{HELLO, KEY_HEADER, Mode, UNREACHED_QUOTA};

type TestClient = Client<HttpConnector, Empty<Bytes>>;

/// `GET /` on `addr` with `KEY_HEADER: key`: status and body.
async fn get(client: &TestClient, addr: SocketAddr, key: &str) -> (StatusCode, String) {
    let response = client
        .request(
            Request::get(format!("http://{addr}/"))
                .header(KEY_HEADER, key)
                .body(Empty::new())
                .expect("a valid request"),
        )
        .await
        .expect("the server answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_starts_and_answers_hello() {
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();
    for mode in Mode::ALL {
        let addr = load_server::serve(mode, UNREACHED_QUOTA, local())
            .await
            .expect("the server starts");
        assert_eq!(
            get(&client, addr, "load").await,
            (StatusCode::OK, HELLO.to_owned()),
            "{mode:?}"
        );
    }
}

/// The weir mode limits each value of `x-client` on its own: the load run's requests take the
/// keyed path, not a global limit and not a pass-through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weir_mode_limits_per_key_of_the_load_header() {
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let addr = load_server::serve(Mode::Weir, Quota::per_hour(1), local())
        .await
        .expect("the server starts");
    assert_eq!(get(&client, addr, "a").await.0, StatusCode::OK);
    assert_eq!(
        get(&client, addr, "a").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get(&client, addr, "b").await.0, StatusCode::OK);
}

#[test]
fn modes_parse_by_name() {
    assert_eq!(Mode::parse("bare"), Some(Mode::Bare));
    assert_eq!(Mode::parse("weir"), Some(Mode::Weir));
    assert_eq!(Mode::parse("tower"), Some(Mode::Tower));
    assert_eq!(Mode::parse("axum"), None);
}
