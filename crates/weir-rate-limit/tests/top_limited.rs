//! The handle's top-N of the most limited keys, driven through the service under paused time: a
//! flood of distinct keys refused once each does not push out the keys refused most, and an
//! admitted request is never counted.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::BoxError;
use weir_rate_limit::{Quota, RateLimitLayer};

/// A request: the client's key, and a sequence number.
type Req = (String, u32);

async fn hit<S>(svc: &mut S, key: &str) -> Result<u32, BoxError>
where
    S: Service<Req, Response = u32, Error = BoxError>,
{
    svc.ready().await?.call((key.to_owned(), 0)).await
}

#[tokio::test(start_paused = true)]
async fn the_most_refused_keys_outlast_a_flood_and_admissions_are_not_counted() {
    let (layer, handle) = RateLimitLayer::builder()
        .quota(Quota::per_second(1))
        .key(|req: &Req| Some(req.0.clone()))
        .name("edge")
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(service_fn(
        |req: Req| async move { Ok::<_, Infallible>(req.1) },
    ));

    // A polite client: one request a second, always admitted, never in the table.
    // Two abusers refused 300 times each, one 120 times, and 1 000 keys refused once each.
    let mut refused = 0;
    for round in 0..1_000_u32 {
        if round % 100 == 0 {
            assert!(hit(&mut svc, "polite").await.is_ok());
            advance(Duration::from_secs(1)).await;
        }
        let flood = format!("flood-{round}");
        assert!(
            hit(&mut svc, &flood).await.is_ok(),
            "a new key's first request"
        );
        assert!(hit(&mut svc, &flood).await.is_err());
        refused += 1;
        for (abuser, every) in [("abuser-a", 10), ("abuser-b", 10), ("abuser-c", 25)] {
            if round % every == 0 {
                for _ in 0..30 {
                    if hit(&mut svc, abuser).await.is_err() {
                        refused += 1;
                    }
                }
            }
        }
    }
    // Each abuser's first request of a second is admitted: 29 of 30 refused, or 30.
    assert!(refused > 1_000 + 2 * 2_900 + 1_160, "{refused}");

    let top = handle.top_limited(3);
    let keys: Vec<&str> = top.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys[..2].contains(&"\"abuser-a\"") && keys[..2].contains(&"\"abuser-b\""),
        "{top:?}"
    );
    assert_eq!(keys[2], "\"abuser-c\"", "{top:?}");
    for limited in &top {
        let at_least = if limited.key == "\"abuser-c\"" {
            40 * 29
        } else {
            100 * 29
        };
        assert!(limited.rejected >= at_least, "{limited:?}");
    }
    assert_eq!(handle.top_limited(100).len(), 16, "the table holds 16 keys");
    assert!(
        handle.top_limited(16).iter().all(|l| l.key != "\"polite\""),
        "an admitted key is never counted"
    );
}

#[tokio::test(start_paused = true)]
async fn shadow_mode_and_admissions_leave_the_table_empty() {
    let (layer, handle) = RateLimitLayer::builder()
        .quota(Quota::per_second(1))
        .key(|req: &Req| Some(req.0.clone()))
        .shadow()
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(service_fn(
        |req: Req| async move { Ok::<_, Infallible>(req.1) },
    ));
    for _ in 0..10 {
        assert!(
            hit(&mut svc, "over").await.is_ok(),
            "shadow mode lets it through"
        );
    }
    assert!(handle.top_limited(16).is_empty());
}
