//! Skewed local clocks, Redis killed in the middle of traffic (each failure policy), recovery,
//! and TTLs: on a real redis-server started by the harness, and on a real three-node Redis
//! Cluster (where one node is killed: only its keys go to the failure policy).
//!
//! These tests run on the real clock: a real Redis cannot be paused. The only sleeps are the
//! waits for a restarted server to be probed again (a few hundred milliseconds) and the one
//! TTL test (1.1 s, the shortest TTL Redis can show expiring).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Backend;
use tokio::time::Instant;
use weir_rate_limit::{Ask, FixedWindow, Quota, SlidingWindow, Store, Tier, TokenBucket};
use weir_redis::{Event, FailurePolicy, RedisAlgorithm, RedisHandle, RedisStore};

const ASK: Ask = Ask {
    cost: 1,
    max_wait: Duration::ZERO,
};

fn tier(quota: Quota) -> Tier {
    Tier::new("default", [quota])
}

async fn admitted<St: Store<u32>>(
    store: &St,
    key: u32,
    tier: &Tier,
    n: usize,
    now: Instant,
) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        let d = store
            .decide(Some(&key), tier, ASK, now)
            .await
            .expect("a decision");
        admitted += usize::from(d.is_admitted());
    }
    admitted
}

#[tokio::test]
async fn skewed_local_clocks_still_share_one_limit() {
    skewed_clocks(&Backend::single().await).await;
}

#[tokio::test]
async fn skewed_local_clocks_still_share_one_limit_on_a_cluster() {
    skewed_clocks(&Backend::cluster().await).await;
}

async fn skewed_clocks(backend: &Backend) {
    let tier = tier(Quota::per_minute(10));
    let now = Instant::now();
    // Three instances whose clocks disagree by an hour either way: the server's TIME decides.
    let clocks = [
        now.checked_sub(Duration::from_secs(3_600)).unwrap_or(now),
        now,
        now + Duration::from_secs(3_600),
    ];
    let mut total = 0;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(backend.builder().build().expect("valid config"));
    }
    for round in 0..5 {
        for (store, clock) in stores.iter().zip(clocks) {
            total += admitted(store, 1, &tier, 2, clock + Duration::from_secs(round)).await;
        }
    }
    assert_eq!(total, 10);
    // The in-memory store, given the same skewed clocks, would have let the fast instance
    // through again: that is what the Redis store prevents.
}

struct Outage {
    backend: Backend,
    store: RedisStore<weir_rate_limit::Gcra, Box<dyn Fn(&Event<'_>) + Send + Sync>>,
    handle: RedisHandle,
    fallbacks_seen: Arc<AtomicUsize>,
    recoveries_seen: Arc<AtomicUsize>,
    policy: FailurePolicy,
    /// The kind, key digest and slot of the last fallback event.
    last_fallback: Arc<Mutex<Option<(&'static str, String, Option<u16>)>>>,
}

const TIMEOUT: Duration = Duration::from_millis(100);

async fn outage(backend: Backend, policy: FailurePolicy) -> Outage {
    let fallbacks_seen = Arc::new(AtomicUsize::new(0));
    let recoveries_seen = Arc::new(AtomicUsize::new(0));
    let last_fallback = Arc::new(Mutex::new(None));
    let (f, r) = (Arc::clone(&fallbacks_seen), Arc::clone(&recoveries_seen));
    let last = Arc::clone(&last_fallback);
    let observer: Box<dyn Fn(&Event<'_>) + Send + Sync> = Box::new(move |e: &Event<'_>| match e {
        Event::Fallback { key, slot, .. } => {
            f.fetch_add(1, Ordering::Relaxed);
            let kind = weir_core::Event::kind(e);
            *last.lock().expect("lock") = Some((kind, (*key).to_owned(), *slot));
        }
        Event::Recovered { .. } => {
            r.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    });
    let (store, handle) = backend
        .builder()
        .failure_policy(policy)
        .timeout(TIMEOUT)
        .probe_every(Duration::from_millis(200))
        .observer(observer)
        .build_with_handle()
        .expect("valid config");
    Outage {
        backend,
        store,
        handle,
        fallbacks_seen,
        recoveries_seen,
        last_fallback,
        policy,
    }
}

/// Runs the scenario: 4 decisions on Redis, the server holding key 1 killed, 20 decisions
/// (each answered within the timeout), the server restarted, recovery, then limiting on Redis
/// again. On a Cluster, a key on a live node is still decided by Redis, exactly, throughout.
/// Returns the admitted count during the outage.
async fn kill_and_restart(o: &mut Outage) -> usize {
    let limit = tier(Quota::per_hour(10));
    let now = Instant::now();
    assert_eq!(admitted(&o.store, 1, &limit, 4, now).await, 4);
    assert_eq!(o.handle.decisions(), 4);
    let victim = o
        .backend
        .owner(&o.store.key_name(Some(&1u32), &limit, 0))
        .await;
    // On a Cluster: a key whose slot lives on another node.
    let mut live = None;
    if matches!(o.backend, Backend::Cluster(_)) {
        for key in 100u32.. {
            let owner = o
                .backend
                .owner(&o.store.key_name(Some(&key), &limit, 0))
                .await;
            if owner != victim {
                live = Some(key);
                break;
            }
        }
    }

    o.backend.kill(victim);
    let mut during = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let d = o
            .store
            .decide(Some(&1), &limit, ASK, now)
            .await
            .expect("a decision");
        let took = started.elapsed();
        // Answered by the policy, not left hanging on the dead server. The bound is loose (the
        // timeout plus a second of slack) because CI machines are shared and noisy; a hang on a
        // dead connection would take the OS connect timeout, far longer.
        assert!(
            took <= TIMEOUT + Duration::from_secs(1),
            "answered in {took:?}"
        );
        during += usize::from(d.is_admitted());
    }
    assert_eq!(o.handle.fallbacks(), 20);
    assert_eq!(o.fallbacks_seen.load(Ordering::Relaxed), 20);
    // #28.3: the event says which policy decided, for which key (its digest, as in the Redis
    // key name) and which Cluster slot.
    let (kind, digest, slot) = o
        .last_fallback
        .lock()
        .expect("lock")
        .clone()
        .expect("a fallback event");
    let expected = match o.policy {
        FailurePolicy::FailOpen => "fallback_fail_open",
        FailurePolicy::FailClosed => "fallback_fail_closed",
        _ => "fallback_local",
    };
    assert_eq!(kind, expected);
    let name = String::from_utf8(o.store.key_name(Some(&1u32), &limit, 0)).expect("utf-8");
    assert!(
        name.contains(&format!("{{k:{digest}}}")),
        "{name} vs {digest}"
    );
    match &o.backend {
        Backend::Single(_) => assert_eq!(slot, None),
        Backend::Cluster(_) => {
            let mut conn = o.backend.connection((victim + 1) % 3).await;
            let keyslot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .expect("KEYSLOT");
            assert_eq!(slot, Some(keyslot));
        }
    }
    assert!(o.handle.is_degraded());
    assert!(o.handle.errors() >= 1);
    if let Some(key) = live {
        // The live node's keys are not affected: decided by Redis, exactly, within the timeout.
        let (before, fallbacks) = (o.handle.decisions(), o.handle.fallbacks());
        let started = Instant::now();
        assert_eq!(admitted(&o.store, key, &limit, 12, now).await, 10);
        // Loose for the same reason: no decision waited on the dead node.
        assert!(
            started.elapsed() <= 12 * TIMEOUT + Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(o.handle.decisions() - before, 12);
        assert_eq!(o.handle.fallbacks(), fallbacks);
    }

    o.backend.restart(victim).await;
    // Recovery by itself: keep deciding until a probe reaches the new server.
    let deadline = Instant::now() + Duration::from_secs(5);
    while o.handle.is_degraded() {
        assert!(Instant::now() < deadline, "never recovered");
        let _ = o
            .store
            .decide(Some(&1), &limit, ASK, now)
            .await
            .expect("a decision");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(o.recoveries_seen.load(Ordering::Relaxed), 1);
    // Limiting resumes on Redis: exactly 10 per hour for a new key, all decided by Redis.
    let before = o.handle.decisions();
    assert_eq!(admitted(&o.store, 2, &limit, 15, now).await, 10);
    assert_eq!(o.handle.decisions() - before, 15);
    during
}

#[tokio::test]
async fn fail_open_admits_everything_during_the_outage_then_limits_again() {
    let mut o = outage(Backend::single().await, FailurePolicy::FailOpen).await;
    assert_eq!(kill_and_restart(&mut o).await, 20);
}

#[tokio::test]
async fn fail_closed_refuses_everything_during_the_outage_then_limits_again() {
    let mut o = outage(Backend::single().await, FailurePolicy::FailClosed).await;
    assert_eq!(kill_and_restart(&mut o).await, 0);
    // The refusal tells the client when the store will try Redis again.
    o.backend.kill(0);
    let d = o
        .store
        .decide(Some(&3), &tier(Quota::per_hour(10)), ASK, Instant::now())
        .await
        .expect("a decision");
    assert!(!d.is_admitted());
    assert_eq!(d.retry_after(), Duration::from_millis(200));
}

#[tokio::test]
async fn local_fallback_enforces_its_share_of_the_limit_during_the_outage() {
    let mut o = outage(Backend::single().await, FailurePolicy::LocalShare(0.5)).await;
    // Half of 10 per hour, in this instance's memory.
    assert_eq!(kill_and_restart(&mut o).await, 5);
}

#[tokio::test]
async fn a_dead_cluster_node_fails_closed_for_its_keys_only_then_limits_again() {
    let mut o = outage(Backend::cluster().await, FailurePolicy::FailClosed).await;
    assert_eq!(kill_and_restart(&mut o).await, 0);
}

#[tokio::test]
async fn a_dead_cluster_node_falls_back_locally_for_its_keys_only_then_limits_again() {
    let mut o = outage(Backend::cluster().await, FailurePolicy::LocalShare(0.5)).await;
    assert_eq!(kill_and_restart(&mut o).await, 5);
}

async fn touch<A: RedisAlgorithm + Default>(backend: &Backend, quota: Quota) -> RedisStore<A> {
    let store = backend
        .builder()
        .algorithm(A::default())
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .expect("valid config");
    let t = tier(quota);
    for key in 0..5u32 {
        assert!(admitted(&store, key, &t, 3, Instant::now()).await >= 1);
    }
    store
}

#[tokio::test]
async fn no_weir_key_remains_once_the_ttls_pass() {
    no_key_remains(&Backend::single().await).await;
}

#[tokio::test]
async fn no_weir_key_remains_on_any_cluster_node_once_the_ttls_pass() {
    no_key_remains(&Backend::cluster().await).await;
}

async fn no_key_remains(backend: &Backend) {
    // Two seconds: a loaded machine (CI on 2 cores) has room between the traffic and the scan
    // that counts its keys; one second once let the token bucket's keys expire before it.
    let period = Duration::from_secs(2);
    let mut seen = std::collections::BTreeSet::new();
    // Right after each algorithm's traffic, every key there carries a TTL of at most two
    // periods. (Checked per algorithm: on a loaded machine the first keys may expire before the
    // last algorithm is done, which is the point.)
    let _g = touch::<weir_rate_limit::Gcra>(backend, Quota::new(5, period)).await;
    check_ttls(backend, &mut seen).await;
    let _t = touch::<TokenBucket>(backend, Quota::new(5, period)).await;
    check_ttls(backend, &mut seen).await;
    let _f = touch::<FixedWindow>(backend, Quota::new(5, period)).await;
    check_ttls(backend, &mut seen).await;
    let _s = touch::<SlidingWindow>(backend, Quota::new(5, period)).await;
    check_ttls(backend, &mut seen).await;
    assert_eq!(seen.len(), 20, "5 keys for each of 4 algorithms: {seen:?}");
    // The one real sleep: Redis's clock is real. 4.1 s is past every TTL above.
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    assert_eq!(backend.scan("weir:*").await, Vec::new());
}

/// Every weir key now in Redis has a TTL of at most two periods (4 s); remembers their names.
async fn check_ttls(backend: &Backend, seen: &mut std::collections::BTreeSet<String>) {
    // SCAN every server (on a Cluster, every node holds the keys of its own slots).
    for (server, key) in backend.scan("weir:*").await {
        let mut conn = backend.connection(server).await;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        // -2: expired between SCAN and PTTL, and 0: expiring within the millisecond, are fine;
        // -1 (no TTL) never is.
        assert!(ttl == -2 || (0..=4_000).contains(&ttl), "{key}: {ttl} ms");
        seen.insert(key);
    }
}

/// #15.16: three instances on one Redis, each with the default policy and `instances(3)`:
/// Redis is killed, and the fleet still admits at most the limit during the outage (each
/// instance a third of the quota, burst included), and at most the limit plus one burst over
/// the period that spans the switch (what Redis admitted before it, which the local limiters
/// cannot know). With the old default (each instance the whole quota) the fleet admitted 3x.
#[tokio::test]
async fn three_instances_stay_within_the_limit_while_redis_is_down() {
    let mut backend = Backend::single().await;
    let limit = tier(Quota::per_hour(30));
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(
            backend
                .builder()
                .instances(3)
                .timeout(TIMEOUT)
                .build_with_handle()
                .expect("valid config"),
        );
    }
    let now = Instant::now();
    // Before the outage, Redis decides: 4 per instance for key 1, 12 of the 30.
    let mut before = 0;
    for (store, _) in &fleet {
        before += admitted(store, 1, &limit, 4, now).await;
    }
    assert_eq!(before, 12);
    backend.kill(0);
    // During the outage, every instance asks 40 times for key 1 and 40 times for key 2.
    let mut during = [0; 2];
    for (store, handle) in &fleet {
        for (i, key) in [1u32, 2].into_iter().enumerate() {
            let n = admitted(store, key, &limit, 40, now).await;
            // Each instance keeps its third: 10 of the hourly 30.
            assert_eq!(n, 10, "key {key}");
            during[i] += n;
        }
        assert_eq!(handle.fallbacks(), 80);
    }
    // The fleet admits the limit during the outage, not three times it...
    assert_eq!(during, [30, 30]);
    // ...and, over the hour that spans the switch, at most the limit plus one burst.
    assert!(before + during[0] <= 30 + 30);
}
