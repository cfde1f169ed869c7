//! Hysteresis, the pure algorithm: N failures in a row to turn unhealthy, M good results in a
//! row to turn back (Envoy's `unhealthy_threshold` / `healthy_threshold`). No clock, no tokio.

use crate::status::Status;

/// The status a check reports, given the raw results of its runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hysteresis {
    unhealthy_after: u32,
    healthy_after: u32,
    reported: Option<Status>,
    streak: u32,
}

impl Hysteresis {
    /// Both thresholds are at least 1 (the registration checks it).
    pub(crate) const fn new(unhealthy_after: u32, healthy_after: u32) -> Self {
        Self {
            unhealthy_after,
            healthy_after,
            reported: None,
            streak: 0,
        }
    }

    /// Takes one raw result and returns the status to report. The first result is reported as
    /// it is; after it, a healthy or degraded check turns unhealthy after `unhealthy_after`
    /// unhealthy results in a row (until then it keeps its last good status), and an unhealthy
    /// one turns back after `healthy_after` results in a row that are not unhealthy.
    pub(crate) fn observe(&mut self, raw: Status) -> Status {
        let reported = match self.reported {
            None => raw,
            Some(Status::Unhealthy) => {
                if raw == Status::Unhealthy {
                    self.streak = 0;
                    Status::Unhealthy
                } else {
                    self.streak += 1;
                    if self.streak >= self.healthy_after {
                        raw
                    } else {
                        Status::Unhealthy
                    }
                }
            }
            Some(good) => {
                if raw == Status::Unhealthy {
                    self.streak += 1;
                    if self.streak >= self.unhealthy_after {
                        Status::Unhealthy
                    } else {
                        good
                    }
                } else {
                    self.streak = 0;
                    raw
                }
            }
        };
        if self.reported != Some(reported) {
            self.streak = 0;
        }
        self.reported = Some(reported);
        reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Degraded, Healthy, Unhealthy};

    fn run(h: &mut Hysteresis, raws: &[Status]) -> Vec<Status> {
        raws.iter().map(|&r| h.observe(r)).collect()
    }

    /// #22.1: thresholds of 1 report every raw result as it is.
    #[test]
    fn no_hysteresis_passes_through() {
        let mut h = Hysteresis::new(1, 1);
        let raws = [Healthy, Unhealthy, Degraded, Unhealthy, Healthy];
        assert_eq!(run(&mut h, &raws), raws);
    }

    /// #22.1: three failures in a row to turn unhealthy, two successes to turn back.
    #[test]
    fn thresholds_hold_the_reported_status() {
        let mut h = Hysteresis::new(3, 2);
        assert_eq!(
            run(
                &mut h,
                &[
                    Healthy, Unhealthy, Unhealthy, Healthy, Unhealthy, Unhealthy, Unhealthy
                ]
            ),
            [
                Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy
            ]
        );
        assert_eq!(
            run(&mut h, &[Healthy, Unhealthy, Healthy, Degraded]),
            [Unhealthy, Unhealthy, Unhealthy, Degraded]
        );
    }

    /// #22.1: the first result is taken as it is, even unhealthy.
    #[test]
    fn first_result_is_reported_as_is() {
        let mut h = Hysteresis::new(3, 2);
        assert_eq!(h.observe(Unhealthy), Unhealthy);
        assert_eq!(h.observe(Healthy), Unhealthy);
        assert_eq!(h.observe(Healthy), Healthy);
    }

    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![Just(Healthy), Just(Degraded), Just(Unhealthy)]
    }

    proptest! {
        /// #22.1: after any history, `n` unhealthy results in a row read Unhealthy, `m` good
        /// results in a row read as the last of them; and a check never reads Unhealthy
        /// unless its latest result, or its reading before it, was Unhealthy.
        #[test]
        fn thresholds_are_honoured(
            n in 1_u32..5,
            m in 1_u32..5,
            raws in proptest::collection::vec(status(), 1..60),
        ) {
            let mut h = Hysteresis::new(n, m);
            let mut before: Option<Status> = None;
            for (i, &raw) in raws.iter().enumerate() {
                let reported = h.observe(raw);
                if reported == Unhealthy {
                    prop_assert!(raw == Unhealthy || before == Some(Unhealthy));
                }
                if reported != Unhealthy && raw != Unhealthy {
                    prop_assert_eq!(reported, raw);
                }
                let tail = |k: u32| raws[..=i].iter().rev().take(k as usize);
                if i + 1 >= n as usize && tail(n).all(|&r| r == Unhealthy) {
                    prop_assert_eq!(reported, Unhealthy);
                }
                if i + 1 >= m as usize && tail(m).all(|&r| r != Unhealthy) {
                    prop_assert_eq!(reported, raw);
                }
                before = Some(reported);
            }
        }
    }
}
