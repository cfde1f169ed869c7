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
}
