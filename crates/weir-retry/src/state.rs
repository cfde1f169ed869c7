//! The pure retry decision: no tokio runtime, no `Service`; time comes in as `now`.

use std::time::Duration;

use tokio::time::Instant;
use weir_core::{Outcome, backoff::Backoff, backoff::Random, wire::ServerHint};

use crate::event::GiveUp;

/// The limits every request of one layer shares (one version of them: new settings make
/// another, and a request keeps the version it started under).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Policy {
    /// Total calls, the first one included; at least 1.
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    /// No retry may start later than this after the first call started.
    pub(crate) max_duration: Option<Duration>,
    /// The longest server hint honoured; a longer one ends the retries (never shortened).
    pub(crate) max_server_delay: Duration,
}

/// One request's progress through its attempts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Progress {
    /// Calls made so far.
    pub(crate) attempts: u32,
    /// The version of the [`Policy`] the request started under (`Policies`' word, the low 16
    /// bits) and the backoff step of the next computed delay (the high 16 bits, saturating:
    /// every backoff reaches its cap long before; reset to 0 after a server hint, as gRFC A6
    /// asks). One `u32`, so that a call stores the new request's word in one go (two `u16`
    /// fields cost a store more on every call, benches/README.md) and the future is no larger
    /// than before the policy versions.
    policy_step: u32,
    /// The delay before the previous retry (decorrelated jitter grows from it).
    previous: Duration,
    /// When the first call started (read only when there is a `max_duration`).
    started: Option<Instant>,
}

impl Progress {
    #[cfg(test)]
    pub(crate) const fn new(started: Option<Instant>) -> Self {
        Self::under(started, 0)
    }

    /// A request's progress under the policy version `policy` (`Policies`' word, 16 bits
    /// wide).
    #[inline]
    pub(crate) const fn under(started: Option<Instant>, policy: u32) -> Self {
        Self {
            attempts: 0,
            policy_step: policy,
            previous: Duration::ZERO,
            started,
        }
    }

    /// The word of the policy version the request started under.
    #[inline]
    pub(crate) const fn policy(&self) -> u32 {
        self.policy_step & 0xffff
    }

    /// The backoff step of the next computed delay.
    const fn step(&self) -> u32 {
        self.policy_step >> 16
    }

    /// Sets the backoff step (saturating at `u16::MAX`), the policy version kept.
    const fn set_step(&mut self, step: u32) {
        let step = if step > u16::MAX as u32 {
            u16::MAX as u32
        } else {
            step
        };
        self.policy_step = (self.policy_step & 0xffff) | (step << 16);
    }
}

/// What to do with the result of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Return it: a success, an ignored result, or a failure not worth retrying.
    Done,
    /// Retry after `delay`; `hinted` when the server chose the delay.
    Retry { delay: Duration, hinted: bool },
    /// A retryable failure that will not be retried: return it, and say why.
    GiveUp(GiveUp),
}

impl Policy {
    /// Decides what follows an attempt whose result was classified as `outcome`.
    ///
    /// `replayable` says whether the request can be sent again (a copy was kept), `deadline` is
    /// the request's deadline, and `withdraw` asks the retry budget for a retry; it is called
    /// last, only when everything else allows the retry, so a refused retry spends nothing.
    /// On `Retry` the progress is advanced.
    #[expect(
        clippy::too_many_arguments,
        reason = "a pure decision: every input is explicit, so tests pass plain values"
    )]
    pub(crate) fn decide<R: Random + ?Sized>(
        &self,
        progress: &mut Progress,
        outcome: &Outcome,
        replayable: bool,
        now: Instant,
        deadline: Option<Instant>,
        rng: &mut R,
        withdraw: impl FnOnce() -> bool,
    ) -> Decision {
        let Outcome::Failure(failure) = outcome else {
            return Decision::Done;
        };
        if !failure.is_transient() {
            return Decision::Done;
        }
        let hint = match failure.hint() {
            Some(ServerHint::DoNotRetry) => return Decision::GiveUp(GiveUp::ServerPushback),
            // A server's wait is a floor (RFC 9110, gRFC A6): one longer than we are willing to
            // wait ends the retries with this answer, it is never shortened.
            Some(ServerHint::RetryAfter(delay)) if delay > self.max_server_delay => {
                return Decision::GiveUp(GiveUp::ServerDelay);
            }
            Some(ServerHint::RetryAfter(delay)) => Some(delay),
            None => None,
        };
        if !replayable {
            return Decision::GiveUp(GiveUp::NotReplayable);
        }
        if progress.attempts >= self.max_attempts {
            return Decision::GiveUp(GiveUp::MaxAttempts);
        }
        let delay = match hint {
            Some(delay) => delay,
            None => self.backoff.delay(progress.step(), progress.previous, rng),
        };
        // The retry starts when the sleep ends; it must start before the deadline and within the
        // total retry time. A sleep so long that the instant overflows ends neither.
        let Some(resume) = now.checked_add(delay) else {
            return Decision::GiveUp(GiveUp::Deadline);
        };
        if deadline.is_some_and(|deadline| resume >= deadline) {
            return Decision::GiveUp(GiveUp::Deadline);
        }
        if let (Some(max), Some(started)) = (self.max_duration, progress.started)
            && started.checked_add(max).is_some_and(|end| resume >= end)
        {
            return Decision::GiveUp(GiveUp::MaxDuration);
        }
        if !withdraw() {
            return Decision::GiveUp(GiveUp::Budget);
        }
        if hint.is_some() {
            progress.set_step(0);
            progress.previous = Duration::ZERO;
        } else {
            progress.set_step(progress.step() + 1);
            progress.previous = delay;
        }
        Decision::Retry {
            delay,
            hinted: hint.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_core::{Failure, backoff::FastRandom, backoff::Jitter};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(max_attempts: u32) -> Policy {
        Policy {
            max_attempts,
            backoff: Backoff::exponential(100 * MS).max(MS * 1000),
            max_duration: None,
            max_server_delay: Duration::from_secs(30),
        }
    }

    fn transient() -> Outcome {
        Outcome::Failure(Failure::transient())
    }

    fn hinted(hint: ServerHint) -> Outcome {
        Outcome::Failure(Failure::transient().with_hint(Some(hint)))
    }

    /// Runs attempts that all fail with `outcome` until the policy stops; returns the delays and
    /// the final decision.
    fn run(
        policy: &Policy,
        outcome: Outcome,
        deadline: Option<Duration>,
        budget: &mut u32,
    ) -> (Vec<Duration>, Decision) {
        let start = Instant::now();
        let mut now = start;
        let mut progress = Progress::new(Some(start));
        let mut rng = FastRandom::seeded(1);
        let mut delays = Vec::new();
        loop {
            progress.attempts += 1;
            let decision = policy.decide(
                &mut progress,
                &outcome,
                true,
                now,
                deadline.map(|d| start + d),
                &mut rng,
                || {
                    let ok = *budget > 0;
                    *budget = budget.saturating_sub(1);
                    ok
                },
            );
            match decision {
                Decision::Retry { delay, .. } => {
                    delays.push(delay);
                    now += delay;
                }
                other => return (delays, other),
            }
        }
    }

    #[test]
    fn attempts_count_the_first_call() {
        let (delays, end) = run(&policy(4), transient(), None, &mut u32::MAX.clone());
        assert_eq!(delays, [100 * MS, 200 * MS, 400 * MS]);
        assert_eq!(end, Decision::GiveUp(GiveUp::MaxAttempts));

        let (delays, end) = run(&policy(1), transient(), None, &mut 10);
        assert!(delays.is_empty());
        assert_eq!(end, Decision::GiveUp(GiveUp::MaxAttempts));
    }

    #[test]
    fn success_permanent_and_ignored_are_done() {
        let mut progress = Progress::new(Some(Instant::now()));
        let mut rng = FastRandom::seeded(1);
        for outcome in [
            Outcome::Success,
            Outcome::Ignored,
            Outcome::Failure(Failure::permanent()),
        ] {
            let d = policy(3).decide(
                &mut progress,
                &outcome,
                true,
                Instant::now(),
                None,
                &mut rng,
                || panic!("the budget is asked only for a retry"),
            );
            assert_eq!(d, Decision::Done);
        }
    }

    #[test]
    fn a_hint_sets_the_delay_then_the_backoff_starts_over() {
        let p = policy(10);
        let mut progress = Progress::new(Some(Instant::now()));
        let mut rng = FastRandom::seeded(1);
        let now = Instant::now();
        let mut next = |outcome: Outcome| {
            progress.attempts += 1;
            p.decide(&mut progress, &outcome, true, now, None, &mut rng, || true)
        };
        let backoff = |ms: u32| Decision::Retry {
            delay: ms * MS,
            hinted: false,
        };
        assert_eq!(next(transient()), backoff(100));
        assert_eq!(next(transient()), backoff(200));
        assert_eq!(
            next(hinted(ServerHint::RetryAfter(1234 * MS))),
            Decision::Retry {
                delay: 1234 * MS,
                hinted: true
            }
        );
        assert_eq!(next(transient()), backoff(100));
        // #16.3: a wait at max_server_delay is honoured as asked...
        assert_eq!(
            next(hinted(ServerHint::RetryAfter(Duration::from_secs(30)))),
            Decision::Retry {
                delay: Duration::from_secs(30),
                hinted: true
            }
        );
        // ...a longer one is never shortened: the retries end with this answer.
        assert_eq!(
            next(hinted(ServerHint::RetryAfter(Duration::from_secs(3600)))),
            Decision::GiveUp(GiveUp::ServerDelay)
        );
        assert_eq!(
            next(hinted(ServerHint::DoNotRetry)),
            Decision::GiveUp(GiveUp::ServerPushback)
        );
    }

    #[test]
    fn deadline_and_total_time_stop_before_sleeping_past_them() {
        // 100 + 200 = 300 ms slept; the next sleep (400 ms) would end at 700 ms >= 650 ms.
        let (delays, end) = run(
            &policy(10),
            transient(),
            Some(650 * MS),
            &mut u32::MAX.clone(),
        );
        assert_eq!(delays, [100 * MS, 200 * MS]);
        assert_eq!(end, Decision::GiveUp(GiveUp::Deadline));

        // A hint longer than the remaining deadline ends retrying at once.
        let (delays, end) = run(
            &policy(10),
            hinted(ServerHint::RetryAfter(Duration::from_secs(5))),
            Some(Duration::from_secs(2)),
            &mut u32::MAX.clone(),
        );
        assert!(delays.is_empty());
        assert_eq!(end, Decision::GiveUp(GiveUp::Deadline));

        let total = Policy {
            max_duration: Some(Duration::from_secs(1)),
            ..policy(10)
        };
        let (delays, end) = run(&total, transient(), None, &mut u32::MAX.clone());
        assert_eq!(delays, [100 * MS, 200 * MS, 400 * MS]);
        assert_eq!(end, Decision::GiveUp(GiveUp::MaxDuration));
    }

    #[test]
    fn the_budget_is_asked_last() {
        let mut budget = 2;
        let (delays, end) = run(&policy(10), transient(), None, &mut budget);
        assert_eq!(delays.len(), 2);
        assert_eq!(end, Decision::GiveUp(GiveUp::Budget));

        // Max attempts reached: the budget is not asked (nothing is spent).
        let mut budget = 5;
        let _ = run(&policy(3), transient(), None, &mut budget);
        assert_eq!(budget, 3);
    }

    #[test]
    fn not_replayable_is_never_retried() {
        let mut progress = Progress::new(Some(Instant::now()));
        progress.attempts = 1;
        let d = policy(3).decide(
            &mut progress,
            &transient(),
            false,
            Instant::now(),
            None,
            &mut FastRandom::seeded(1),
            || true,
        );
        assert_eq!(d, Decision::GiveUp(GiveUp::NotReplayable));
    }

    #[test]
    fn jittered_delays_stay_within_the_backoff_bounds() {
        let p = Policy {
            backoff: Backoff::exponential(100 * MS)
                .max(MS * 1000)
                .jitter(Jitter::Equal),
            ..policy(50)
        };
        let (delays, _) = run(&p, transient(), None, &mut u32::MAX.clone());
        assert_eq!(delays.len(), 49);
        for (n, d) in delays.iter().enumerate() {
            let (low, high) = p.backoff.bounds(u32::try_from(n).unwrap(), Duration::ZERO);
            assert!(low <= *d && *d <= high, "{n}: {d:?}");
        }
    }
}
