use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_core::backoff::Backoff;

use super::machine::*;
use super::vocabulary::*;
use super::window::*;

fn settings() -> Settings {
    Settings {
        window: WindowKind::Count(10),
        failure_rate: Some(ppm(50.0)),
        slow_rate: None,
        consecutive_failures: None,
        minimum_calls: 4,
        open: Backoff::constant(Duration::from_secs(5)),
        probes: 2,
        max_half_open: Duration::from_secs(30),
        seed: Some(1),
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ok() -> Report {
    Report {
        verdict: Verdict::Success,
        slow: false,
    }
}

fn fail() -> Report {
    Report {
        verdict: Verdict::Failure,
        slow: false,
    }
}

fn call(b: &Breaker, at: Duration, report: Report) -> Option<Notice> {
    match b.admit(|| at).0 {
        Admit::Permit(p) => b.record(p, report, || at),
        Admit::Reject { .. } => panic!("rejected at {at:?} in {:?}", b.state()),
    }
}

fn permit(b: &Breaker, at: Duration) -> Permit {
    match b.admit(|| at).0 {
        Admit::Permit(p) => p,
        Admit::Reject { .. } => panic!("rejected at {at:?} in {:?}", b.state()),
    }
}

fn is_rejected(b: &Breaker, at: Duration) -> bool {
    matches!(b.admit(|| at).0, Admit::Reject { .. })
}

#[test]
fn count_window_slides() {
    let b = Breaker::new(settings());
    for _ in 0..1000 {
        assert_eq!(call(&b, secs(0), ok()), None);
    }
    // The last 10 calls: 4 failures out of 10 is below half.
    for _ in 0..4 {
        assert_eq!(call(&b, secs(0), fail()), None);
    }
    assert_eq!(
        b.counts(secs(0)),
        Counts {
            total: 10,
            failures: 4,
            slow: 0
        }
    );
    // The fifth failure makes it 5 out of the last 10.
    assert_eq!(
        call(&b, secs(0), fail()),
        Some(Notice::Changed {
            from: State::Closed,
            to: State::Open,
            reason: Reason::FailureRate
        })
    );
    assert_eq!(b.state(), State::Open);
}

/// The closed path skips `record` for a success when `success_is_steady` says so: it must
/// say so only when recording would change nothing, and say so in a healthy window.
#[test]
fn a_success_is_steady_only_in_a_window_full_of_successes() {
    let b = Breaker::new(settings());
    let p = permit(&b, secs(0));
    assert!(!b.success_is_steady(p), "an empty window is not full");
    for _ in 0..10 {
        call(&b, secs(0), ok());
    }
    assert!(b.success_is_steady(permit(&b, secs(0))));
    // One failure among the last 10: a success slides it along, so it must be recorded.
    call(&b, secs(0), fail());
    assert!(!b.success_is_steady(permit(&b, secs(0))));
    for _ in 0..10 {
        call(&b, secs(0), ok());
    }
    let p = permit(&b, secs(0));
    assert!(b.success_is_steady(p));
    // A permit of an earlier period is not steady: its outcome is ignored by `record`
    // anyway, and the check must not answer for a period it was not admitted in.
    b.set(State::ForcedClosed, secs(0));
    assert!(!b.success_is_steady(p));
    // A probe is never steady: its success counts towards closing.
    b.set(State::Open, secs(0));
    let probe = permit(&b, secs(5));
    assert!(probe.is_probe());
    assert!(!b.success_is_steady(probe));
    // A time window has no steady state: every success goes into its bucket.
    let t = Breaker::new(Settings {
        window: WindowKind::Time {
            size: secs(10),
            buckets: 2,
        },
        ..settings()
    });
    for _ in 0..20 {
        call(&t, secs(0), ok());
    }
    assert!(!t.success_is_steady(permit(&t, secs(0))));
}

#[test]
fn minimum_calls_hold_the_rate_back() {
    let b = Breaker::new(settings());
    for _ in 0..3 {
        assert_eq!(call(&b, secs(0), fail()), None);
    }
    assert_eq!(b.state(), State::Closed);
    assert!(call(&b, secs(0), fail()).is_some());
}

#[test]
fn a_success_never_opens() {
    let b = Breaker::new(Settings {
        minimum_calls: 10,
        ..settings()
    });
    for _ in 0..9 {
        call(&b, secs(0), fail());
    }
    // 9 failures, then the 10th call is a success: 90 % over 10 calls, but a success does
    // not judge; the next failure does.
    assert_eq!(call(&b, secs(0), ok()), None);
    assert_eq!(b.state(), State::Closed);
    assert!(call(&b, secs(0), fail()).is_some());
}

#[test]
fn open_rejects_with_the_remaining_time_then_half_opens() {
    let b = Breaker::new(settings());
    for _ in 0..4 {
        call(&b, secs(10), fail());
    }
    assert_eq!(
        b.admit(|| secs(12)).0,
        Admit::Reject {
            state: State::Open,
            retry_after: Some(secs(3))
        }
    );
    let (admit, notice) = b.admit(|| secs(15));
    assert!(matches!(admit, Admit::Permit(p) if p.is_probe()));
    assert_eq!(
        notice,
        Some(Notice::Changed {
            from: State::Open,
            to: State::HalfOpen,
            reason: Reason::OpenTimeElapsed
        })
    );
    // Two probes: the second is admitted, the third rejected.
    let _second = permit(&b, secs(15));
    assert!(is_rejected(&b, secs(15)));
    assert_eq!(b.rejected(), 2);
}

#[test]
fn probes_close_after_k_successes_and_reset_the_window() {
    let b = Breaker::new(settings());
    for _ in 0..4 {
        call(&b, secs(0), fail());
    }
    let first = permit(&b, secs(5));
    let second = permit(&b, secs(5));
    assert_eq!(b.record(first, ok(), || secs(6)), None);
    assert_eq!(
        b.record(second, ok(), || secs(6)),
        Some(Notice::Changed {
            from: State::HalfOpen,
            to: State::Closed,
            reason: Reason::ProbesSucceeded
        })
    );
    assert_eq!(b.counts(secs(6)), Counts::default());
    assert_eq!(b.consecutive_failures(), 0);
}

#[test]
fn a_failed_probe_reopens_and_late_results_are_ignored() {
    let b = Breaker::new(settings());
    for _ in 0..4 {
        call(&b, secs(0), fail());
    }
    let first = permit(&b, secs(5));
    let second = permit(&b, secs(5));
    assert!(matches!(
        b.record(first, fail(), || secs(6)),
        Some(Notice::Changed {
            to: State::Open,
            reason: Reason::ProbeFailed,
            ..
        })
    ));
    // The other probe's success comes late: it belongs to the previous half-open period.
    assert_eq!(b.record(second, ok(), || secs(7)), None);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.open_remaining(secs(7)), Some(secs(4)));
}

#[test]
fn a_released_probe_frees_its_slot_once() {
    let b = Breaker::new(settings());
    for _ in 0..4 {
        call(&b, secs(0), fail());
    }
    let first = permit(&b, secs(5));
    let _second = permit(&b, secs(5));
    assert!(is_rejected(&b, secs(5)));
    b.release(first);
    let third = permit(&b, secs(5));
    assert!(third.is_probe());
    assert!(is_rejected(&b, secs(5)));
    // An ignored outcome gives the slot back too.
    assert_eq!(
        b.record(
            third,
            Report {
                verdict: Verdict::Ignored,
                slow: false,
            },
            || secs(5)
        ),
        None
    );
    assert!(permit(&b, secs(5)).is_probe());
}

#[test]
fn hung_probes_reopen_after_the_maximum_wait() {
    let b = Breaker::new(settings());
    for _ in 0..4 {
        call(&b, secs(0), fail());
    }
    let _hung = (permit(&b, secs(5)), permit(&b, secs(5)));
    assert!(is_rejected(&b, secs(34)));
    let (admit, notice) = b.admit(|| secs(35));
    assert_eq!(
        admit,
        Admit::Reject {
            state: State::Open,
            retry_after: Some(secs(5))
        }
    );
    assert!(matches!(
        notice,
        Some(Notice::Changed {
            reason: Reason::HalfOpenTimeout,
            ..
        })
    ));
}

#[test]
fn open_time_grows_and_resets_on_close() {
    let b = Breaker::new(Settings {
        open: Backoff::exponential(secs(1)).max(secs(4)),
        probes: 1,
        consecutive_failures: Some(1),
        failure_rate: None,
        ..settings()
    });
    let mut at = secs(0);
    for expected in [1, 2, 4, 4] {
        call(&b, at, fail());
        assert_eq!(b.open_remaining(at), Some(secs(expected)));
        at += secs(expected);
    }
    // The probe succeeds: closed, and the next opening is back to the base.
    call(&b, at, ok());
    assert_eq!(b.state(), State::Closed);
    call(&b, at, fail());
    assert_eq!(b.open_remaining(at), Some(secs(1)));
}

#[test]
fn jittered_open_times_stay_in_bounds_and_follow_the_seed() {
    let open_times = |seed: u64| {
        let b = Breaker::new(Settings {
            open: Backoff::exponential(secs(1))
                .max(secs(4))
                .jitter(weir_core::backoff::Jitter::Full),
            probes: 1,
            consecutive_failures: Some(1),
            failure_rate: None,
            seed: Some(seed),
            ..settings()
        });
        let mut at = secs(0);
        let mut seen = Vec::new();
        for cap in [1, 2, 4, 4, 4] {
            call(&b, at, fail());
            let open = b.open_remaining(at).expect("open");
            assert!(open <= secs(cap), "{open:?} over {cap} s");
            seen.push(open);
            at += open;
        }
        seen
    };
    let a = open_times(7);
    assert_eq!(a, open_times(7));
    assert_ne!(a, open_times(8));
    // Jitter: not every opening at the cap.
    assert!(a[2..].iter().any(|d| *d < secs(4)));
}

proptest::proptest! {
    /// The time window's memoised bucket number and slot are the ones worked out from
    /// scratch, for times in any order, at and around bucket boundaries too.
    #[test]
    fn the_memoised_bucket_is_the_computed_one(
        bucket_ms in 1_u64..5_000,
        buckets in 1_u32..=1_000,
        times in proptest::collection::vec(
            (0_u64..100_000_000_000, 0_u64..2_000, 0_u64..3, proptest::bool::ANY),
            1..64,
        ),
    ) {
        let w = TimeWindow::new(Duration::from_millis(bucket_ms) * buckets, buckets);
        for (raw, k, d, boundary) in times {
            // A boundary time: one nanosecond before, at or after the start of bucket `k`.
            let now = if boundary { (k * w.bucket_nanos + d).saturating_sub(1) } else { raw };
            let epoch = now / w.bucket_nanos + 1;
            let slot = usize::try_from(epoch % u64::from(buckets)).unwrap();
            proptest::prop_assert_eq!(w.epoch_and_slot(now), (epoch, slot));
        }
    }
}

#[test]
fn slow_calls_trip_on_their_own_rate() {
    let b = Breaker::new(Settings {
        failure_rate: None,
        slow_rate: Some(ppm(75.0)),
        ..settings()
    });
    let slow = Report { slow: true, ..ok() };
    call(&b, secs(0), ok());
    for _ in 0..2 {
        assert_eq!(call(&b, secs(0), slow), None);
    }
    assert_eq!(
        call(&b, secs(0), slow),
        Some(Notice::Changed {
            from: State::Closed,
            to: State::Open,
            reason: Reason::SlowCallRate
        })
    );
}

#[test]
fn consecutive_failures_reset_on_success() {
    let b = Breaker::new(Settings {
        failure_rate: None,
        consecutive_failures: Some(3),
        ..settings()
    });
    call(&b, secs(0), fail());
    call(&b, secs(0), fail());
    call(&b, secs(0), ok());
    call(&b, secs(0), fail());
    call(&b, secs(0), fail());
    assert_eq!(b.state(), State::Closed);
    assert!(call(&b, secs(0), fail()).is_some());
}

#[test]
fn time_window_forgets_old_buckets() {
    let b = Breaker::new(Settings {
        window: WindowKind::Time {
            size: secs(10),
            buckets: 10,
        },
        ..settings()
    });
    for _ in 0..3 {
        call(&b, secs(0), fail());
    }
    for _ in 0..10 {
        call(&b, secs(5), ok());
    }
    assert_eq!(b.counts(secs(5)).total, 13);
    // At 10 s the bucket of 0 s has left the window.
    assert_eq!(
        b.counts(secs(10)),
        Counts {
            total: 10,
            failures: 0,
            slow: 0
        }
    );
    for _ in 0..9 {
        assert_eq!(call(&b, secs(12), fail()), None);
    }
    assert!(call(&b, secs(12), fail()).is_some());
}

#[test]
fn manual_states() {
    let b = Breaker::new(settings());
    assert!(b.set(State::ForcedOpen, secs(0)).is_some());
    assert_eq!(
        b.admit(|| secs(0)).0,
        Admit::Reject {
            state: State::ForcedOpen,
            retry_after: None
        }
    );
    b.set(State::ForcedClosed, secs(0));
    for _ in 0..10 {
        assert_eq!(call(&b, secs(0), fail()), None);
    }
    assert_eq!(b.counts(secs(0)).failures, 10);
    b.set(State::MetricsOnly, secs(0));
    assert_eq!(
        call(&b, secs(0), fail()),
        Some(Notice::WouldOpen {
            reason: Reason::FailureRate
        })
    );
    assert_eq!(b.state(), State::MetricsOnly);
    b.set(State::Disabled, secs(0));
    let p = permit(&b, secs(0));
    assert_eq!(b.record(p, fail(), || secs(0)), None);
    assert_eq!(
        b.set(State::Closed, secs(0)),
        Some(Notice::Changed {
            from: State::Disabled,
            to: State::Closed,
            reason: Reason::Manual
        })
    );
    assert_eq!(b.counts(secs(0)), Counts::default());
    assert!(matches!(
        b.set(State::Open, secs(0)),
        Some(Notice::Changed {
            to: State::Open,
            reason: Reason::Manual,
            ..
        })
    ));
    assert_eq!(b.open_remaining(secs(1)), Some(secs(4)));
}

#[test]
fn a_closed_permit_from_before_an_opening_is_ignored() {
    let b = Breaker::new(settings());
    let late = permit(&b, secs(0));
    for _ in 0..4 {
        call(&b, secs(0), fail());
    }
    assert_eq!(b.record(late, fail(), || secs(1)), None);
    assert_eq!(b.opened(), 1);
}

#[test]
fn concurrent_callers_get_exactly_k_probes() {
    let b = Breaker::new(Settings {
        probes: 5,
        ..settings()
    });
    b.set(State::Open, secs(0));
    let admitted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..1000 {
                    if let Admit::Permit(p) = b.admit(|| secs(5)).0 {
                        assert!(p.is_probe());
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::Relaxed), 5);
    assert_eq!(b.rejected(), 8 * 1000 - 5);
}

#[test]
fn concurrent_recorders_keep_the_counters_equal_to_the_ring() {
    let b = Breaker::new(Settings {
        window: WindowKind::Count(64),
        failure_rate: None,
        ..settings()
    });
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let b = &b;
            scope.spawn(move || {
                for i in 0..20_000u32 {
                    let report = if (i * 7 + t) % 5 == 0 { fail() } else { ok() };
                    let p = permit(b, secs(0));
                    b.record(p, report, || secs(0));
                }
            });
        }
    });
    let Window::Count(w) = &b.window else {
        unreachable!()
    };
    let slots: Vec<u8> = w.slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let expected = Counts {
        total: slots.iter().filter(|c| **c & PRESENT != 0).count() as u64,
        failures: slots.iter().filter(|c| **c & FAILED != 0).count() as u64,
        slow: 0,
    };
    assert_eq!(expected.total, 64);
    assert_eq!(b.counts(secs(0)), expected);
}

/// A model-based test: random calls, outcomes, durations, drops, time advances and manual
/// changes go through the breaker and through a small sequential reference model; the
/// decisions, notices, states and counts agree at every step.
mod model {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use std::time::Duration;

    use super::super::machine::*;
    use super::super::vocabulary::*;
    use weir_core::backoff::Backoff;

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Admit,
        Finish {
            which: usize,
            verdict: u8,
            slow: bool,
        },
        Drop {
            which: usize,
        },
        Advance {
            ms: u64,
        },
        Set {
            state: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            16 => Just(Op::Admit),
            16 => (0..8usize, 0..4u8, any::<bool>())
                .prop_map(|(which, verdict, slow)| Op::Finish { which, verdict, slow }),
            4 => (0..8usize).prop_map(|which| Op::Drop { which }),
            8 => (0..12_000u64).prop_map(|ms| Op::Advance { ms }),
            1 => (0..5u8).prop_map(|state| Op::Set { state }),
        ]
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        Counted,
        Probe,
        Untracked,
    }

    /// The reference: plain fields, a `VecDeque` window, no atomics, no generations packed
    /// into words.
    struct Model {
        s: Settings,
        n: usize,
        state: State,
        generation: u64,
        window: VecDeque<(bool, bool)>,
        consecutive: u32,
        open_until: u64,
        half_open_until: u64,
        probe_generation: u64,
        probes_free: u32,
        successes: u32,
        openings: u32,
    }

    const BASE: u64 = 1_000_000_000;

    impl Model {
        fn counts(&self) -> Counts {
            Counts {
                total: self.window.len() as u64,
                failures: self.window.iter().filter(|(f, _)| *f).count() as u64,
                slow: self.window.iter().filter(|(_, s)| *s).count() as u64,
            }
        }

        fn trip(&mut self, now: u64, reason: Reason) -> Notice {
            let d = (BASE << self.openings.min(20)).min(8 * BASE);
            self.openings += 1;
            self.open_until = now + d;
            let from = self.state;
            self.state = State::Open;
            self.generation += 1;
            Notice::Changed {
                from,
                to: State::Open,
                reason,
            }
        }

        fn admit(
            &mut self,
            now: u64,
        ) -> (
            Result<(u64, Kind), (State, Option<Duration>)>,
            Option<Notice>,
        ) {
            let mut notice = None;
            for _ in 0..3 {
                match self.state {
                    State::Closed | State::ForcedClosed | State::MetricsOnly => {
                        return (Ok((self.generation, Kind::Counted)), notice);
                    }
                    State::Disabled => return (Ok((self.generation, Kind::Untracked)), notice),
                    State::ForcedOpen => return (Err((State::ForcedOpen, None)), notice),
                    State::Open => {
                        if now < self.open_until {
                            let left = Duration::from_nanos(self.open_until - now);
                            return (Err((State::Open, Some(left))), notice);
                        }
                        self.generation += 1;
                        self.state = State::HalfOpen;
                        self.probe_generation = self.generation;
                        self.probes_free = self.s.probes;
                        self.successes = 0;
                        self.half_open_until = now + nanos(self.s.max_half_open);
                        notice = Some(Notice::Changed {
                            from: State::Open,
                            to: State::HalfOpen,
                            reason: Reason::OpenTimeElapsed,
                        });
                    }
                    State::HalfOpen => {
                        if self.probes_free > 0 {
                            self.probes_free -= 1;
                            return (Ok((self.generation, Kind::Probe)), notice);
                        }
                        if now < self.half_open_until {
                            return (Err((State::HalfOpen, None)), notice);
                        }
                        notice = Some(self.trip(now, Reason::HalfOpenTimeout));
                    }
                }
            }
            (Err((self.state, None)), notice)
        }

        fn release(&mut self, generation: u64, kind: Kind) {
            if kind == Kind::Probe
                && generation == self.probe_generation
                && self.probes_free < self.s.probes
            {
                self.probes_free += 1;
            }
        }

        fn clear(&mut self) {
            self.window.clear();
            self.consecutive = 0;
            self.openings = 0;
        }

        fn finish(&mut self, generation: u64, kind: Kind, r: Report, now: u64) -> Option<Notice> {
            match kind {
                Kind::Untracked => None,
                Kind::Counted => {
                    if r.verdict == Verdict::Ignored || generation != self.generation {
                        return None;
                    }
                    let failed = r.verdict == Verdict::Failure;
                    self.window.push_back((failed, r.slow));
                    if self.window.len() > self.n {
                        self.window.pop_front();
                    }
                    if failed {
                        self.consecutive += 1;
                    } else {
                        self.consecutive = 0;
                    }
                    if !failed && !r.slow {
                        return None;
                    }
                    let c = self.counts();
                    let minimum = u64::from(self.s.minimum_calls.min(self.n as u32).max(1));
                    let reached = |k: u64, ppm: Ppm| k * 1_000_000 >= ppm * c.total;
                    let reason = if self
                        .s
                        .consecutive_failures
                        .is_some_and(|n| self.consecutive >= n)
                    {
                        Reason::ConsecutiveFailures
                    } else if c.total >= minimum
                        && self.s.failure_rate.is_some_and(|p| reached(c.failures, p))
                    {
                        Reason::FailureRate
                    } else if c.total >= minimum
                        && self.s.slow_rate.is_some_and(|p| reached(c.slow, p))
                    {
                        Reason::SlowCallRate
                    } else {
                        return None;
                    };
                    match self.state {
                        State::Closed => Some(self.trip(now, reason)),
                        State::MetricsOnly => Some(Notice::WouldOpen { reason }),
                        _ => None,
                    }
                }
                Kind::Probe => {
                    if generation != self.generation {
                        return None;
                    }
                    if r.verdict == Verdict::Failure || (r.slow && self.s.slow_rate.is_some()) {
                        return Some(self.trip(now, Reason::ProbeFailed));
                    }
                    if r.verdict == Verdict::Ignored {
                        self.release(generation, kind);
                        return None;
                    }
                    self.successes += 1;
                    if self.successes >= self.s.probes {
                        self.clear();
                        self.state = State::Closed;
                        self.generation += 1;
                        return Some(Notice::Changed {
                            from: State::HalfOpen,
                            to: State::Closed,
                            reason: Reason::ProbesSucceeded,
                        });
                    }
                    None
                }
            }
        }

        fn set(&mut self, to: State, now: u64) -> Option<Notice> {
            let from = self.state;
            if to == State::Closed {
                self.clear();
            }
            if to == State::Open {
                return Some(self.trip(now, Reason::Manual));
            }
            self.state = to;
            self.generation += 1;
            (from != to).then_some(Notice::Changed {
                from,
                to,
                reason: Reason::Manual,
            })
        }
    }

    fn settings() -> impl Strategy<Value = Settings> {
        (
            1..8u32,
            1..10u32,
            prop::option::of(prop::sample::select(vec![25.0, 50.0, 100.0])),
            prop::option::of(1..4u32),
            prop::option::of(prop::sample::select(vec![50.0, 100.0])),
            1..4u32,
        )
            .prop_map(
                |(n, minimum_calls, rate, consecutive, slow, probes)| Settings {
                    window: WindowKind::Count(n),
                    failure_rate: rate.map(ppm),
                    slow_rate: slow.map(ppm),
                    consecutive_failures: consecutive,
                    minimum_calls,
                    open: Backoff::exponential(Duration::from_secs(1)).max(Duration::from_secs(8)),
                    probes,
                    max_half_open: Duration::from_secs(10),
                    seed: Some(0),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_breaker_agrees_with_the_model(
            s in settings(),
            ops in prop::collection::vec(op(), 1..200),
        ) {
            let breaker = Breaker::new(s);
            let WindowKind::Count(n) = s.window else { unreachable!() };
            let mut model = Model {
                s, n: n as usize, state: State::Closed, generation: 0, window: VecDeque::new(),
                consecutive: 0, open_until: 0, half_open_until: 0, probe_generation: u64::MAX,
                probes_free: 0, successes: 0, openings: 0,
            };
            let mut now = 0u64;
            let mut pending: Vec<(Permit, (u64, Kind))> = Vec::new();
            let at = |t: u64| Duration::from_nanos(t);
            for op in ops {
                match op {
                    Op::Admit => {
                        let (real, real_notice) = breaker.admit(|| at(now));
                        let (expected, notice) = model.admit(now);
                        prop_assert_eq!(real_notice, notice);
                        match (real, expected) {
                            (Admit::Permit(p), Ok(m)) => {
                                let kind = match p.kind() {
                                    PermitKind::Counted => Kind::Counted,
                                    PermitKind::Probe => Kind::Probe,
                                    PermitKind::Untracked => Kind::Untracked,
                                };
                                prop_assert_eq!(kind, m.1);
                                pending.push((p, m));
                            }
                            (Admit::Reject { state, retry_after }, Err(m)) => {
                                prop_assert_eq!((state, retry_after), m);
                            }
                            (real, expected) => {
                                prop_assert!(false, "{:?} vs {:?}", real, expected);
                            }
                        }
                    }
                    Op::Finish { which, verdict, slow } => {
                        if pending.is_empty() { continue; }
                        let (p, m) = pending.remove(which % pending.len());
                        let verdict = match verdict {
                            0 | 1 => Verdict::Failure,
                            2 => Verdict::Success,
                            _ => Verdict::Ignored,
                        };
                        let report = Report { verdict, slow: slow && s.slow_rate.is_some() };
                        // The closed path skips `record` when this holds: recording must
                        // then change nothing.
                        let steady = report.verdict == Verdict::Success
                            && !report.slow
                            && breaker.success_is_steady(p);
                        let before = (breaker.state(), breaker.counts(at(now)), breaker.consecutive_failures());
                        let real = breaker.record(p, report, || at(now));
                        let expected = model.finish(m.0, m.1, report, now);
                        prop_assert_eq!(real, expected);
                        if steady {
                            prop_assert_eq!(real, None);
                            prop_assert_eq!((breaker.state(), breaker.counts(at(now)), breaker.consecutive_failures()), before);
                        }
                    }
                    Op::Drop { which } => {
                        if pending.is_empty() { continue; }
                        let (p, m) = pending.remove(which % pending.len());
                        breaker.release(p);
                        model.release(m.0, m.1);
                    }
                    Op::Advance { ms } => now += ms * 1_000_000,
                    Op::Set { state } => {
                        let to = [State::Closed, State::Open, State::ForcedOpen, State::ForcedClosed, State::MetricsOnly][usize::from(state)];
                        prop_assert_eq!(breaker.set(to, at(now)), model.set(to, now));
                    }
                }
                prop_assert_eq!(breaker.state(), model.state);
                prop_assert_eq!(breaker.counts(at(now)), model.counts());
                prop_assert_eq!(breaker.consecutive_failures(), model.consecutive);
                if model.state == State::Open {
                    prop_assert_eq!(breaker.open_remaining(at(now)), Some(at(model.open_until.saturating_sub(now))));
                }
            }
        }
    }
}
