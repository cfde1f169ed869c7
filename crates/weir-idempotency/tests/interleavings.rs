//! #23: random interleavings of duplicate requests, completions, failures, cancellations,
//! crashes and expiries against the memory store: each key's handler runs at most once at a
//! time, and never again within the TTL of a kept response; a crashed instance's claim blocks
//! its key (409) until its lease, last renewed before the crash, runs out, and not after.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use proptest::prelude::*;
use weir_idempotency::{Claim, Digest, IdempotencyStore, MemoryStore, StoredResponse, Token};

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
enum Op {
    /// A request with key `k` (fingerprint `fp`) arrives.
    Arrive { k: u8, fp: u8 },
    /// The `i`-th running handler finishes: its response kept (`true`) or not (a 5xx).
    Complete { i: usize, kept: bool },
    /// The `i`-th running handler's request is cancelled (or its handler panics).
    Cancel { i: usize },
    /// The `i`-th running handler's instance crashes: no release, no renewal.
    Crash { i: usize },
    /// Time passes (at most a third of the lease: running handlers renew in between).
    Advance { secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..2).prop_map(|(k, fp)| Op::Arrive { k, fp }),
        2 => (0usize..4, any::<bool>()).prop_map(|(i, kept)| Op::Complete { i, kept }),
        1 => (0usize..4).prop_map(|i| Op::Cancel { i }),
        1 => (0usize..4).prop_map(|i| Op::Crash { i }),
        2 => (0u64..=10).prop_map(|secs| Op::Advance { secs }),
    ]
}

fn digest(tag: u8, n: u8) -> Digest {
    let mut bytes = [0; 20];
    bytes[0] = tag;
    bytes[1] = n;
    Digest::from_bytes(bytes)
}

struct Running {
    k: u8,
    token: Token,
    /// When its lease runs out unless renewed.
    until: tokio::time::Instant,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_key_runs_at_most_once_per_ttl_unless_its_outcome_allows_a_retry(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = MemoryStore::new(100, 1 << 20);
            let mut running: Vec<Running> = Vec::new();
            // Per key: the fingerprint of its live claim or kept response, and until when a
            // kept response must be replayed.
            let mut kept_until: HashMap<u8, (tokio::time::Instant, u8)> = HashMap::new();
            let mut first_fp: HashMap<u8, u8> = HashMap::new();
            // Per key: when the claim of a crashed instance runs out.
            let mut crashed: HashMap<u8, tokio::time::Instant> = HashMap::new();
            for op in ops {
                let now = tokio::time::Instant::now();
                match op {
                    Op::Arrive { k, fp } => {
                        let claim = store.claim(digest(b'k', k), digest(b'f', fp), LEASE).await;
                        let live = running.iter().any(|r| r.k == k);
                        let kept = kept_until.get(&k).filter(|(until, _)| now < *until);
                        let orphan = crashed.get(&k).is_some_and(|until| now < *until);
                        match claim {
                            Claim::Claimed(token) => {
                                prop_assert!(!live, "a second run of key {k} while one runs");
                                prop_assert!(kept.is_none(), "a run of key {k} within its TTL");
                                prop_assert!(!orphan, "key {k} taken over within a crashed lease");
                                crashed.remove(&k);
                                first_fp.insert(k, fp);
                                running.push(Running { k, token, until: now + LEASE });
                            }
                            Claim::Replay(stored) => {
                                let (_, kept_fp) = kept.expect("a replay needs a kept response");
                                prop_assert_eq!(*kept_fp, fp);
                                prop_assert_eq!(stored.body().as_ref(), &[k, fp][..]);
                            }
                            Claim::InFlight => {
                                prop_assert!(live || orphan, "409 for key {k}, no claim held");
                                prop_assert_eq!(first_fp.get(&k), Some(&fp));
                            }
                            Claim::Mismatch => {
                                prop_assert!(live || orphan || kept.is_some(), "422, no entry");
                                prop_assert_ne!(first_fp.get(&k), Some(&fp));
                            }
                            other => prop_assert!(false, "unexpected {other:?}"),
                        }
                    }
                    Op::Complete { i, kept } => {
                        if i < running.len() {
                            let r = running.remove(i);
                            let scope = digest(b'k', r.k);
                            if kept {
                                let fp = first_fp[&r.k];
                                let response = StoredResponse::new(
                                    StatusCode::OK,
                                    HeaderMap::new(),
                                    Bytes::from(vec![r.k, fp]),
                                );
                                store.complete(scope, r.token, Some(Arc::new(response)), TTL).await;
                                kept_until.insert(r.k, (now + TTL, fp));
                            } else {
                                store.release(scope, r.token);
                            }
                        }
                    }
                    Op::Cancel { i } => {
                        if i < running.len() {
                            let r = running.remove(i);
                            store.release(digest(b'k', r.k), r.token);
                        }
                    }
                    Op::Crash { i } => {
                        if i < running.len() {
                            let r = running.remove(i);
                            crashed.insert(r.k, r.until);
                        }
                    }
                    Op::Advance { secs } => {
                        for r in &mut running {
                            store.renew(digest(b'k', r.k), r.token, LEASE);
                            r.until = now + LEASE;
                        }
                        tokio::time::advance(Duration::from_secs(secs)).await;
                    }
                }
            }
            Ok(())
        })?;
    }
}
