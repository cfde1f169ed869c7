//! Key floods on paused time: a full key map never loosens a limit (#15.1) and never locks
//! every new client out (#15.17).

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::Error;
use weir_rate_limit::{Quota, RateLimitLayer};

fn echo() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = std::future::Ready<Result<u64, Infallible>>,
> + Clone {
    service_fn(|n: u64| std::future::ready(Ok(n)))
}

/// Sends `key` through `svc`: whether it was admitted (a refusal must be a rate-limit error).
async fn admitted<S>(svc: &mut S, key: u64) -> bool
where
    S: Service<u64, Response = u64, Error = weir_core::BoxError>,
{
    match svc.ready().await.expect("ready").call(key).await {
        Ok(n) => n == key,
        Err(err) => {
            let err = Error::find(&*err).expect("a weir error");
            assert!(err.is_rate_limited(), "{err}");
            false
        }
    }
}

/// Keys at or above this are the premium tier's.
const PREMIUM: u64 = 1 << 40;

/// #15.1: a key that finds the map full is held to every quota of its tier: a tier of
/// 1000/s stacked with 5/min admits 5 in a minute, not 20 of 20, and a key of a single-quota
/// tier is held to its own tier's quota, not the default tier's.
#[tokio::test(start_paused = true)]
async fn an_overflowing_key_is_held_to_every_quota_of_its_tier() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(1))
        .tier(
            "stacked",
            [
                Quota::per_second(1_000),
                Quota::per_minute(5).named("minute"),
            ],
        )
        .tier("premium", [Quota::per_hour(3)])
        .key(|k: &u64| Some(*k))
        .tier_of(|k: &u64| match *k {
            k if k >= PREMIUM => Some("premium"),
            k if k >= 100 => Some("stacked"),
            _ => None,
        })
        .max_keys(1)
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    // Key 1 fills the map.
    assert!(admitted(&mut svc, 1).await);
    let mut stacked = 0;
    for _ in 0..20 {
        stacked += usize::from(admitted(&mut svc, 100).await);
    }
    assert_eq!(stacked, 5, "the 5/min quota applies to an overflowing key");
    // A minute later, 5 more.
    advance(Duration::from_secs(60)).await;
    let mut again = 0;
    for _ in 0..20 {
        again += usize::from(admitted(&mut svc, 101).await);
    }
    assert_eq!(again, 5);
    let mut premium = 0;
    for _ in 0..20 {
        premium += usize::from(admitted(&mut svc, PREMIUM).await);
    }
    assert_eq!(premium, 3, "the premium tier's 3/h, not the default 1/s");
}

/// #15.17: after a flood of 100 000 distinct keys fills the map, and while 10 000 more new
/// keys a second keep coming, a well-behaved new client sending at exactly its quota keeps
/// (close to) all of it: state that carries no information is evicted first when the map is
/// full, and keys that still find it full are spread over many overflow states by a keyed hash,
/// so the flood costs collisions, not a lockout.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_key_flood_does_not_lock_a_new_client_out() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_second(10))
        .key(|k: &u64| Some(*k))
        .build()
        .expect("valid");
    let mut svc = layer.layer(echo());
    let mut flood = 1_000_000u64;
    for _ in 0..100_000 {
        flood += 1;
        svc.ready().await.expect("ready").call(flood).await.ok();
    }
    // 10 s: 10 new flood keys every millisecond, and a new client every 100 ms (its rate).
    let client = 7;
    let mut served = 0;
    for ms in 0..10_000 {
        advance(Duration::from_millis(1)).await;
        for _ in 0..10 {
            flood += 1;
            svc.ready().await.expect("ready").call(flood).await.ok();
        }
        if ms % 100 == 0 {
            served += usize::from(admitted(&mut svc, client).await);
        }
    }
    assert!(served >= 95, "the client got {served} of its 100");
}
