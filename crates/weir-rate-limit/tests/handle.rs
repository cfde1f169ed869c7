//! The handle an admin endpoint needs (#15.10, #16.8): from the layer itself, one key's units
//! left, one key reset, and where window edges fall.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::{BoxError, Error};
use weir_rate_limit::{FixedWindow, Quota, RateLimitLayer};

fn echo() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = std::future::Ready<Result<u64, Infallible>>,
> + Clone {
    service_fn(|n: u64| std::future::ready(Ok(n)))
}

async fn hit<S>(svc: &mut S, key: u64) -> Result<u64, BoxError>
where
    S: Service<u64, Response = u64, Error = BoxError>,
{
    svc.ready().await?.call(key).await
}

/// #16.8 and #15.10: `layer.handle()` (not only `build_with_handle()`) reads one key's units
/// left on every quota of its tier, storing nothing for a key it has not seen, and resets one
/// key so its next request starts with every quota full.
#[tokio::test(start_paused = true)]
async fn the_layers_handle_reads_and_resets_one_key() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_minute(5).named("minute"))
        .quota(Quota::per_hour(100).named("hour"))
        .key(|k: &u64| Some(*k))
        .build()
        .expect("valid");
    let handle = layer.handle();
    let mut svc = layer.layer(echo());
    for _ in 0..3 {
        hit(&mut svc, 1).await.expect("admitted");
    }
    let left = |key: u64| {
        handle
            .remaining(&key)
            .iter()
            .map(|info| (info.policy().to_owned(), info.remaining_units()))
            .collect::<Vec<_>>()
    };
    assert_eq!(left(1), [("minute".to_owned(), 2), ("hour".to_owned(), 97)]);
    assert_eq!(
        left(2),
        [("minute".to_owned(), 5), ("hour".to_owned(), 100)]
    );
    assert_eq!(handle.keys(), 1, "reading key 2 stored nothing");
    hit(&mut svc, 1).await.expect("admitted");
    hit(&mut svc, 1).await.expect("admitted");
    assert_eq!(left(1)[0].1, 0);
    let refused = hit(&mut svc, 1).await.expect_err("the minute is spent");
    assert!(Error::find(&*refused).is_some_and(Error::is_rate_limited));

    assert!(handle.reset(&1u64), "key 1 had a state");
    assert!(!handle.reset(&2u64), "key 2 had none");
    assert_eq!(left(1)[0].1, 5);
    for _ in 0..5 {
        hit(&mut svc, 1)
            .await
            .expect("a fresh minute after the reset");
    }
}

/// #15.10: fixed windows start at `window_origin() + k × period`, for every key alike: the
/// handle says where the next edge falls, and a refusal's retry-after points at it exactly.
#[tokio::test(start_paused = true)]
async fn fixed_windows_start_at_the_handles_window_origin() {
    let period = Duration::from_secs(10);
    let layer = RateLimitLayer::builder()
        .quota(Quota::new(2, period))
        .algorithm(FixedWindow)
        .build()
        .expect("valid");
    let handle = layer.handle();
    let mut svc = layer.layer(echo());
    let now = Instant::now();
    let origin = handle.window_origin();
    assert!(origin <= now);
    let windows = (now - origin).as_nanos() / period.as_nanos() + 1;
    let edge = origin + period * u32::try_from(windows).expect("fits");
    hit(&mut svc, 0).await.expect("admitted");
    hit(&mut svc, 0).await.expect("admitted");
    let refused = hit(&mut svc, 0).await.expect_err("the window is spent");
    let refused = Error::find(&*refused).expect("a weir error");
    assert_eq!(refused.retry_after(), Some(edge - now));
    advance(edge - now - Duration::from_nanos(1)).await;
    assert!(
        hit(&mut svc, 0).await.is_err(),
        "one nanosecond before the edge"
    );
    advance(Duration::from_nanos(1)).await;
    hit(&mut svc, 0).await.expect("a new window at the edge");
}

/// #15.10: the async admin calls any `AdminStore` answers agree with the in-memory handle's
/// own, and reset the same way.
#[tokio::test(start_paused = true)]
async fn the_async_admin_calls_agree_with_the_memory_handle() {
    let layer = RateLimitLayer::builder()
        .quota(Quota::per_minute(5).named("minute"))
        .quota(Quota::per_hour(100).named("hour"))
        .key(|k: &u64| Some(*k))
        .build()
        .expect("valid");
    let handle = layer.handle();
    let mut svc = layer.layer(echo());
    hit(&mut svc, 1).await.expect("admitted");
    hit(&mut svc, 1).await.expect("admitted");
    let units = |infos: Vec<weir_core::wire::RateLimitInfo>| {
        infos
            .iter()
            .map(|i| (i.remaining_units(), i.reset_after()))
            .collect::<Vec<_>>()
    };
    let read = handle.remaining_async(&1u64).await.expect("memory answers");
    assert_eq!(units(read.clone()), units(handle.remaining(&1u64)));
    assert_eq!(read[0].remaining_units(), 3);
    assert!(handle.reset_async(&1u64).await.expect("memory answers"));
    assert!(!handle.reset_async(&1u64).await.expect("memory answers"));
    let read = handle.remaining_async(&1u64).await.expect("memory answers");
    assert_eq!(
        (read[0].remaining_units(), read[1].remaining_units()),
        (5, 100)
    );
}
