//! #21.4: a real weir-circuit-breaker layer inside the hedge (keyed per upstream, as the
//! README's Ordering puts it). An open circuit's refusal (`Error::circuit_open`) is a non-fatal
//! failure of that attempt: the next hedge goes at once. Whether it fares better depends on
//! where the copies go: to the same upstream, the same open breaker refuses it too; to another
//! replica (a `Replay` that addresses each copy), it is answered there.

use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, Uri};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_circuit_breaker::CircuitBreakerLayer;
use weir_core::{BoxError, Error};
use weir_hedge::HedgeLayer;
use weir_retry::Replay;

const MS: Duration = Duration::from_millis(1);

/// Upstream `a` is down (fails at once), `b` answers; the authorities called are recorded.
fn upstreams(
    called: &Arc<Mutex<Vec<String>>>,
) -> impl Service<Request<String>, Response = Response<String>, Error = BoxError, Future: Send> + Clone
{
    let called = Arc::clone(called);
    service_fn(move |req: Request<String>| {
        let host = req.uri().host().unwrap_or_default().to_owned();
        called.lock().unwrap().push(host.clone());
        ready(if host == "a" {
            Err::<Response<String>, BoxError>("connection refused".into())
        } else {
            Ok(Response::new(format!("from {host}")))
        })
    })
}

/// One breaker per authority, each opening at its first failure.
fn per_host() -> weir_circuit_breaker::KeyedCircuitBreakerLayer<
    impl Fn(&Request<String>) -> Option<http::uri::Authority> + Clone,
> {
    CircuitBreakerLayer::consecutive_failures(1)
        .open_duration(Duration::from_secs(30))
        .keyed(|req: &Request<String>| req.uri().authority().cloned())
        .build()
        .unwrap()
}

fn get(uri: &str) -> Request<String> {
    Request::get(uri).body(String::new()).unwrap()
}

/// With every copy sent to the one upstream, its open breaker refuses each at once: the hedges
/// go at once (an open circuit is non-fatal), the upstream is never called, and the primary's
/// refusal is returned. Each refused hedge still spends one from the hedge budget.
#[tokio::test(start_paused = true)]
async fn hedges_to_the_same_upstream_meet_the_same_open_breaker() {
    let called = Arc::new(Mutex::new(Vec::new()));
    let (hedge, handle) = HedgeLayer::builder()
        .delay(10 * MS)
        .max_attempts(3)
        .build_with_handle()
        .unwrap();
    let client = hedge.layer(per_host().layer(upstreams(&called)));

    // The first call fails at `a` and opens its breaker; both hedges, sent at once after the
    // failure, are refused by it.
    let err = client.clone().oneshot(get("http://a/x")).await.unwrap_err();
    assert!(
        Error::find(&*err).is_none(),
        "the primary's own failure: {err}"
    );
    assert_eq!(*called.lock().unwrap(), ["a"]);
    assert_eq!(handle.hedges_sent(), 2);

    // The next call: every attempt refused by the open breaker, none reaches `a`.
    let err = client.oneshot(get("http://a/x")).await.unwrap_err();
    assert!(
        Error::find(&*err).is_some_and(Error::is_circuit_open),
        "{err}"
    );
    assert_eq!(*called.lock().unwrap(), ["a"]);
    assert_eq!(handle.hedges_sent(), 4);
    assert_eq!(handle.hedges_won(), 0);
}

/// Sends the primary where the request says and every hedge to the replica `b`.
#[derive(Clone, Copy, Debug)]
struct HedgeToReplica;

impl Replay<Request<String>> for HedgeToReplica {
    type Request = Request<String>;
    type Copy = Request<String>;
    type Prepare = Ready<(Request<String>, Option<Request<String>>)>;

    fn prepare(&self, request: Request<String>) -> Self::Prepare {
        ready((request.clone(), Some(request)))
    }

    fn prepare_now(
        &self,
        request: Request<String>,
    ) -> Result<(Request<String>, Option<Request<String>>), Self::Prepare> {
        Ok((request.clone(), Some(request)))
    }

    fn replay(&self, copy: &Request<String>) -> Request<String> {
        let mut request = copy.clone();
        let path = copy.uri().path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = Uri::builder()
            .scheme("http")
            .authority("b")
            .path_and_query(path)
            .build()
            .unwrap();
        request
    }
}

/// With the hedges addressed to another replica, an open breaker on the primary's upstream
/// costs nothing: the primary is refused at once, the hedge goes at once to `b` (its own
/// breaker, closed) and answers, without waiting for the hedging delay.
#[tokio::test(start_paused = true)]
async fn an_open_breaker_sends_the_hedge_at_once_to_another_replica() {
    let called = Arc::new(Mutex::new(Vec::new()));
    let (hedge, handle) = HedgeLayer::builder()
        .delay(Duration::from_secs(10))
        .replay(HedgeToReplica)
        .build_with_handle()
        .unwrap();
    let client = hedge.layer(per_host().layer(upstreams(&called)));

    // `a` fails once: its breaker opens; the hedge to `b` answers.
    let start = tokio::time::Instant::now();
    let response = client.clone().oneshot(get("http://a/x")).await.unwrap();
    assert_eq!(response.body(), "from b");
    assert_eq!(*called.lock().unwrap(), ["a", "b"]);

    // Now `a`'s breaker refuses the primary without calling it, and the hedge, sent at once
    // (no 10 s delay), is answered by `b`.
    let response = client.oneshot(get("http://a/x")).await.unwrap();
    assert_eq!(response.body(), "from b");
    assert_eq!(*called.lock().unwrap(), ["a", "b", "b"]);
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (2, 2));
    assert_eq!(
        tokio::time::Instant::now(),
        start,
        "no hedging delay was waited"
    );
}

/// An attempt refused by the open breaker is non-fatal whatever the layer's classifier says: here
/// one that makes every `Err` permanent (fatal). The upstream's own failure is fatal and returned
/// at once (no hedge); the breaker's refusal of the next call is not: the hedge goes at once to
/// the replica and answers.
#[tokio::test(start_paused = true)]
async fn an_open_circuit_is_non_fatal_even_to_a_strict_classifier() {
    use weir_core::{Failure, Outcome};

    let strict = |result: &Result<Response<String>, BoxError>| match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure(Failure::permanent()),
    };
    let called = Arc::new(Mutex::new(Vec::new()));
    let (hedge, handle) = HedgeLayer::builder()
        .delay(Duration::from_secs(10))
        .replay(HedgeToReplica)
        .classify(strict)
        .build_with_handle()
        .unwrap();
    let client = hedge.layer(per_host().layer(upstreams(&called)));

    let err = client.clone().oneshot(get("http://a/x")).await.unwrap_err();
    assert!(
        Error::find(&*err).is_none(),
        "the upstream's failure: {err}"
    );
    assert_eq!(*called.lock().unwrap(), ["a"]);
    assert_eq!(handle.hedges_sent(), 0, "a fatal failure sends no hedge");

    let start = tokio::time::Instant::now();
    let response = client.oneshot(get("http://a/x")).await.unwrap();
    assert_eq!(response.body(), "from b");
    assert_eq!(*called.lock().unwrap(), ["a", "b"]);
    assert_eq!((handle.hedges_sent(), handle.hedges_won()), (1, 1));
    assert_eq!(tokio::time::Instant::now(), start, "sent at once");
}
