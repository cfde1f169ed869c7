use std::sync::atomic::AtomicU32;

use proptest::prelude::*;

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use super::map::millis_of;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

fn fresh(k: u32) -> (u32, AtomicU32) {
    (k, AtomicU32::new(0))
}

fn bump(map: &KeyedMap<u32, AtomicU32>, key: u32, now: Instant) -> u32 {
    map.with(key, now, fresh, |c| c.fetch_add(1, Ordering::Relaxed) + 1)
}

/// #15.9: the largest bound a map can be given makes a map like any other (the shard count
/// overflowed computing the next power of two of `usize::MAX`).
#[tokio::test(start_paused = true)]
async fn the_largest_max_keys_works() {
    let map = KeyedMap::new(KeyedConfig::new().max_keys(usize::MAX), AtomicU32::new(0));
    let now = Instant::now();
    assert_eq!(bump(&map, 1, now), 1);
    assert_eq!(bump(&map, 1, now), 2);
    assert_eq!(KeyedConfig::new().max_keys(0).get_max_keys(), 1);
}

/// A prehashed key in shard `shard` (the hash's high half picks it), distinct for each `n`.
fn in_shard(shard: u64, n: u64) -> u64 {
    (shard << 32) | n
}

fn bump_prehashed(map: &KeyedMap<u64, AtomicU32, Prehashed>, key: u64, now: Instant) -> u32 {
    map.with(
        key,
        now,
        |k| (k, AtomicU32::new(0)),
        |c| c.fetch_add(1, Ordering::Relaxed) + 1,
    )
}

#[tokio::test(start_paused = true)]
async fn keys_have_their_own_state() {
    let map = KeyedMap::new(KeyedConfig::new(), AtomicU32::new(0));
    let now = Instant::now();
    assert_eq!(bump(&map, 1, now), 1);
    assert_eq!(bump(&map, 1, now), 2);
    assert_eq!(bump(&map, 2, now), 1);
    assert_eq!(map.len(), 2);
    let mut seen = Vec::new();
    map.for_each(|k, v| seen.push((*k, v.load(Ordering::Relaxed))));
    seen.sort_unstable();
    assert_eq!(seen, [(1, 2), (2, 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_full_map_sends_new_keys_to_the_overflow_state() {
    let map = KeyedMap::new(KeyedConfig::new().max_keys(4), AtomicU32::new(0));
    let now = Instant::now();
    for key in 0..1000 {
        bump(&map, key, now);
    }
    assert_eq!(map.len(), 4, "the first 4 keys fill the map");
    let mut stored = Vec::new();
    map.for_each(|k, v| stored.push((*k, v.load(Ordering::Relaxed))));
    stored.sort_unstable();
    assert_eq!(stored, [(0, 1), (1, 1), (2, 1), (3, 1)]);
    // Every other key was counted on the shared overflow state.
    assert_eq!(map.overflow().load(Ordering::Relaxed), 996);
    // A key that is stored keeps its own state.
    assert_eq!(bump(&map, 2, now), 2);
}

#[tokio::test(start_paused = true)]
async fn max_keys_bounds_the_whole_map_not_each_shard() {
    // Keys of one shard: with a per-shard share of the bound, the second would overflow.
    for max_keys in [2, 3, 5] {
        let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
            KeyedConfig::new().max_keys(max_keys),
            AtomicU32::new(0),
            Prehashed,
        );
        let now = Instant::now();
        for n in 0..max_keys as u64 {
            assert_eq!(bump_prehashed(&map, in_shard(0, n), now), 1, "key {n}");
            assert_eq!(
                bump_prehashed(&map, in_shard(0, n), now),
                2,
                "key {n} stored"
            );
        }
        assert_eq!(map.len(), max_keys);
        assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
        // Full: the next key, whatever its shard, shares the overflow state.
        assert_eq!(bump_prehashed(&map, in_shard(1, 99), now), 1);
        assert_eq!(bump_prehashed(&map, in_shard(0, 99), now), 2);
        assert_eq!(map.len(), max_keys);
    }
}

#[tokio::test(start_paused = true)]
async fn two_maps_can_share_one_bound() {
    let config = KeyedConfig::new().max_keys(3);
    let one = KeyedMap::new(config, AtomicU32::new(0));
    let two = KeyedMap::new(config, AtomicU32::new(0)).share_bound_with(&one);
    let now = Instant::now();
    bump(&one, 1, now);
    bump(&two, 2, now);
    bump(&one, 3, now);
    assert_eq!((one.len(), two.len()), (2, 1));
    // Three keys between them: a fourth, in either map, shares that map's overflow state.
    assert_eq!(bump(&two, 4, now), 1);
    assert_eq!(bump(&two, 4, now), 2);
    assert_eq!(two.overflow().load(Ordering::Relaxed), 2);
    assert_eq!((one.len(), two.len()), (2, 1));
    // A map dropped gives its keys' room back.
    drop(two);
    assert_eq!(bump(&one, 5, now), 1);
    assert_eq!(one.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_new_key_takes_the_room_of_an_idle_key_in_another_shard() {
    let idle = Duration::from_secs(60);
    let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
        KeyedConfig::new().max_keys(2).idle_timeout(idle),
        AtomicU32::new(0),
        Prehashed,
    );
    let start = Instant::now();
    bump_prehashed(&map, in_shard(0, 1), start);
    bump_prehashed(&map, in_shard(1, 1), start);
    // The key of shard 0 stays busy; the key of shard 1 goes idle.
    let later = start + 2 * idle;
    bump_prehashed(&map, in_shard(0, 1), later);
    // A new key of shard 0: its own shard has nothing idle, shard 1 has.
    assert_eq!(bump_prehashed(&map, in_shard(0, 2), later), 1);
    assert_eq!(bump_prehashed(&map, in_shard(0, 2), later), 2, "stored");
    assert_eq!(map.len(), 2);
    assert_eq!(map.evicted(), 1);
    assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
}

/// #15.17: a full map makes room first with keys whose state carries no information, long
/// before their idle timeout, so a flood of one-request keys does not lock new keys out.
#[tokio::test(start_paused = true)]
async fn a_full_map_evicts_spare_state_before_the_idle_timeout() {
    let idle = Duration::from_secs(600);
    let map = KeyedMap::new(
        KeyedConfig::new().max_keys(64).idle_timeout(idle),
        AtomicU32::new(0),
    )
    // A count of 1 is "at rest" here; 2 and more carry information.
    .evict_when_full_if(|count, _| count.load(Ordering::Relaxed) <= 1);
    let start = Instant::now();
    bump(&map, 0, start);
    bump(&map, 0, start);
    for key in 1..64 {
        bump(&map, key, start);
    }
    assert_eq!(map.len(), 64);
    // Two seconds later (far less than the idle timeout), new keys find room.
    let later = start + Duration::from_secs(2);
    for key in 1_000..1_010 {
        bump(&map, key, later);
        assert_eq!(bump(&map, key, later), 2, "key {key} has its own state");
    }
    assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
    // The key with information was kept.
    assert_eq!(bump(&map, 0, later), 3);
}

/// `peek` reads a stored key without storing a new one; `remove` forgets one and gives its
/// room back.
#[tokio::test(start_paused = true)]
async fn peek_and_remove_one_key() {
    let map = KeyedMap::new(KeyedConfig::new().max_keys(1), AtomicU32::new(0));
    let now = Instant::now();
    assert_eq!(map.peek(&1, |c| c.load(Ordering::Relaxed)), None);
    assert!(map.is_empty(), "peek stores nothing");
    bump(&map, 1, now);
    bump(&map, 1, now);
    assert_eq!(map.peek(&1, |c| c.load(Ordering::Relaxed)), Some(2));
    assert!(map.remove(&1));
    assert!(!map.remove(&1));
    assert_eq!((map.len(), map.evicted()), (0, 0));
    // Its room is back: a new key is stored, not sent to the overflow state.
    assert_eq!(bump(&map, 2, now), 1);
    assert_eq!(bump(&map, 2, now), 2);
    assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
}

/// The caller of `with_millis_or` decides what a key that finds the map full gets.
#[tokio::test(start_paused = true)]
async fn with_millis_or_lets_the_caller_place_overflowing_keys() {
    let map = KeyedMap::new(KeyedConfig::new().max_keys(1), AtomicU32::new(0));
    let spread = [AtomicU32::new(0), AtomicU32::new(0)];
    let now = Instant::now();
    let at = |key: u32| {
        map.with_millis_or(key, now, 0, fresh, |found| {
            let count = found.unwrap_or_else(|key| &spread[key as usize % 2]);
            count.fetch_add(1, Ordering::Relaxed) + 1
        })
    };
    assert_eq!(at(7), 1);
    assert_eq!(at(7), 2, "stored");
    assert_eq!(at(2), 1);
    assert_eq!(at(3), 1, "another overflow state");
    assert_eq!(at(4), 2);
    assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_by_requests_alone() {
    let idle = Duration::from_secs(60);
    let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0));
    let start = Instant::now();
    for key in 0..10_000 {
        bump(&map, key, start);
    }
    assert_eq!(map.len(), 10_000);
    // Only one busy key keeps coming; the sweeps ride on its requests.
    let mut now = start;
    for _ in 0..(map.shards.len() * 4) {
        now += idle;
        bump(&map, 424_242, now);
    }
    assert_eq!(map.len(), 1, "only the busy key is left");
}

#[tokio::test(start_paused = true)]
async fn a_caller_counting_from_an_earlier_epoch_gets_the_same_idleness() {
    let idle = Duration::from_secs(60);
    let start = Instant::now();
    let epoch = start - Duration::from_secs(3_600);
    let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0))
        .counting_from(epoch);
    // The caller's own milliseconds since `epoch`, as a rate limiter converts its clock.
    let ms = |now: Instant| u64::try_from((now - epoch).as_millis()).expect("fits");
    let bump_at = |key: u32, now: Instant| {
        map.with_millis(key, now, ms(now), fresh, |c| {
            c.fetch_add(1, Ordering::Relaxed) + 1
        })
    };
    assert_eq!(bump_at(1, start), 1);
    assert_eq!(bump_at(2, start), 1);
    // A request right after the map was made sweeps nothing: the map counts it as swept.
    assert_eq!(map.evicted(), 0);
    assert_eq!(bump_at(1, start + Duration::from_secs(50)), 2);
    let later = start + Duration::from_secs(70);
    assert_eq!(map.sweep_now(later), 1, "2 is idle, 1 was seen 20 s ago");
    assert_eq!(bump_at(1, later), 3);
    assert_eq!(bump_at(2, later), 1, "2 was forgotten");
    // `with` converts the clock itself, to the same milliseconds.
    assert_eq!(bump(&map, 1, later), 4);
}

#[tokio::test(start_paused = true)]
async fn a_recently_seen_key_is_kept() {
    let idle = Duration::from_secs(60);
    let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0));
    let start = Instant::now();
    bump(&map, 1, start);
    bump(&map, 2, start);
    bump(&map, 1, start + Duration::from_secs(50));
    assert_eq!(map.sweep_now(start + Duration::from_secs(70)), 1);
    assert_eq!(bump(&map, 1, start + Duration::from_secs(70)), 3);
    assert_eq!(
        bump(&map, 2, start + Duration::from_secs(70)),
        1,
        "2 was forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_seen_after_the_sweeps_clock_read_is_kept() {
    // A request may read the clock after a concurrent sweep did: its stamp is a little
    // ahead of the sweep's `now`, which must not look like a key idle for 49 days.
    let map = KeyedMap::new(
        KeyedConfig::new().idle_timeout(Duration::from_secs(1)),
        AtomicU32::new(0),
    );
    let start = Instant::now();
    bump(&map, 1, start + Duration::from_secs(10));
    assert_eq!(map.sweep_now(start + Duration::from_secs(9)), 0);
    assert_eq!(map.sweep_now(start + Duration::from_millis(10_999)), 0);
    assert_eq!(map.sweep_now(start + Duration::from_secs(11)), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_timeouts_longer_than_the_stamps_range_still_hold() {
    // 100 days is more milliseconds than 32 bits count: stamps use coarser ticks.
    let day = Duration::from_secs(86_400);
    let map = KeyedMap::new(
        KeyedConfig::new().idle_timeout(100 * day),
        AtomicU32::new(0),
    );
    let start = Instant::now();
    bump(&map, 1, start);
    bump(&map, 2, start + 50 * day);
    assert_eq!(map.sweep_now(start + 99 * day), 0);
    assert_eq!(map.sweep_now(start + 101 * day), 1, "1 idle for 101 days");
    assert_eq!(map.sweep_now(start + 149 * day), 0, "2 idle for 99 days");
    assert_eq!(map.sweep_now(start + 151 * day), 1);
}

#[tokio::test(start_paused = true)]
async fn evict_if_keeps_state_that_is_not_at_rest() {
    let idle = Duration::from_secs(1);
    let map = KeyedMap::new(KeyedConfig::new().idle_timeout(idle), AtomicU32::new(0))
        .evict_if(|count, _| count.load(Ordering::Relaxed) < 2);
    let start = Instant::now();
    bump(&map, 1, start);
    bump(&map, 2, start);
    bump(&map, 2, start);
    assert_eq!(map.sweep_now(start + Duration::from_secs(5)), 1);
    assert_eq!(bump(&map, 2, start + Duration::from_secs(5)), 3, "2 kept");
}

#[tokio::test(start_paused = true)]
async fn by_state_leaves_idleness_to_the_state() {
    // The state is the time of its key's last request, in milliseconds since `start`.
    let start = Instant::now();
    let idle = Duration::from_secs(60);
    let map: KeyedMap<u32, AtomicU64, RandomState, ByState> = KeyedMap::with_idleness(
        KeyedConfig::new().idle_timeout(idle),
        AtomicU64::new(0),
        RandomState::new(),
        ByState,
    )
    .evict_if(move |seen, now| {
        let seen = start + Duration::from_millis(seen.load(Ordering::Relaxed));
        now.saturating_duration_since(seen) >= idle
    });
    let request = |key: u32, at: Duration| {
        map.with(
            key,
            start + at,
            |k| (k, AtomicU64::new(0)),
            |s| s.store(millis_of(at), Ordering::Relaxed),
        );
    };
    request(1, Duration::ZERO);
    request(2, Duration::ZERO);
    request(1, Duration::from_secs(30));
    assert_eq!(map.sweep_now(start + Duration::from_secs(61)), 1);
    let mut left = Vec::new();
    map.for_each(|k, _| left.push(*k));
    assert_eq!(left, [1]);
    assert_eq!(map.sweep_now(start + Duration::from_secs(91)), 1);
    assert!(map.is_empty());
}

#[tokio::test(start_paused = true)]
async fn evictions_are_counted_and_reported() {
    use std::sync::Arc;

    let reported = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&reported);
    let map = KeyedMap::new(
        KeyedConfig::new().idle_timeout(Duration::from_secs(1)),
        AtomicU32::new(0),
    )
    .on_evict(move |_, _| {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    let start = Instant::now();
    for key in 0..10 {
        bump(&map, key, start);
    }
    assert_eq!(map.sweep_now(start + Duration::from_secs(2)), 10);
    assert_eq!(map.evicted(), 10);
    assert_eq!(reported.load(Ordering::Relaxed), 10);
    assert!(map.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_flood_against_a_full_map_does_not_sweep_on_every_miss() {
    use std::sync::Arc;

    // Stored keys are idle but never evictable, so every sweep re-examines all of them:
    // counting examinations counts the work sweeps do.
    let examined = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&examined);
    let idle = Duration::from_secs(1);
    let map = KeyedMap::new(
        KeyedConfig::new().max_keys(1_000).idle_timeout(idle),
        AtomicU32::new(0),
    )
    .evict_if(move |_, _| {
        counted.fetch_add(1, Ordering::Relaxed);
        false
    });
    let start = Instant::now();
    for key in 0..1_000 {
        bump(&map, key, start);
    }
    // 100 000 new keys in one second, once the stored ones are idle.
    for key in 0..100_000u32 {
        let now = start + 2 * idle + Duration::from_micros(u64::from(key) * 10);
        bump(&map, 1_000_000 + key, now);
    }
    assert_eq!(map.len(), 1_000, "bounded");
    // A sweep per miss would examine ~`1 000 / shards` entries 100 000 times (millions);
    // at most one sweep per shard per idle/16 examines each stored entry ~16 times.
    let examined = examined.load(Ordering::Relaxed);
    assert!(examined <= 20 * 1_000, "{examined} examinations");
}

#[tokio::test(start_paused = true)]
async fn prehashed_keys_work_like_any_other() {
    let sip = RandomState::new();
    let map: KeyedMap<u64, AtomicU32, Prehashed> =
        KeyedMap::with_hasher(KeyedConfig::new(), AtomicU32::new(0), Prehashed);
    let now = Instant::now();
    for user in ["ann", "bob", "ann", "cy", "ann"] {
        let key = sip.hash_one(user);
        map.with(
            key,
            now,
            |k| (k, AtomicU32::new(0)),
            |c| {
                c.fetch_add(1, Ordering::Relaxed);
            },
        );
    }
    assert_eq!(map.len(), 3);
    let ann = map.with(
        sip.hash_one("ann"),
        now,
        |k| (k, AtomicU32::new(0)),
        |c| c.load(Ordering::Relaxed),
    );
    assert_eq!(ann, 3);
    assert_eq!(Prehashed.hash_one(42u64), 42, "a u64 is its own hash");
    assert_ne!(Prehashed.hash_one("ab"), Prehashed.hash_one("ba"));
}

#[test]
fn bytes_per_key_counts_key_state_and_bookkeeping() {
    // An address key: the 4-byte stamp fills the key's padding (17 + 4 bytes, then the
    // 8-byte state): a 32-byte entry, 37 bytes with the control byte at 7/8 load.
    let ip = KeyedMap::<std::net::IpAddr, AtomicU64>::bytes_per_key();
    assert_eq!(ip, (32 + 1) * 8 / 7);
    // A prehashed key whose state tells its own idleness: 8 + 8 bytes, as small as a map of
    // `u64` to `u64` gets.
    let hashed = KeyedMap::<u64, AtomicU64, Prehashed, ByState>::bytes_per_key();
    assert_eq!(hashed, (16 + 1) * 8 / 7);
}

#[test]
fn is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<KeyedMap<String, AtomicU32>>();
    check::<KeyedMap<u64, AtomicU32, Prehashed, ByState>>();
}

proptest! {
    /// With no key idle, the map stores exactly the first `max_keys` distinct keys, each
    /// with its own count, and counts every other request on the overflow state.
    #[test]
    fn the_first_max_keys_keys_are_stored_and_no_more(
        max_keys in 1_usize..12,
        keys in proptest::collection::vec((0_u64..4, 0_u64..8), 0..64),
    ) {
        let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
            KeyedConfig::new().max_keys(max_keys),
            AtomicU32::new(0),
            Prehashed,
        );
        let now = Instant::now();
        let mut first: Vec<u64> = Vec::new();
        for &(shard, n) in &keys {
            let key = in_shard(shard, n);
            if !first.contains(&key) && first.len() < max_keys {
                first.push(key);
            }
            bump_prehashed(&map, key, now);
        }
        let mut stored = Vec::new();
        map.for_each(|k, v| stored.push((*k, v.load(Ordering::Relaxed))));
        stored.sort_unstable();
        let mut expected: Vec<(u64, u32)> = first
            .iter()
            .map(|k| (*k, u32::try_from(keys.iter().filter(|&&(s, n)| in_shard(s, n) == *k).count()).unwrap()))
            .collect();
        expected.sort_unstable();
        prop_assert_eq!(map.len(), first.len());
        prop_assert_eq!(&stored, &expected);
        let on_stored: u32 = expected.iter().map(|(_, c)| c).sum();
        prop_assert_eq!(
            map.overflow().load(Ordering::Relaxed) + on_stored,
            u32::try_from(keys.len()).unwrap()
        );
    }
}

/// The documented defaults: 100 000 keys, forgotten after 10 minutes.
#[test]
fn the_default_config_is_new_and_says_its_values() {
    let config = KeyedConfig::default();
    assert_eq!(config, KeyedConfig::new());
    assert_eq!(config.get_max_keys(), 100_000);
    assert_eq!(config.get_idle_timeout(), Duration::from_secs(600));
    let set = config.max_keys(7).idle_timeout(Duration::from_millis(5));
    assert_eq!(
        (set.get_max_keys(), set.get_idle_timeout()),
        (7, Duration::from_millis(5))
    );
}

/// With a coarse tick (an idle timeout above 12 days counts in ticks of several milliseconds),
/// the idle timeout is rounded up, never down: a key is never evicted before it.
#[tokio::test(start_paused = true)]
async fn a_coarse_tick_never_evicts_a_key_before_its_idle_timeout() {
    let day = Duration::from_secs(86_400);
    let map = KeyedMap::new(
        KeyedConfig::new().idle_timeout(100 * day),
        AtomicU32::new(0),
    );
    let start = Instant::now();
    bump(&map, 1, start);
    let idle = start + 100 * day;
    assert_eq!(map.sweep_now(idle - Duration::from_millis(1)), 0);
    assert_eq!(map.sweep_now(idle + Duration::from_millis(64)), 1);
}

/// A map with room sweeps a shard for a new key at most once per half idle timeout (and one
/// shard per idle timeout / shards for any request), not on every insert.
#[tokio::test(start_paused = true)]
async fn new_keys_in_a_map_with_room_do_not_sweep_on_every_insert() {
    use std::sync::Arc;

    // As in the flood test: idle stored keys that are never evictable count the sweeps' work.
    let examined = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&examined);
    let idle = Duration::from_secs(1);
    let map = KeyedMap::new(
        KeyedConfig::new().max_keys(1_000_000).idle_timeout(idle),
        AtomicU32::new(0),
    )
    .evict_if(move |_, _| {
        counted.fetch_add(1, Ordering::Relaxed);
        false
    });
    let start = Instant::now();
    for key in 0..1_000 {
        bump(&map, key, start);
    }
    // 10 000 new keys over one second, once the stored ones are idle.
    for key in 0..10_000u32 {
        let now = start + 2 * idle + Duration::from_micros(u64::from(key) * 100);
        bump(&map, 1_000_000 + key, now);
    }
    assert_eq!(map.len(), 11_000);
    // About three sweeps per shard in that second, plus the request-driven ones: each stored
    // key examined a few times. A sweep per insert would examine them thousands of times.
    let examined = examined.load(Ordering::Relaxed);
    assert!(examined <= 10 * 1_000, "{examined} examinations");
}

/// A key's shard is chosen by the high half of its hash (so the shard's own table sees other
/// bits): prehashed keys whose high half is 0 all land in shard 0, visited first.
#[tokio::test(start_paused = true)]
async fn the_high_half_of_the_hash_chooses_the_shard() {
    let map: KeyedMap<u64, AtomicU32, Prehashed> =
        KeyedMap::with_hasher(KeyedConfig::new(), AtomicU32::new(0), Prehashed);
    let now = Instant::now();
    for n in 1..=8 {
        bump_prehashed(&map, in_shard(1, n), now);
        bump_prehashed(&map, in_shard(0, n), now);
    }
    let mut order = Vec::new();
    map.for_each(|key, _| order.push(key >> 32));
    assert_eq!(order, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
}

/// With the map full, a new key's request sweeps one other shard, taken in turn; when the turn
/// falls on the new key's own shard it passes to the next one, whose idle key then makes room.
#[tokio::test(start_paused = true)]
async fn a_full_maps_sweep_of_another_shard_skips_its_own() {
    let idle = Duration::from_secs(1);
    // Two keys: two shards.
    let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
        KeyedConfig::new().max_keys(2).idle_timeout(idle),
        AtomicU32::new(0),
        Prehashed,
    );
    let start = Instant::now();
    bump_prehashed(&map, in_shard(0, 1), start);
    bump_prehashed(&map, in_shard(0, 2), start);
    // A request 600 ms in sweeps shard 0 (the turn's first), before anything is idle, and
    // keeps the first key busy.
    bump_prehashed(&map, in_shard(0, 1), start + Duration::from_millis(600));
    // 1.05 s in, the second key is idle. A new key of shard 1 finds its own shard empty; the
    // turn (1) is its own shard, so shard 0 is swept, and the new key takes the room.
    let later = start + Duration::from_millis(1_050);
    assert_eq!(bump_prehashed(&map, in_shard(1, 1), later), 1);
    assert_eq!(bump_prehashed(&map, in_shard(1, 1), later), 2, "stored");
    assert_eq!(map.evicted(), 1);
    assert_eq!(map.overflow().load(Ordering::Relaxed), 0);
}

/// A full map sweeps a shard for a new key a sixteenth of the idle timeout after its last
/// sweep (100 ms at 1.6 s), not a tick later; until then the new key shares the overflow state.
#[tokio::test(start_paused = true)]
async fn a_full_map_sweeps_a_sixteenth_of_the_idle_timeout_after_the_last_sweep() {
    let map = KeyedMap::new(
        KeyedConfig::new()
            .max_keys(1)
            .idle_timeout(Duration::from_millis(1_600)),
        AtomicU32::new(0),
    )
    .evict_when_full_if(|_, _| true);
    let start = Instant::now();
    assert_eq!(bump(&map, 1, start), 1);
    // 99 ms after the map was made (its shard's last sweep): no sweep, no room.
    assert_eq!(bump(&map, 2, start + Duration::from_millis(99)), 1);
    assert_eq!(map.overflow().load(Ordering::Relaxed), 1);
    // At 100 ms the sweep is due: key 1 (spare) leaves, key 2 gets a state of its own.
    assert_eq!(bump(&map, 2, start + Duration::from_millis(100)), 1);
    assert_eq!(map.overflow().load(Ordering::Relaxed), 1);
    assert_eq!(map.evicted(), 1);
}

/// A map's `Debug` shows its key count, configuration, shard count and overflow state.
#[tokio::test(start_paused = true)]
async fn debug_shows_the_count_the_config_and_the_overflow() {
    let map = KeyedMap::new(KeyedConfig::new().max_keys(1), AtomicU32::new(7));
    bump(&map, 1, Instant::now());
    let shown = format!("{map:?}");
    assert!(shown.starts_with("KeyedMap { len: 1, config: "), "{shown}");
    assert!(shown.ends_with("shards: 1, overflow: 7, .. }"), "{shown}");
}

/// A map with room sweeps a new key's shard half an idle timeout after its last sweep: a key
/// idle since the map was made leaves when a new key of its shard arrives an idle timeout in.
#[tokio::test(start_paused = true)]
async fn a_map_with_room_sweeps_a_new_keys_shard_every_half_idle_timeout() {
    let idle = Duration::from_secs(1);
    let map: KeyedMap<u64, AtomicU32, Prehashed> = KeyedMap::with_hasher(
        KeyedConfig::new().max_keys(1_000).idle_timeout(idle),
        AtomicU32::new(0),
        Prehashed,
    );
    let start = Instant::now();
    bump_prehashed(&map, in_shard(3, 1), start);
    // The request's own sweep of one shard in turn takes shard 0; shard 3 is swept because a
    // new key of it arrives a whole idle timeout (twice the half) after its last sweep.
    assert_eq!(bump_prehashed(&map, in_shard(3, 2), start + idle), 1);
    assert_eq!(map.evicted(), 1);
    assert_eq!(map.len(), 1);
}
