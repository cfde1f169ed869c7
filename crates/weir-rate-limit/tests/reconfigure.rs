//! #25: new quotas applied to a running limiter through its handle, on paused time: a raised
//! quota takes effect at once, a lowered one never admits more than it allows in any later
//! window, a key's state carries over (never reset), a change of shape is refused whole, and a
//! request reads one version of the settings (a tier whose rate and window change together).

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt, service_fn};
use weir_core::reconfigure::Reconfigure;
use weir_core::{BoxError, response::ErrorResponseLayer, wire::HeaderStyle};
use weir_rate_limit::{
    Algorithm, FixedWindow, Gcra, Quota, RateLimitLayer, RateLimitSettings, SlidingLog,
    SlidingWindow, TokenBucket,
};

fn echo() -> impl Service<
    u32,
    Response = u32,
    Error = Infallible,
    Future = std::future::Ready<Result<u32, Infallible>>,
> + Clone {
    service_fn(|n: u32| std::future::ready(Ok(n)))
}

async fn admitted<S>(svc: &mut S, key: u32) -> bool
where
    S: Service<u32, Error = BoxError>,
{
    svc.ready().await.expect("ready").call(key).await.is_ok()
}

fn only(quota: Quota) -> RateLimitSettings {
    RateLimitSettings::new().quota(quota)
}

/// A key that spent its burst under 2/s is refused; raised to 10/s it is admitted again after
/// one new emission interval (100 ms, not the old 500 ms) and gets 10 in the next second, not 2;
/// a raised burst is room at once.
#[tokio::test(start_paused = true)]
async fn a_raised_quota_takes_effect_at_once() {
    let (layer, handle) = RateLimitLayer::per_second(2)
        .key(|n: &u32| Some(*n))
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(admitted(&mut svc, 7).await);
    assert!(admitted(&mut svc, 7).await);
    assert!(!admitted(&mut svc, 7).await);
    handle.apply(only(Quota::per_second(10))).expect("valid");
    assert_eq!(handle.applied(), 1);
    advance(Duration::from_millis(100)).await;
    assert!(admitted(&mut svc, 7).await, "the new rate's first emission");
    let mut in_the_next_second = 1;
    for _ in 0..9 {
        advance(Duration::from_millis(100)).await;
        while admitted(&mut svc, 7).await {
            in_the_next_second += 1;
        }
    }
    assert_eq!(
        in_the_next_second, 10,
        "10 in the second after the raise, not 2"
    );
    // A raised burst: the room is there at once, on the same key's state.
    handle
        .apply(only(Quota::per_second(10).burst(30)))
        .expect("valid");
    let mut at_once = 0;
    while admitted(&mut svc, 7).await {
        at_once += 1;
    }
    assert_eq!(
        at_once, 20,
        "the 20 units the raised burst adds, not a reset bucket's 30"
    );
}

/// The bound each algorithm keeps in a window of `w` from any instant: units admitted at most.
fn bound<A: 'static>(q: &Quota, w: Duration) -> u64 {
    let rate = u64::from(q.rate());
    let periods = w.as_nanos().div_ceil(q.period().as_nanos()) as u64;
    let any = std::any::TypeId::of::<A>();
    if any == std::any::TypeId::of::<Gcra>() {
        u64::from(q.burst_size()) + (w.as_nanos() / q.emission_interval().as_nanos()) as u64
    } else if any == std::any::TypeId::of::<TokenBucket>() {
        u64::from(q.burst_size()) + rate * (periods + 1)
    } else if any == std::any::TypeId::of::<SlidingLog>() {
        rate * periods
    } else {
        // The fixed window's documented edge burst (and the sliding counter's worst case).
        rate * (periods + 1)
    }
}

/// Traffic on one key every 10 ms; at 1.25 s the quota is lowered (rate, burst and period all
/// change). Every window of the new period that starts after the apply holds at most what the
/// new quota allows, for every algorithm; and the key was not reset (the first second after
/// the apply admits no more than a key that had been limited all along).
async fn lowered_never_over_admits<A: Algorithm>(algorithm: A) {
    let old = Quota::per_second(20).burst(20);
    let new = Quota::new(6, Duration::from_secs(2)).burst(3);
    let (layer, handle) = RateLimitLayer::builder()
        .quota(old)
        .algorithm(algorithm)
        .key(|n: &u32| Some(*n))
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(echo());
    let start = Instant::now();
    let mut times = Vec::new();
    let mut applied_at = None;
    for step in 0..1_000u32 {
        if step == 125 {
            handle.apply(only(new.clone())).expect("valid");
            applied_at = Some(Instant::now());
        }
        if admitted(&mut svc, 1).await {
            times.push(Instant::now());
        }
        advance(Duration::from_millis(10)).await;
    }
    let applied_at = applied_at.expect("applied");
    let after: Vec<Instant> = times.into_iter().filter(|t| *t >= applied_at).collect();
    assert!(!after.is_empty(), "the new quota admits");
    let w = new.period();
    let most = bound::<A>(&new, w);
    for (i, from) in after.iter().enumerate() {
        let inside = after[i..].iter().take_while(|t| **t < *from + w).count() as u64;
        assert!(
            inside <= most,
            "{} admitted in the {w:?} from {:?} after the apply, over {most}",
            inside,
            *from - start
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_lowered_gcra_never_over_admits() {
    lowered_never_over_admits(Gcra).await;
}

#[tokio::test(start_paused = true)]
async fn a_lowered_token_bucket_never_over_admits() {
    lowered_never_over_admits(TokenBucket).await;
}

#[tokio::test(start_paused = true)]
async fn a_lowered_fixed_window_never_over_admits() {
    lowered_never_over_admits(FixedWindow).await;
}

#[tokio::test(start_paused = true)]
async fn a_lowered_sliding_window_never_over_admits() {
    lowered_never_over_admits(SlidingWindow).await;
}

#[tokio::test(start_paused = true)]
async fn a_lowered_sliding_log_never_over_admits() {
    lowered_never_over_admits(SlidingLog).await;
}

/// A key's state carries over: a key that spent its whole day under 100/day is still refused
/// once the quota is lowered to 50/day (a reset would give it 50 more), for GCRA and the
/// window algorithms alike.
#[tokio::test(start_paused = true)]
async fn a_spent_key_stays_spent_when_the_quota_is_lowered() {
    async fn check<A: Algorithm>(algorithm: A) {
        let (layer, handle) = RateLimitLayer::builder()
            .quota(Quota::per_day(100))
            .algorithm(algorithm)
            .key(|n: &u32| Some(*n))
            .build_with_handle()
            .expect("valid");
        let mut svc = layer.layer(echo());
        for _ in 0..100 {
            assert!(admitted(&mut svc, 3).await);
        }
        handle.apply(only(Quota::per_day(50))).expect("valid");
        advance(Duration::from_secs(60)).await;
        assert!(
            !admitted(&mut svc, 3).await,
            "{}: the spent key was reset",
            std::any::type_name::<A>()
        );
        // Another key starts fresh under the new quota.
        assert!(admitted(&mut svc, 4).await);
    }
    check(Gcra).await;
    check(TokenBucket).await;
    check(FixedWindow).await;
    check(SlidingWindow).await;
    check(SlidingLog).await;
}

/// Refused by the builder's rules (the same errors, fields named) or as a change of shape
/// ("needs a restart"): nothing applied, the running quotas unchanged.
#[tokio::test(start_paused = true)]
async fn a_refused_apply_changes_nothing() {
    let (_layer, handle) = RateLimitLayer::per_second(5)
        .tier("gold", [Quota::per_second(50), Quota::per_day(1_000)])
        .build_with_handle()
        .expect("valid");
    let before = handle.settings();
    let no_quota = handle.apply(RateLimitSettings::new()).unwrap_err();
    assert!(no_quota.is_missing());
    assert_eq!(no_quota.field(), "quota");
    let empty = handle
        .apply(only(Quota::per_second(1)).tier("gold", []))
        .unwrap_err();
    assert_eq!(empty.field(), "tier");
    let removed = handle.apply(only(Quota::per_second(9))).unwrap_err();
    assert!(removed.is_conflict());
    assert!(removed.to_string().contains("needs a restart"), "{removed}");
    let fewer = handle
        .apply(only(Quota::per_second(9)).tier("gold", [Quota::per_second(60)]))
        .unwrap_err();
    assert_eq!(fewer.field(), "tier.gold");
    assert!(fewer.to_string().contains("needs a restart"), "{fewer}");
    assert_eq!(handle.settings(), before);
    assert_eq!(handle.applied(), 0);
    let fine = only(Quota::per_second(9)).tier("gold", [Quota::per_second(60), Quota::per_day(2)]);
    handle.apply(fine.clone()).expect("same shape");
    assert_eq!(handle.settings(), fine);
}

/// A tier whose rate and window change together: every response's `RateLimit-Policy` is the
/// old policy or the new one whole, never the new rate over the old window; and its `r` never
/// exceeds the `q` it names.
#[tokio::test(start_paused = true)]
async fn a_response_reads_one_version_of_the_settings() {
    let old = Quota::per_second(100).named("api");
    let new = Quota::new(1_000, Duration::from_secs(60)).named("api");
    let (limit, handle) = RateLimitLayer::builder()
        .quota(old.clone())
        .response_headers(HeaderStyle::Ietf)
        .build_with_handle()
        .expect("valid");
    let ok =
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let mut svc = ErrorResponseLayer::new().layer(limit.layer(ok));
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..400 {
        if i % 7 == 0 {
            let q = if (i / 7) % 2 == 0 { &new } else { &old };
            handle.apply(only(q.clone())).expect("valid");
        }
        let res = svc
            .ready()
            .await
            .expect("ready")
            .call(Request::new(()))
            .await
            .expect("infallible");
        let policy = res.headers()["ratelimit-policy"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            policy == r#""api";q=100;w=1"# || policy == r#""api";q=1000;w=60"#,
            "a policy of half the settings: {policy}"
        );
        seen.insert(policy);
        advance(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.len(), 2, "both versions answered");
}

/// Applies while calls run on four threads: two versions of one daily quota (bursts 50 and 80)
/// swapped 2 000 times. No call ever saw a policy other than one of the two whole, and one key
/// was never admitted more than the larger burst (a reset, or a half-applied burst over the
/// other version's spent state, would admit more).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applies_while_calls_run_never_over_admit() {
    let a = Quota::per_day(1_000).burst(50).named("a");
    let b = Quota::per_day(1_000).burst(80).named("b");
    let (limit, handle) = RateLimitLayer::builder()
        .quota(a.clone())
        .response_headers(HeaderStyle::Ietf)
        .build_with_handle()
        .expect("valid");
    let ok =
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let svc = ErrorResponseLayer::new().layer(limit.layer(ok));
    let applier = {
        let handle = handle.clone();
        tokio::spawn(async move {
            for i in 0..2_000 {
                let q = if i % 2 == 0 { &b } else { &a };
                handle.apply(only(q.clone())).expect("valid");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut callers = Vec::new();
    for _ in 0..4 {
        let mut svc = svc.clone();
        callers.push(tokio::spawn(async move {
            let mut admitted = 0u32;
            for _ in 0..400 {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(Request::new(()))
                    .await
                    .expect("infallible");
                let policy = res.headers()["ratelimit-policy"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                assert!(
                    policy == r#""a";q=1000;w=86400"# || policy == r#""b";q=1000;w=86400"#,
                    "{policy}"
                );
                admitted += u32::from(res.status().is_success());
                tokio::task::yield_now().await;
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for caller in callers {
        admitted += caller.await.expect("no panic");
    }
    applier.await.expect("no panic");
    // A daily quota restores one unit every 86.4 s: none in this test's run.
    assert!(admitted <= 80, "{admitted} admitted over the larger burst");
    assert!(
        admitted >= 50,
        "{admitted}: the smaller burst was not even spent"
    );
    assert_eq!(handle.applied(), 2_000);
}

/// A key decided on an overflow state (the map full) keeps that state across an apply: the
/// overflow states are found by their tier's name, not by its quotas.
#[tokio::test(start_paused = true)]
async fn an_overflow_state_carries_over() {
    let (layer, handle) = RateLimitLayer::per_day(3)
        .key(|n: &u32| Some(*n))
        .max_keys(1)
        .build_with_handle()
        .expect("valid");
    let mut svc = layer.layer(echo());
    assert!(admitted(&mut svc, 1).await, "key 1 fills the map");
    for _ in 0..3 {
        assert!(admitted(&mut svc, 2).await, "key 2 on an overflow state");
    }
    assert!(!admitted(&mut svc, 2).await);
    handle.apply(only(Quota::per_day(2))).expect("valid");
    assert!(!admitted(&mut svc, 2).await, "the overflow state was reset");
}
