//! On a real three-node Redis Cluster started by the harness: every key of one decision sits in
//! one slot, so the node owning it runs the whole script (no CROSSSLOT), and the others redirect.
//!
//! The store has no Cluster client yet (see the README): each store here talks to one node.

mod support;

use std::time::Duration;

use support::Cluster;
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
        // Exactly one node decides (the owner); the others answer MOVED, which the store
        // treats as a failure (here: fail closed).
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
