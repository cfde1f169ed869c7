//! Contract: the service is `Clone + Send + Sync` when its inner service is, its future is
//! `Send`, and it calls only the inner instance that was readied.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_idempotency::IdempotencyLayer;
use weir_test::StrictService;

fn assert_service<S, Req>(_: &S)
where
    S: Service<Req> + Clone + Send + Sync,
    S::Future: Send,
{
}

type Req = Request<Full<Bytes>>;

#[test]
fn service_and_future_are_send_sync_clone() {
    let svc = IdempotencyLayer::new().layer(service_fn(|_: Req| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    assert_service::<_, Req>(&svc);
}

#[tokio::test(start_paused = true)]
async fn only_the_readied_instance_is_called_with_or_without_a_key() {
    let strict =
        StrictService::new(|_: Req| Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))));
    let mut svc = IdempotencyLayer::new().layer(strict.clone());
    for key in [None, Some("k"), Some("k")] {
        let mut req = Request::post("/").body(Full::new(Bytes::new())).unwrap();
        if let Some(key) = key {
            req.headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        svc.ready().await.unwrap().call(req).await.unwrap();
    }
    assert_eq!(strict.calls(), 2, "the keyed repeat was a replay");
}
