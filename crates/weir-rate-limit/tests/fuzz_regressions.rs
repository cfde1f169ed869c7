//! Inputs the fuzz targets found (`fuzz/`, run by `scripts/fuzz.sh`), kept as tests.

use weir_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, SlidingLog, SlidingWindow, TokenBucket,
};

const MS: u64 = 1_000_000;

/// A request of cost 0 on a fresh state is admitted and takes nothing.
fn cost_zero_is_free<A: Algorithm>(algorithm: A) {
    let quota = Quota::per_second(10).burst(3);
    let state = algorithm.new_state(&quota);
    assert!(algorithm.acquire(&state, &quota, 0, 0, 0).is_admitted());
    algorithm.release(&state, &quota, 0, 0);
    // The whole capacity is still there.
    let all = quota.burst_size().min(quota.rate());
    assert!(algorithm.acquire(&state, &quota, all, MS, 0).is_admitted());
}

/// fuzz/rate_limit: the leaky bucket computed the queue places of a request as `inc - t`
/// (its units after the first), which overflowed for a cost of 0: a panic with debug
/// assertions, and without them a refusal of a request that takes no place at all.
#[test]
fn leaky_bucket_cost_zero_does_not_overflow() {
    cost_zero_is_free(LeakyBucket);
    // On a busy queue, in wait mode, it waits for the queue like any request, taking no place.
    let quota = Quota::per_second(10).burst(3);
    let state = LeakyBucket.new_state(&quota);
    assert!(LeakyBucket.acquire(&state, &quota, 3, 0, 0).is_admitted());
    let zero = LeakyBucket.acquire(&state, &quota, 0, 0, 1_000 * MS);
    assert!(zero.is_admitted());
    assert_eq!(zero.wait(), 300 * MS);
}

#[test]
fn every_algorithm_admits_cost_zero() {
    cost_zero_is_free(Gcra);
    cost_zero_is_free(TokenBucket);
    cost_zero_is_free(FixedWindow);
    cost_zero_is_free(SlidingWindow);
    cost_zero_is_free(SlidingLog);
}
