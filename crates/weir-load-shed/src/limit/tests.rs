use super::*;
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn fixed_never_moves() {
    let mut fixed = Fixed::new(7);
    assert_eq!(fixed.update(Sample::dropped(ms(1), 7)), 7);
    assert_eq!(Fixed::new(0).limit(), 1);
}

#[test]
fn aimd_adds_one_when_busy_and_backs_off_on_a_drop() {
    let mut aimd = Aimd::new().bounds(5, 50).initial(10);
    assert_eq!(
        aimd.update(Sample::success(ms(10), 2)),
        10,
        "app-limited: no growth"
    );
    assert_eq!(aimd.update(Sample::success(ms(10), 5)), 11);
    assert_eq!(aimd.update(Sample::success(ms(10), 11)), 12);
    assert_eq!(aimd.update(Sample::dropped(ms(10), 12)), 10); // 12 * 0.9 = 10.8
    assert_eq!(aimd.update(Sample::success(Duration::from_secs(6), 10)), 9);
}

#[test]
fn aimd_stays_within_its_bounds() {
    let mut aimd = Aimd::new().bounds(5, 8).initial(8);
    for _ in 0..100 {
        aimd.update(Sample::dropped(ms(1), 8));
    }
    assert_eq!(aimd.limit(), 5);
    for _ in 0..100 {
        aimd.update(Sample::success(ms(1), 8));
    }
    assert_eq!(aimd.limit(), 8);
}

#[test]
fn vegas_grows_without_queueing_and_shrinks_with_it() {
    let mut vegas = Vegas::new().initial(10).probe_every(1_000_000);
    vegas.update(Sample::success(ms(10), 10)); // the no-load RTT
    assert_eq!(vegas.rtt_noload(), Some(ms(10)));
    // No queueing: +6 log10 (at least 6), once per round trip (10 samples at a limit of 10).
    for _ in 0..9 {
        assert_eq!(vegas.update(Sample::success(ms(10), 10)), 10);
    }
    assert_eq!(vegas.update(Sample::success(ms(10), 10)), 16);
    // RTT doubled: queue = 16 * 0.5 = 8 > beta (6 log10 16 = 7.2): -log10 16 = 14.8.
    assert_eq!(vegas.update(Sample::success(ms(20), 16)), 14);
    // A drop: -log10 14.8 = 13.6.
    assert_eq!(vegas.update(Sample::dropped(ms(0), 14)), 13);
    // App-limited: no growth...
    assert_eq!(vegas.update(Sample::success(ms(10), 2)), 13);
    // ...but a long queue still shrinks it.
    assert_eq!(vegas.update(Sample::success(ms(40), 2)), 12);
}

#[test]
fn vegas_probes_a_new_noload_rtt_only_at_its_floor() {
    let feed = |vegas: &mut Vegas| {
        for _ in 0..3 {
            vegas.update(Sample::success(ms(10), 10));
        }
        // A window of loaded RTTs.
        for _ in 0..3 {
            vegas.update(Sample::success(ms(40), 100));
        }
    };
    // Well above its floor: a loaded window is not taken as the no-load RTT.
    let mut busy = Vegas::new().bounds(10, 1000).initial(50).probe_every(3);
    feed(&mut busy);
    assert_eq!(busy.rtt_noload(), Some(ms(10)));
    // At its floor and still slow: the service itself got slower; learn it.
    let mut floored = Vegas::new().bounds(10, 1000).initial(10).probe_every(3);
    feed(&mut floored);
    assert_eq!(floored.limit(), 10);
    assert_eq!(floored.rtt_noload(), Some(ms(40)));
    // A lower RTT is taken at once.
    floored.update(Sample::success(ms(8), 10));
    assert_eq!(floored.rtt_noload(), Some(ms(8)));
}

#[test]
fn gradient2_shrinks_under_modest_overload_instead_of_growing() {
    // Netflix #134: with gradient about 0.8 the original grows by the queue term for small
    // limits. Here the short RTT is 1.9x the long one: gradient = 1.5 / 1.9 = 0.79.
    let mut g = Gradient2::new().bounds(1, 200).initial(10).short_window(1);
    for _ in 0..20 {
        g.update(Sample::success(ms(10), 10));
    }
    let before = g.limit();
    for _ in 0..50 {
        g.update(Sample::success(ms(19), 100));
    }
    assert!(g.limit() < before, "{} !< {before}", g.limit());
}

#[test]
fn gradient2_under_constant_timeouts_falls_to_its_floor() {
    let mut g = Gradient2::new().bounds(5, 200).initial(100);
    for _ in 0..200 {
        g.update(Sample::dropped(Duration::from_secs(1), 100));
    }
    assert_eq!(g.limit(), 5);
}

#[test]
fn gradient2_grows_by_the_queue_when_latency_is_flat() {
    let mut g = Gradient2::new().bounds(1, 200).initial(20).short_window(1);
    for _ in 0..300 {
        g.update(Sample::success(ms(10), 1000));
    }
    assert_eq!(
        g.limit(),
        200,
        "flat latency under load: grows to the ceiling"
    );
    let mut idle = Gradient2::new().bounds(1, 200).initial(20).short_window(1);
    for _ in 0..100 {
        idle.update(Sample::success(ms(10), 3));
    }
    assert_eq!(idle.limit(), 20, "app-limited: no growth");
}

proptest! {
    #[test]
    fn every_algorithm_stays_within_its_bounds(
        min in 1_usize..50,
        extra in 0_usize..200,
        samples in proptest::collection::vec((0_u64..5_000, 0_usize..1_000, any::<bool>()), 1..300),
    ) {
        let max = min + extra;
        let mut aimd = Aimd::new().bounds(min, max);
        let mut vegas = Vegas::new().bounds(min, max);
        let mut gradient = Gradient2::new().bounds(min, max).short_window(3);
        for (rtt, in_flight, dropped) in samples {
            let sample = Sample { rtt: ms(rtt), in_flight, dropped };
            for limit in [aimd.update(sample), vegas.update(sample), gradient.update(sample)] {
                prop_assert!((min..=max).contains(&limit), "{} not in {}..={}", limit, min, max);
            }
        }
    }
}

/// A Vegas limit whose window stayed above its no-load RTT well above its floor: it has halved
/// its limit to re-measure the no-load RTT. Returns it and the limit it will restore (whole).
fn probing_vegas() -> (Vegas, usize) {
    let mut vegas = Vegas::new().bounds(10, 1000).initial(50).probe_every(3);
    for _ in 0..3 {
        vegas.update(Sample::success(ms(10), 10));
    }
    // Two loaded samples shrink it (50 - log10 50 - log10 48.3 = 46.6), the third probes.
    for _ in 0..2 {
        vegas.update(Sample::success(ms(40), 100));
    }
    let restore = vegas.limit();
    assert_eq!(restore, 46);
    vegas.update(Sample::success(ms(40), 100));
    assert_eq!(vegas.limit(), 23, "the probe halves the limit");
    (vegas, restore)
}

#[test]
fn a_vegas_probe_skips_a_round_trip_then_takes_the_lowest_rtt_and_restores() {
    let (mut vegas, restore) = probing_vegas();
    // The calls admitted before the halving (a round trip) are skipped, whatever their RTT.
    for _ in 0..restore {
        assert_eq!(vegas.update(Sample::success(ms(5), 46)), 23);
    }
    assert_eq!(vegas.rtt_noload(), Some(ms(10)));
    // Then a round trip at the halved concurrency: its lowest RTT (calls above the halved
    // limit are not counted) is the new no-load RTT, and the limit goes back.
    for i in 0..restore as u64 - 1 {
        let (rtt, in_flight) = if i == 7 {
            (ms(1), 40)
        } else {
            (ms(30 + i), 20)
        };
        assert_eq!(vegas.update(Sample::success(rtt, in_flight)), 23);
    }
    assert_eq!(vegas.update(Sample::success(ms(90), 20)), restore);
    assert_eq!(vegas.rtt_noload(), Some(ms(30)));
}

#[test]
fn a_drop_ends_a_vegas_probe_below_the_limit_it_would_restore() {
    let (mut vegas, _) = probing_vegas();
    // 46.6 - 1.0 * log10(46.6) = 44.9.
    assert_eq!(vegas.update(Sample::dropped(ms(10), 23)), 44);
    assert_eq!(
        vegas.rtt_noload(),
        Some(ms(10)),
        "the probe measured nothing"
    );
    // The probe is over: a sample is an ordinary one again (app-limited: no change).
    assert_eq!(vegas.update(Sample::success(ms(10), 1)), 44);
}

#[test]
fn retuning_keeps_the_estimate_clamped_into_the_new_bounds() {
    let mut aimd = Aimd::new().bounds(5, 50).initial(40);
    aimd.retune(&ConfigLimit::Aimd(Aimd::new().bounds(5, 30).backoff(0.5)))
        .unwrap();
    assert_eq!(aimd.limit(), 30);
    assert_eq!(
        aimd.update(Sample::dropped(ms(1), 30)),
        15,
        "the new backoff"
    );
    assert!(aimd.retune(&ConfigLimit::Fixed(Fixed::new(3))).is_err());

    let mut gradient = Gradient2::new().bounds(1, 200).initial(100);
    gradient
        .retune(&ConfigLimit::Gradient2(Gradient2::new().bounds(120, 300)))
        .unwrap();
    assert_eq!(gradient.limit(), 120);
    assert!(gradient.retune(&ConfigLimit::Aimd(Aimd::new())).is_err());

    // A probe under way keeps going, to a restored limit within the new bounds.
    let (mut vegas, _) = probing_vegas();
    vegas
        .retune(&ConfigLimit::Vegas(Vegas::new().bounds(10, 40)))
        .unwrap();
    assert_eq!(vegas.limit(), 23);
    assert_eq!(
        vegas.update(Sample::dropped(ms(10), 23)),
        38,
        "40 - log10(40)"
    );
    assert!(vegas.retune(&ConfigLimit::Fixed(Fixed::new(3))).is_err());
}
#[test]
fn a_named_limit_takes_its_own_kind_and_is_replaced_by_another() {
    let mut limit = ConfigLimit::Aimd(Aimd::new().bounds(5, 50).initial(40));
    limit
        .retune(&ConfigLimit::Aimd(Aimd::new().bounds(5, 30)))
        .unwrap();
    assert_eq!(limit.limit(), 30);
    // Another algorithm starts from the current limit, within its own bounds.
    limit
        .retune(&ConfigLimit::Vegas(Vegas::new().bounds(1, 1000)))
        .unwrap();
    assert!(matches!(limit, ConfigLimit::Vegas(_)));
    assert_eq!(limit.limit(), 30);
    limit
        .retune(&ConfigLimit::Gradient2(Gradient2::new().bounds(40, 100)))
        .unwrap();
    assert_eq!(limit.limit(), 40);
    limit.retune(&ConfigLimit::Fixed(Fixed::new(7))).unwrap();
    assert_eq!(limit.limit(), 7);
    assert_eq!(limit.to_config(), Some(ConfigLimit::Fixed(Fixed::new(7))));
}

#[test]
fn nan_parameters_take_the_defaults_and_defaults_are_new() {
    assert_eq!(Aimd::new().backoff(f64::NAN), Aimd::new());
    assert_eq!(Aimd::default(), Aimd::new());
    assert_eq!(Vegas::new().smoothing(f64::NAN), Vegas::new());
    assert_eq!(Vegas::default(), Vegas::new());
    assert_eq!(Gradient2::new().smoothing(f64::NAN), Gradient2::new());
    assert_eq!(Gradient2::new().tolerance(f64::NAN), Gradient2::new());
    assert_eq!(Gradient2::default(), Gradient2::new());
    assert_eq!(
        Aimd::new().to_config(),
        Some(ConfigLimit::Aimd(Aimd::new()))
    );
    assert_eq!(
        Vegas::new().to_config(),
        Some(ConfigLimit::Vegas(Vegas::new()))
    );
    assert_eq!(
        Gradient2::new().to_config(),
        Some(ConfigLimit::Gradient2(Gradient2::new()))
    );
}

/// A limit of the caller's own (not one of the crate's) has no configuration form and takes no
/// new parameters: the trait's defaults.
#[test]
fn a_callers_own_limit_is_not_reconfigurable() {
    struct Halving(usize);
    impl Limit for Halving {
        fn limit(&self) -> usize {
            self.0
        }
        fn update(&mut self, _sample: Sample) -> usize {
            self.0 = (self.0 / 2).max(1);
            self.0
        }
    }
    let mut own = Halving(8);
    assert_eq!(own.update(Sample::success(ms(1), 1)), 4);
    assert_eq!(own.to_config(), None);
    assert_eq!(
        own.retune(&ConfigLimit::Fixed(Fixed::new(3)))
            .unwrap_err()
            .field(),
        "limit"
    );
}

/// A fixed limit takes a new fixed value, and each kind of named limit takes its own kind in
/// place (the estimate kept, clamped).
#[test]
fn fixed_and_named_limits_retune_in_place() {
    let mut fixed = Fixed::new(5);
    fixed.retune(&ConfigLimit::Fixed(Fixed::new(9))).unwrap();
    assert_eq!(fixed.limit(), 9);
    assert!(fixed.retune(&ConfigLimit::Aimd(Aimd::new())).is_err());
    assert_eq!(fixed.to_config(), Some(ConfigLimit::Fixed(Fixed::new(9))));

    let mut named = ConfigLimit::Fixed(Fixed::new(5));
    named.retune(&ConfigLimit::Fixed(Fixed::new(6))).unwrap();
    assert_eq!(named.limit(), 6);
    let mut named = ConfigLimit::Vegas(Vegas::new().bounds(1, 100).initial(80));
    named
        .retune(&ConfigLimit::Vegas(Vegas::new().bounds(1, 50)))
        .unwrap();
    assert!(matches!(named, ConfigLimit::Vegas(_)));
    assert_eq!(named.limit(), 50);
    let mut named = ConfigLimit::Gradient2(Gradient2::new().bounds(1, 100).initial(80));
    named
        .retune(&ConfigLimit::Gradient2(Gradient2::new().bounds(1, 60)))
        .unwrap();
    assert!(matches!(named, ConfigLimit::Gradient2(_)));
    assert_eq!(named.limit(), 60);
    // Another kind from a Fixed: the new kind starts at the fixed value, clamped.
    let mut named = ConfigLimit::Fixed(Fixed::new(500));
    named
        .retune(&ConfigLimit::Aimd(Aimd::new().bounds(5, 300)))
        .unwrap();
    assert_eq!(named.limit(), 300);
    // A non-finite or fractional estimate is whole calls, at least one.
    assert_eq!((whole(f64::NAN), whole(0.4), whole(7.9)), (1, 1, 7));
}

/// While the long-term RTT warms up (its first ten short windows) it is the plain mean of the
/// short ones, so one slower window moves it halfway and the limit does not shrink; past the
/// warm-up a slower window leaves it where it was.
#[test]
fn gradient2_warms_its_long_rtt_up_as_a_plain_mean() {
    let mut g = Gradient2::new().bounds(1, 200).initial(20).short_window(1);
    // The first window is the long RTT: gradient 1.5 (clamped to 1), growth by the queue:
    // 20 * 0.8 + 24 * 0.2 = 20.8.
    assert_eq!(g.update(Sample::success(ms(10), 20)), 20);
    // Long = (10 + 20) / 2 = 15: gradient 1.5 * 15 / 20 = 1.125, still growth: 21.6. Had the
    // long RTT stayed at 10, the gradient 0.75 would have shrunk it to 19.8.
    assert_eq!(g.update(Sample::success(ms(20), 20)), 21);
}

/// Past its warm-up the long-term RTT follows a faster window exponentially (by
/// `2 / (long_window + 1)`), ignores a slower one away from the floor, and, when it is more than
/// twice the short one, catches up by 5 % more: each step shows in whether a slow window
/// then shrinks the limit.
#[test]
fn gradient2_long_rtt_after_the_warm_up() {
    let mut g = Gradient2::new()
        .bounds(1, 200)
        .initial(20)
        .short_window(1)
        .long_window(3);
    let busy = |rtt| Sample::success(ms(rtt), 200);
    // Warm-up: ten windows of 20 ms, the long RTT 20 ms; each grows the limit by 0.8.
    for _ in 0..10 {
        g.update(busy(20));
    }
    assert_eq!(g.limit(), 28);
    // A faster window: long = 20 * 0.5 + 10 * 0.5 = 15 ms (gradient 1: growth, 28.8).
    assert_eq!(g.update(busy(10)), 28);
    // A slower one leaves it at 15 ms: gradient 1.5 * 15 / 40 = 0.5625, the limit
    // 28.8 * 0.8 + 28.8 * 0.5625 * 0.2 = 26.28 (with a long RTT of 10 ms, 25.92; had it risen
    // with the slow window, growth).
    assert_eq!(g.update(busy(40)), 26);
    // 3 ms: long = 15 * 0.5 + 3 * 0.5 = 9, three times the short: caught up to 8.55.
    g.update(busy(3));
    let before = g.limit();
    // So a 40 ms window shrinks it (gradient 1.5 * 8.55 / 40, clamped to 0.5).
    assert!(g.update(busy(40)) < before, "{} !< {before}", g.limit());
}

/// At its floor a slower service is learnt at a fifth a window: the limit stays at the floor
/// while the long RTT climbs (three windows of a 5x latency step), then grows once it has
/// (#16.7).
#[test]
fn gradient2_at_its_floor_learns_a_slower_service_in_a_few_windows() {
    let mut g = Gradient2::new().bounds(5, 200).initial(5).short_window(1);
    // Warm-up at 10 ms, app-limited (one call in flight): the limit stays at its floor.
    for _ in 0..10 {
        assert_eq!(g.update(Sample::success(ms(10), 1)), 5);
    }
    // 50 ms, busy: long = 18, 24.4, 29.5 ms: gradient below 1, the limit held at the floor.
    for _ in 0..3 {
        assert_eq!(g.update(Sample::success(ms(50), 200)), 5);
    }
    // 33.6 then 36.9 ms: gradient 1, growth (5.8, then 6.6).
    g.update(Sample::success(ms(50), 200));
    assert_eq!(g.update(Sample::success(ms(50), 200)), 6);
}

/// The catch-up starts only past twice the short RTT: at exactly twice (durations exact in
/// binary) the long RTT is kept, and the next window's gradient is judged on it.
#[test]
fn gradient2_catches_up_only_past_twice_the_short_rtt() {
    let mut g = Gradient2::new().bounds(1, 200).initial(20).short_window(1);
    let busy = |micros| Sample::success(Duration::from_micros(micros), 200);
    // 3/64 s, then 1/64 s: long = 2/64 s, exactly twice the short one (growth: 20.8, 21.6).
    g.update(busy(46_875));
    assert_eq!(g.update(busy(15_625)), 21);
    // 60 ms: long = (2 * 31.25 + 60) / 3 = 40.8 ms, gradient 1.02: growth, 22.4. Caught up at
    // twice (29.7 ms), the gradient would be 0.995: a shrink.
    assert_eq!(g.update(busy(60_000)), 22);
}

/// A window whose lowest RTT is exactly the no-load RTT says nothing changed: no probe.
#[test]
fn vegas_probes_only_when_the_window_stayed_above_the_noload_rtt() {
    let mut vegas = Vegas::new().bounds(10, 1000).initial(50).probe_every(3);
    for _ in 0..6 {
        vegas.update(Sample::success(ms(10), 50));
    }
    assert!(vegas.limit() >= 50, "probed: {}", vegas.limit());
}

/// Vegas grows by `log10(limit)` only while the queue is below `3 log10(limit)`: a queue of
/// exactly that holds the limit where it is.
#[test]
fn vegas_holds_its_limit_at_a_queue_of_alpha() {
    let mut vegas = Vegas::new()
        .bounds(1, 1000)
        .initial(10)
        .probe_every(1_000_000);
    vegas.update(Sample::success(ms(10), 10)); // the no-load RTT
    // 14 ms: queue = ceil(10 * (1 - 10 / 14)) = 3 = alpha (3 log10 10).
    for _ in 0..30 {
        assert_eq!(vegas.update(Sample::success(ms(14), 10)), 10);
    }
}

/// With smoothing below 1, Vegas takes only that share of each new estimate.
#[test]
fn vegas_smoothing_takes_a_share_of_each_estimate() {
    let mut vegas = Vegas::new()
        .initial(10)
        .smoothing(0.5)
        .probe_every(1_000_000);
    vegas.update(Sample::success(ms(10), 10)); // the no-load RTT
    for _ in 0..9 {
        vegas.update(Sample::success(ms(10), 10));
    }
    // No queueing: the estimate 10 + 6 log10 10 = 16, half of it taken: 13.
    assert_eq!(vegas.update(Sample::success(ms(10), 10)), 13);
}

/// The catch-up's 5 % shows in the next windows' gradient: with the long RTT caught up from 9 to
/// 8.55 ms, two 13 ms windows shrink the limit (gradient 1.5 × 8.55 / 13 = 0.987); left at 9 ms
/// they would grow it (1.04, clamped to 1).
#[test]
fn gradient2_judges_the_next_windows_on_the_caught_up_long_rtt() {
    let mut g = Gradient2::new()
        .bounds(1, 200)
        .initial(20)
        .short_window(1)
        .long_window(3);
    let busy = |rtt| Sample::success(ms(rtt), 200);
    for _ in 0..10 {
        g.update(busy(20));
    }
    // 28.8, then 26.28 (as in `gradient2_long_rtt_after_the_warm_up`), the long RTT 15 ms.
    g.update(busy(10));
    g.update(busy(40));
    // 3 ms: long = 9 ms, three times the short: caught up to 8.55; growth to 27.08.
    assert_eq!(g.update(busy(3)), 27);
    // 27.007, then 26.935 (with a long RTT of 9 ms, 27.88 and 28.68).
    g.update(busy(13));
    assert_eq!(g.update(busy(13)), 26);
}

/// Between `log10(limit)` and alpha (`3 log10(limit)`) Vegas grows by `log10(limit)`, once a
/// round trip, only while the limit is in use: app-limited, it holds.
#[test]
fn vegas_grows_below_alpha_only_while_busy() {
    let mut vegas = Vegas::new()
        .bounds(1, 1000)
        .initial(10)
        .probe_every(1_000_000);
    vegas.update(Sample::success(ms(10), 10)); // the no-load RTT
    // 12 ms: queue = ceil(10 × (1 − 10 / 12)) = 2, between log10 10 = 1 and alpha 3.
    // One call in flight of ten: held.
    for _ in 0..30 {
        assert_eq!(vegas.update(Sample::success(ms(12), 1)), 10);
    }
    // Ten in flight: one step of log10 10 after a round trip (ten samples).
    for _ in 0..9 {
        assert_eq!(vegas.update(Sample::success(ms(12), 10)), 10);
    }
    assert_eq!(vegas.update(Sample::success(ms(12), 10)), 11);
}
