//! Model tests: the keyed map's insert, eviction and overflow under shuttle's scheduler, which
//! switches threads before every operation on the map's atomics and shard locks (the
//! primitives of `sync.rs`). Callers race on a few keys against a map of two keys whose keys go
//! idle between rounds (so requests sweep them out while others insert); each call counts one
//! on the state it was given (a stored key's or the overflow's), and an evicted key's count is
//! kept when it leaves. Whatever the interleaving:
//!
//! - the map never holds more keys than its bound, and its count of keys is the keys it holds;
//! - every call is counted exactly once: the counts of the keys held, of the keys evicted and of
//!   the overflow add up to the calls (no call lost with a key evicted under it, none counted
//!   twice on a key inserted twice);
//! - every eviction is counted (`evicted()` is the keys that left through `on_evict`).
//!
//! Explored by shuttle's PCT scheduler (depth 3) and its random scheduler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use shuttle::thread;
use tokio::time::Instant;

use super::{KeyedConfig, KeyedMap};

/// `callers` threads, `rounds` calls each, on keys `(caller + round) % keys` of a map of
/// `max_keys` keys idle after 10 ms; round `r` happens at `15 ms * r`, so a key of an earlier
/// round is idle.
fn race(callers: u32, rounds: u32, keys: u32, max_keys: usize) {
    let epoch = Instant::now();
    let evicted = Arc::new(AtomicU64::new(0));
    let evictions = Arc::new(AtomicU64::new(0));
    let map = {
        let evicted = Arc::clone(&evicted);
        let evictions = Arc::clone(&evictions);
        KeyedMap::new(
            KeyedConfig::new()
                .max_keys(max_keys)
                .idle_timeout(Duration::from_millis(10)),
            AtomicU32::new(0),
        )
        .counting_from(epoch)
        .on_evict(move |_key: &u32, count: &AtomicU32| {
            evicted.fetch_add(u64::from(count.load(Ordering::SeqCst)), Ordering::SeqCst);
            evictions.fetch_add(1, Ordering::SeqCst);
        })
    };
    let map = Arc::new(map);
    let threads: Vec<_> = (0..callers)
        .map(|caller| {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                for round in 0..rounds {
                    let now_ms = 15 * u64::from(round);
                    let now = epoch + Duration::from_millis(now_ms);
                    map.with_millis(
                        (caller + round) % keys,
                        now,
                        now_ms,
                        |key| (key, AtomicU32::new(0)),
                        |count| count.fetch_add(1, Ordering::SeqCst),
                    );
                    let len = map.len();
                    assert!(len <= max_keys, "{len} keys held, at most {max_keys}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a caller ran");
    }
    let mut held = 0;
    let mut counted = 0;
    map.for_each(|_, count| {
        held += 1;
        counted += u64::from(count.load(Ordering::SeqCst));
    });
    assert_eq!(map.len(), held, "the count of keys against the keys held");
    assert!(held <= max_keys);
    assert_eq!(map.evicted(), evictions.load(Ordering::SeqCst));
    let overflow = u64::from(map.overflow().load(Ordering::SeqCst));
    assert_eq!(
        counted + evicted.load(Ordering::SeqCst) + overflow,
        u64::from(callers * rounds),
        "calls counted on held keys, evicted keys and the overflow"
    );
}

#[test]
fn three_callers_three_keys_two_places() {
    shuttle::check_pct(|| race(3, 2, 3, 2), 1_000, 3);
}

#[test]
fn two_callers_one_key() {
    shuttle::check_pct(|| race(2, 3, 1, 1), 1_000, 3);
}

#[test]
fn three_callers_four_keys_three_places_random() {
    shuttle::check_random(|| race(3, 2, 4, 3), 1_000);
}
