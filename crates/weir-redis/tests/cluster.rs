//! On a real three-node Redis Cluster started by the harness: every key of one decision sits in
//! one slot, so the node owning it runs the whole script (no CROSSSLOT), and the others redirect;
//! the Cluster store routes each decision to its node and reloads the script node by node.
//!
//! The fleet, outage and TTL scenarios run on a Cluster too, in `fleet.rs` and `outage.rs`.

mod support;

use std::time::Duration;

use support::{Backend, Cluster};
use tokio::time::Instant;
use weir_rate_limit::{Ask, Quota, Store, Tier};
use weir_redis::{FailurePolicy, RedisStore};

#[tokio::test]
async fn one_decision_is_one_slot_and_runs_whole_on_its_node() {
    let cluster = Cluster::start().await;
    let tier = Tier::new(
        "gold",
        [Quota::per_minute(5), Quota::per_day(100).burst(20)],
    );
    let ask = Ask {
        cost: 1,
        max_wait: Duration::ZERO,
    };
    let mut conn = cluster.nodes[0].connection().await;
    for user in ["alice", "bob", "carol", "dave"] {
        let key = user.to_owned();
        let mut stores = Vec::new();
        for node in &cluster.nodes {
            stores.push(
                RedisStore::builder(node.url())
                    .failure_policy(FailurePolicy::FailClosed)
                    .timeout(Duration::from_secs(1))
                    .build_with_handle()
                    .expect("valid config"),
            );
        }
        // Both keys of the decision hash to one slot.
        let (store, _) = &stores[0];
        let mut slots = Vec::new();
        for i in 0..2 {
            let name = store.key_name(Some(&key), &tier, i);
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(name)
                .query_async(&mut conn)
                .await
                .expect("KEYSLOT");
            slots.push(slot);
        }
        assert_eq!(slots[0], slots[1], "{user}");
        // A single-node store pointed at one node of a Cluster: exactly one node decides (the
        // owner); the others answer MOVED, which that store treats as a failure (here: fail
        // closed). `RedisStore::cluster` is the store for a Cluster.
        let mut owners = Vec::new();
        for (i, (store, handle)) in stores.iter().enumerate() {
            let d = store
                .decide(Some(&key), &tier, ask, Instant::now())
                .await
                .expect("a decision");
            if handle.decisions() == 1 {
                assert!(d.is_admitted());
                owners.push(i);
            } else {
                assert_eq!(handle.errors(), 1);
                assert!(!d.is_admitted());
            }
        }
        assert_eq!(owners.len(), 1, "{user}: {owners:?}");
        // On the owner, the stacked quotas hold: 4 more of the per-minute 5, then refusals.
        let (owner, _) = &stores[owners[0]];
        let mut admitted = 0;
        for _ in 0..10 {
            let d = owner
                .decide(Some(&key), &tier, ask, Instant::now())
                .await
                .expect("a decision");
            admitted += usize::from(d.is_admitted());
        }
        assert_eq!(admitted, 4, "{user}");
    }
}

#[tokio::test]
async fn the_cluster_store_routes_every_key_and_reloads_the_script_per_node() {
    let backend = Backend::cluster().await;
    let (store, handle) = backend
        .builder()
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_secs(1))
        .build_with_handle()
        .expect("valid config");
    let tier = Tier::new("default", [Quota::per_hour(3)]);
    let ask = Ask {
        cost: 1,
        max_wait: Duration::ZERO,
    };
    let run = |key: u32| {
        let store = store.clone();
        let tier = tier.clone();
        async move {
            let mut admitted = 0;
            for _ in 0..5 {
                let d = store
                    .decide(Some(&key), &tier, ask, Instant::now())
                    .await
                    .expect("a decision");
                admitted += usize::from(d.is_admitted());
            }
            admitted
        }
    };
    // Keys until every node owns at least one: each gets exactly its 3, decided by Redis.
    let cover = |from: u32| {
        let run = &run;
        let (store, tier, backend) = (&store, &tier, &backend);
        async move {
            let mut owners = [false; 3];
            let mut key = from;
            while owners.contains(&false) {
                assert_eq!(run(key).await, 3, "key {key}");
                let name = store.key_name(Some(&key), tier, 0);
                owners[backend.owner(&name).await] = true;
                key += 1;
            }
            key
        }
    };
    let key = cover(0).await;
    assert_eq!(handle.decisions(), u64::from(key) * 5);
    // Every node forgets the script: the next decision on each reloads it there (NOSCRIPT, then
    // the script's source by EVAL, routed like the EVALSHA: one per node), with no failure.
    let mut evals = Vec::new();
    for node in 0..3 {
        let mut conn = backend.connection(node).await;
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .expect("SCRIPT FLUSH");
        evals.push(eval_calls(&mut conn).await);
    }
    let before = handle.decisions();
    let end = cover(key).await;
    assert_eq!(handle.decisions() - before, u64::from(end - key) * 5);
    assert_eq!((handle.errors(), handle.fallbacks()), (0, 0));
    for (node, before) in evals.into_iter().enumerate() {
        let mut conn = backend.connection(node).await;
        assert_eq!(eval_calls(&mut conn).await, before + 1, "node {node}");
    }
}

/// How many `EVAL` commands a node has run (`INFO commandstats`).
async fn eval_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_eval:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}
