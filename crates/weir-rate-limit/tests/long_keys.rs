//! #15.15 through the limiter: a client sending over-long keys keeps a limit of its own and never
//! spends the state of the requests that carry no key.

use std::convert::Infallible;

use http::{HeaderName, Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::key::{ApiKey, DEFAULT_MAX_KEY_LEN, Header};
use weir_core::{BoxError, Error};
use weir_rate_limit::RateLimitLayer;

fn ok() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|_req: Request<()>| std::future::ready(Ok(Response::new(()))))
}

async fn hit<S>(svc: &mut S, req: Request<()>) -> Result<Response<()>, BoxError>
where
    S: Service<Request<()>, Response = Response<()>, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

fn with(name: &str, value: &str) -> Request<()> {
    Request::get("/")
        .header(name, value)
        .body(())
        .expect("request")
}

fn key_less() -> Request<()> {
    Request::get("/").body(()).expect("request")
}

/// With the default `MissingKey::Shared`, a hostile client sending a fresh over-long key on every
/// request used to land in the one key-less state and spend it for every client without a key.
/// Now each over-long key is a key of its own (its digest): the key-less client keeps its quota,
/// and a repeated over-long key is limited like any other key.
#[tokio::test(start_paused = true)]
async fn over_long_header_keys_never_spend_the_key_less_state() {
    let (layer, handle) = RateLimitLayer::per_minute(2)
        .key(Header::new(HeaderName::from_static("x-tenant")))
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(ok());

    for i in 0..50 {
        let long = format!("{i}-{}", "k".repeat(DEFAULT_MAX_KEY_LEN));
        assert!(
            hit(&mut svc, with("x-tenant", &long)).await.is_ok(),
            "a fresh over-long key has its own quota ({i})"
        );
    }
    // Fifty over-long keys, each stored as a fixed-size key, none in the key-less state.
    assert_eq!(handle.keys(), 50);
    assert!(hit(&mut svc, key_less()).await.is_ok());
    assert!(hit(&mut svc, key_less()).await.is_ok());
    assert!(hit(&mut svc, key_less()).await.is_err(), "the quota holds");

    // One over-long key sent again and again is limited as one key.
    let long = "j".repeat(64 * 1024);
    assert!(hit(&mut svc, with("x-tenant", &long)).await.is_ok());
    assert!(hit(&mut svc, with("x-tenant", &long)).await.is_ok());
    let err = hit(&mut svc, with("x-tenant", &long))
        .await
        .expect_err("refused");
    assert!(Error::find(&*err).is_some_and(Error::is_rate_limited));
}

/// A bearer token longer than the cap (a long JWT) keeps its own limit: it is neither refused
/// nor merged with other clients, and the same token sent as `x-api-key` is the same key.
#[tokio::test(start_paused = true)]
async fn a_long_bearer_token_keeps_a_limit_of_its_own() {
    let layer = RateLimitLayer::per_minute(1)
        .key(ApiKey::new())
        .build()
        .expect("valid");
    let mut svc = layer.layer(ok());
    let jwt = "e".repeat(2 * DEFAULT_MAX_KEY_LEN);
    let other = "f".repeat(2 * DEFAULT_MAX_KEY_LEN);
    assert!(
        hit(&mut svc, with("authorization", &format!("Bearer {jwt}")))
            .await
            .is_ok()
    );
    assert!(hit(&mut svc, with("x-api-key", &jwt)).await.is_err());
    assert!(
        hit(&mut svc, with("authorization", &format!("Bearer {other}")))
            .await
            .is_ok()
    );
    assert!(hit(&mut svc, key_less()).await.is_ok());
}
