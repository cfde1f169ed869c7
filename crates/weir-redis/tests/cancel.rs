//! #15.4 on Redis: a reservation dropped in the middle of the wait queue is not given back, so
//! the arrivals after it are never booked on a later reservation's instant; one dropped at the
//! tail is given back. On a real redis-server (real time: the server's clock decides).

mod support;

use std::time::Duration;

use support::Redis;
use tokio::time::Instant;
use weir_rate_limit::{Ask, Decision, Gcra, Quota, Store, Tier, TokenBucket};
use weir_redis::{RedisAlgorithm, RedisStore};

const MINUTE: Duration = Duration::from_secs(60);

fn ask(max_wait: Duration) -> Ask {
    Ask { cost: 1, max_wait }
}

/// Waits (real time: the give-back is sent by a spawned task) until `key` no longer holds
/// `before`, and returns what it holds.
async fn changed(redis: &Redis, key: &[u8], before: &str) -> String {
    let mut conn = redis.connection().await;
    for _ in 0..400 {
        let now: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        if now != before {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the give-back never landed");
}

async fn get(redis: &Redis, key: &[u8]) -> String {
    let mut conn = redis.connection().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("GET")
}

async fn mid_queue_drop<A: RedisAlgorithm + Default>(redis: &Redis) {
    let store = RedisStore::builder(redis.url())
        .algorithm(A::default())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid config");
    let tier = Tier::new("default", [Quota::per_minute(1)]);
    let decide = |key: u32, max_wait| {
        let now = Instant::now();
        let future = Store::<u32>::decide(&store, Some(&key), &tier, ask(max_wait), now);
        async move {
            let d: Decision = future.await.expect("decides");
            (d, now + d.reset())
        }
    };
    let wait = 10 * MINUTE;
    // One at once, then a queue of three, a minute apart.
    let (a, _) = decide(5, wait).await;
    assert!(a.is_admitted() && a.wait().is_zero());
    let (b, _) = decide(5, wait).await;
    let (c, c_end) = decide(5, wait).await;
    let (d, _) = decide(5, wait).await;
    for (earlier, later) in [(&b, &c), (&c, &d)] {
        assert!(later.is_admitted());
        assert!(later.wait() > earlier.wait() + MINUTE - Duration::from_secs(1));
    }

    // A sentinel reservation of another key, dropped at its tail: given back, observably.
    let (_, _) = decide(6, wait).await;
    let (sentinel, sentinel_end) = decide(6, wait).await;
    assert!(sentinel.is_admitted() && !sentinel.wait().is_zero());
    let sentinel_key = store.key_name(Some(&6u32), &tier, 0);
    let sentinel_before = get(redis, &sentinel_key).await;

    // C is dropped in the middle of the queue (D is booked after it), then the sentinel.
    let key = store.key_name(Some(&5u32), &tier, 0);
    let before = get(redis, &key).await;
    Store::<u32>::cancel_reserved(&store, Some(&5), &tier, 1, c_end, Instant::now());
    Store::<u32>::cancel_reserved(&store, Some(&6), &tier, 1, sentinel_end, Instant::now());
    // The sentinel's give-back was sent after C's, on the same connection: once it landed,
    // C's was handled too.
    let _ = changed(redis, &sentinel_key, &sentinel_before).await;
    assert_eq!(
        get(redis, &key).await,
        before,
        "a mid-queue turn is not given back"
    );

    // The next arrival is booked after D, never on D's instant: at most one a minute.
    let (e, e_end) = decide(5, wait).await;
    assert!(e.is_admitted());
    assert!(
        e.wait() > d.wait() + MINUTE - Duration::from_secs(1),
        "{}: E waits {:?}, D {:?}",
        A::TAG,
        e.wait(),
        d.wait()
    );

    // E, at the tail, dropped: given back, and the next arrival takes its turn.
    let before = get(redis, &key).await;
    Store::<u32>::cancel_reserved(&store, Some(&5), &tier, 1, e_end, Instant::now());
    let _ = changed(redis, &key, &before).await;
    let (f, _) = decide(5, wait).await;
    assert!(f.is_admitted());
    assert!(
        f.wait() < e.wait() + Duration::from_secs(1),
        "{:?}",
        f.wait()
    );
    assert!(f.wait() > d.wait() + MINUTE - Duration::from_secs(1));
}

#[tokio::test]
async fn a_reservation_dropped_mid_queue_is_never_booked_twice_gcra() {
    let redis = Redis::start().await;
    mid_queue_drop::<Gcra>(&redis).await;
}

#[tokio::test]
async fn a_reservation_dropped_mid_queue_is_never_booked_twice_token_bucket() {
    let redis = Redis::start().await;
    mid_queue_drop::<TokenBucket>(&redis).await;
}
