//! The Lua scripts decide exactly as weir-rate-limit's in-memory algorithms: the same
//! sequences of requests, at the same explicit instants, give the same decisions (admitted,
//! wait, remaining, reset, retry-after), on a real redis-server.

mod support;

use std::time::Duration;

use support::Redis;
use weir_rate_limit::{Ask, Decision, FixedWindow, Gcra, Quota, SlidingWindow, Tier, TokenBucket};
use weir_redis::{FailurePolicy, RedisAlgorithm, RedisStore};

/// A Unix time that every period used here divides, so windows line up with the in-memory
/// ones (which count from 0).
const BASE: Duration = Duration::from_secs(1_700_006_400);

/// A small deterministic generator (no dependency): xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn compare<A: RedisAlgorithm + Default>(redis: &Redis, quota: Quota, waits: bool, seed: u64) {
    let store = RedisStore::builder(redis.url())
        .algorithm(A::default())
        .prefix(format!("cmp{seed}:"))
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid config");
    let handle = store.handle();
    let tier = Tier::new("default", [quota.clone()]);
    let algorithm = A::default();
    let state = algorithm.new_state(&quota);
    let mut rng = Rng(seed);
    let mut now: u64 = 5 * 1_000_000_000;
    let (mut admitted, mut refused, mut waited, mut nevers) = (0, 0, 0, 0);
    let step = quota.emission_interval().as_nanos() as u64;
    for i in 0..400 {
        // Mostly small steps (so limits are hit), sometimes a long pause.
        now += match rng.next() % 20 {
            0 => rng.next() % (step * 20),
            1..=7 => 0,
            _ => rng.next() % (step + 1),
        };
        // Sometimes a cost no quota here can ever admit (never admissible, #15.6).
        let cost = if i % 37 == 36 {
            10_000
        } else {
            1 + (rng.next() % 3) as u32
        };
        let max_wait = if waits && rng.next().is_multiple_of(4) {
            rng.next() % (step * 3)
        } else {
            0
        };
        let verdict = algorithm.acquire(&state, &quota, cost, now, max_wait);
        let ask = Ask {
            cost,
            max_wait: Duration::from_nanos(max_wait),
        };
        let decision: Decision = store
            .decide_at(Some(&7u32), &tier, ask, BASE + Duration::from_nanos(now))
            .await
            .expect("redis decides");
        let expected = (
            verdict.is_admitted(),
            verdict.is_never_admissible(),
            verdict.wait(),
            verdict.remaining(),
            verdict.reset(),
            verdict.retry_after(),
        );
        let got = (
            decision.is_admitted(),
            decision.is_never_admissible(),
            decision.wait().as_nanos() as u64,
            decision.remaining(),
            decision.reset().as_nanos() as u64,
            decision.retry_after().as_nanos() as u64,
        );
        admitted += usize::from(got.0);
        refused += usize::from(!got.0);
        waited += usize::from(got.2 > 0);
        nevers += usize::from(got.1);
        assert_eq!(
            got,
            expected,
            "{} step {i} at {now} ns, cost {cost}, max_wait {max_wait}",
            A::TAG
        );
    }
    // The sequence exercised both answers (and reservations, where asked).
    assert!(
        admitted > 40 && refused > 40,
        "{admitted} admitted, {refused} refused"
    );
    assert!(!waits || waited > 0, "no reservation made");
    assert_eq!(
        nevers,
        400 / 37,
        "every cost above the quota is never admissible"
    );
    assert_eq!(handle.fallbacks(), 0);
    assert_eq!(handle.decisions(), 400);
}

#[tokio::test]
async fn gcra_script_decides_as_the_in_memory_gcra() {
    let redis = Redis::start().await;
    compare::<Gcra>(&redis, Quota::per_second(10).burst(3), true, 1).await;
    compare::<Gcra>(
        &redis,
        Quota::new(7, Duration::from_secs(3)).burst(5),
        true,
        2,
    )
    .await;
    compare::<Gcra>(&redis, Quota::per_minute(100), false, 3).await;
}

#[tokio::test]
async fn token_bucket_script_decides_as_the_in_memory_token_bucket() {
    let redis = Redis::start().await;
    compare::<TokenBucket>(&redis, Quota::per_second(2).burst(4), true, 4).await;
    compare::<TokenBucket>(
        &redis,
        Quota::new(5, Duration::from_secs(3)).burst(9),
        true,
        5,
    )
    .await;
}

#[tokio::test]
async fn fixed_window_script_decides_as_the_in_memory_fixed_window() {
    let redis = Redis::start().await;
    compare::<FixedWindow>(&redis, Quota::per_second(5), false, 6).await;
    compare::<FixedWindow>(&redis, Quota::new(8, Duration::from_secs(3)), false, 7).await;
}

#[tokio::test]
async fn sliding_window_script_decides_as_the_in_memory_sliding_window() {
    let redis = Redis::start().await;
    compare::<SlidingWindow>(&redis, Quota::per_second(10), false, 8).await;
    compare::<SlidingWindow>(&redis, Quota::new(4, Duration::from_secs(3)), false, 9).await;
}

#[tokio::test]
async fn stacked_quotas_charge_none_on_a_refusal() {
    let redis = Redis::start().await;
    let store = RedisStore::builder(redis.url())
        .build()
        .expect("valid config");
    let tier = Tier::new("default", [Quota::per_second(10), Quota::per_minute(3)]);
    let ask = Ask {
        cost: 1,
        max_wait: Duration::ZERO,
    };
    let at = BASE;
    for _ in 0..3 {
        let d = store
            .decide_at(Some(&1u32), &tier, ask, at)
            .await
            .expect("decides");
        assert!(d.is_admitted());
    }
    let refused = store
        .decide_at(Some(&1u32), &tier, ask, at)
        .await
        .expect("decides");
    assert!(!refused.is_admitted());
    assert_eq!(refused.policy(), 1);
    assert_eq!(refused.retry_after(), Duration::from_secs(20));
    // The per-second quota was charged 3 times, not 4: its theoretical arrival time is 300 ms
    // after the (explicit) server time.
    let key = store.key_name(Some(&1u32), &tier, 0);
    let mut conn = redis.connection().await;
    let tat: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(tat, format!("{}300000000", BASE.as_secs()));
}

#[tokio::test]
async fn a_cancelled_reservation_is_given_back_in_redis() {
    use weir_rate_limit::Store;
    let redis = Redis::start().await;
    let store = RedisStore::builder(redis.url())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid config");
    let tier = Tier::new("default", [Quota::per_minute(1)]);
    let now = tokio::time::Instant::now();
    let wait = |max: u64| Ask {
        cost: 1,
        max_wait: Duration::from_secs(max),
    };
    let decide = |ask| Store::<u32>::decide(&store, Some(&5), &tier, ask, now);
    assert_eq!(
        decide(wait(0)).await.expect("decides").wait(),
        Duration::ZERO
    );
    let reserved = decide(wait(90)).await.expect("decides");
    assert!(reserved.is_admitted());
    assert!(
        reserved.wait() > Duration::from_secs(59),
        "{:?}",
        reserved.wait()
    );
    // A third request would wait two minutes: refused within 90 s.
    assert!(!decide(wait(90)).await.expect("decides").is_admitted());

    let key = store.key_name(Some(&5u32), &tier, 0);
    let mut conn = redis.connection().await;
    let before: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    // #15.4: the store gives back the reservation it remembers by the end the limiter hands
    // back (the instant passed to `decide` plus the decision's reset); it is the last one.
    Store::<u32>::cancel_reserved(&store, Some(&5), &tier, 1, now + reserved.reset(), now);
    // The give-back is sent by a spawned task: wait for it to land (real Redis, real time).
    let mut after = before.clone();
    for _ in 0..200 {
        after = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (b, a): (u128, u128) = (before.parse().expect("ns"), after.parse().expect("ns"));
    // One emission interval (60 s) given back.
    assert_eq!(b - a, 60_000_000_000);
    assert!(decide(wait(90)).await.expect("decides").is_admitted());
}
