//! A deterministic simulator: runs any tower stack (your own weir stack, built with the same
//! builders) in Tokio's paused time against a modelled [`Upstream`], with a seeded arrival
//! process, and reports what happened second by second. Feature `sim`.
//!
//! - **Virtual time**: the run builds its own current-thread Tokio runtime with the clock paused;
//!   time jumps to the next timer whenever every task waits, so a simulated hour takes seconds
//!   (as long as the stack's own work per request, not the hour).
//! - **Exactly reproducible**: one fresh thread per run, one seed for the arrivals and one
//!   (derived) for the upstream: the same simulation and the same stack give the same
//!   [`Report`], to the request.
//!   Seed the randomness of the stack too (`RetryLayer::builder().seed(..)`,
//!   `ChaosLayer::builder().seed(..)`): a layer seeded from the process varies its jitter from
//!   run to run.
//! - **The report**: requests by outcome per tick (success, upstream failure, timeout, open
//!   circuit, other weir rejection, other error), latency percentiles, the load the upstream saw
//!   (and the amplification: upstream calls per request); with
//!   [`run_observed`](Simulation::run_observed), the stack's events, its state changes (breaker
//!   transitions) and the queue waits its layers report (percentiles per tick and overall); as
//!   a table, CSV and an SVG chart.
//!
//! ```
//! use std::time::Duration;
//! use weir_chaos::Latency;
//! use weir_chaos::sim::{Arrivals, Simulation, Upstream};
//!
//! let upstream = Upstream::new(Latency::exponential(Duration::from_millis(20)))
//!     .outage(Duration::from_secs(20), Duration::from_secs(10));
//! let sim = Simulation::new(Duration::from_secs(60))
//!     .arrivals(Arrivals::poisson(50.0))
//!     .upstream(upstream)
//!     .seed(7);
//! // No resilience: the stack is the upstream itself.
//! let report = sim.run(|upstream| upstream);
//! assert_eq!(report, sim.run(|upstream| upstream), "exactly reproducible");
//! assert!(report.requests() > 2_500);
//! assert!((report.amplification() - 1.0).abs() < 1e-9);
//! assert!(report.total(weir_chaos::sim::Outcome::UpstreamFailure) > 400);
//! ```

mod observe;
mod report;
mod upstream;

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use tokio::time::Instant;
use tower_service::Service;
use weir_core::BoxError;
use weir_core::backoff::{FastRandom, Random};

pub use self::observe::{SimObserver, Transition};
pub use self::report::{Outcome, Report, Tick};
pub use self::upstream::{Upstream, UpstreamFuture, UpstreamService};

use self::report::{Recorder, UpstreamLoad};
use crate::settings::Latency;

/// How requests arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Arrivals {
    /// Evenly spaced, this many per second.
    Steady(f64),
    /// A Poisson process: independent arrivals, this many per second on average.
    Poisson(f64),
    /// Poisson at `base` per second, and at `burst` per second for `length` every `every`.
    Bursts {
        /// The rate between bursts, per second.
        base: f64,
        /// The rate during a burst, per second.
        burst: f64,
        /// A burst starts this often.
        every: Duration,
        /// A burst lasts this long.
        length: Duration,
    },
    /// A retry storm from the callers: Poisson at `rate` per second, and every request that does
    /// not succeed is sent again by its caller after `backoff`, up to `retries` times (their own
    /// retries, outside the stack under test, as clients of a failing service do). Each resend
    /// is a request of the report, counted also in [`Report::resent`].
    RetryStorm {
        /// The rate of first sends, per second.
        rate: f64,
        /// How many times a caller sends a failed request again.
        retries: u32,
        /// How long a caller waits before sending again (fixed: callers retrying in step is
        /// what makes a storm).
        backoff: Duration,
    },
}

impl Arrivals {
    /// Evenly spaced, `per_second`.
    #[must_use]
    pub const fn steady(per_second: f64) -> Self {
        Self::Steady(per_second)
    }

    /// Poisson, `per_second` on average.
    #[must_use]
    pub const fn poisson(per_second: f64) -> Self {
        Self::Poisson(per_second)
    }

    /// Poisson at `base`, and `burst` for `length` every `every`.
    #[must_use]
    pub const fn bursts(base: f64, burst: f64, every: Duration, length: Duration) -> Self {
        Self::Bursts {
            base,
            burst,
            every,
            length,
        }
    }

    /// A retry storm from the callers: Poisson at `rate`, each failure sent again after
    /// `backoff`, up to `retries` times.
    #[must_use]
    pub const fn retry_storm(rate: f64, retries: u32, backoff: Duration) -> Self {
        Self::RetryStorm {
            rate,
            retries,
            backoff,
        }
    }

    /// How the callers resend a failure: `(times, after)`, for a retry storm.
    const fn resends(self) -> Option<(u32, Duration)> {
        match self {
            Self::RetryStorm {
                retries, backoff, ..
            } => Some((retries, backoff)),
            _ => None,
        }
    }

    /// The gap to the next arrival at `t` (from the start).
    fn gap(self, t: Duration, rng: &mut FastRandom) -> Duration {
        let exponential = |rate: f64, rng: &mut FastRandom| {
            let mean = Duration::from_secs_f64(1.0 / rate.max(1e-9));
            Latency::Exponential {
                mean,
                max: mean.saturating_mul(50),
            }
            .sample(rng.next_u64())
        };
        match self {
            Self::Steady(rate) => Duration::from_secs_f64(1.0 / rate.max(1e-9)),
            Self::Poisson(rate) | Self::RetryStorm { rate, .. } => exponential(rate, rng),
            Self::Bursts {
                base,
                burst,
                every,
                length,
            } => {
                let phase = Duration::from_nanos((t.as_nanos() % every.as_nanos().max(1)) as u64);
                exponential(if phase < length { burst } else { base }, rng)
            }
        }
    }
}

/// A simulation: how long, what arrives, what the upstream does, the seed. [`run`](Self::run)
/// it with a stack.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    duration: Duration,
    arrivals: Arrivals,
    upstream: Upstream,
    seed: u64,
    tick: Duration,
    drain: Duration,
}

impl Simulation {
    /// A run of `duration` (virtual time): 10 requests per second, Poisson, to an upstream
    /// answering in 10 ms; seed 0; one-second ticks.
    #[must_use]
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            arrivals: Arrivals::Poisson(10.0),
            upstream: Upstream::new(Latency::fixed(Duration::from_millis(10))),
            seed: 0,
            tick: Duration::from_secs(1),
            drain: Duration::from_secs(60),
        }
    }

    /// How requests arrive.
    #[must_use]
    pub const fn arrivals(mut self, arrivals: Arrivals) -> Self {
        self.arrivals = arrivals;
        self
    }

    /// The upstream model.
    #[must_use]
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = upstream;
        self
    }

    /// The seed of the arrivals and the upstream.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The report's tick (one second unless set; at least 1 ms).
    #[must_use]
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// How long requests still in flight when arrivals stop are waited for (60 s unless set);
    /// those still unanswered then count as [`Outcome::Unfinished`].
    #[must_use]
    pub const fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Runs the simulation: `stack` is given the modelled upstream and returns the service to
    /// send requests through (`|upstream| upstream` for none, or your stack around it). Each
    /// request is a `GET http://upstream/` with an empty body, sent on a clone of the stack
    /// readied for it. [`run_observed`](Self::run_observed) also hands the builder an observer
    /// for the stack's events.
    ///
    /// # Panics
    ///
    /// When the runtime cannot be built, or when the stack panics.
    pub fn run<S, F, B>(&self, stack: F) -> Report
    where
        F: FnOnce(UpstreamService) -> S + Send,
        S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + 'static,
        S::Error: Into<BoxError>,
        S::Future: 'static,
    {
        self.run_observed(|upstream, _| stack(upstream))
    }

    /// Runs the simulation as [`run`](Self::run) does, and gives `stack` a [`SimObserver`] too:
    /// pass it to the stack's layers (`observer(..)`) and the report carries their events,
    /// their state changes (a breaker opening and closing) with their virtual times, and the
    /// queue waits they report (a bulkhead's queued requests: [`Report::queued`],
    /// [`Report::queue_wait`], [`Tick::queued`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_chaos::Latency;
    /// use weir_chaos::sim::{Arrivals, Simulation, Upstream};
    /// use weir_circuit_breaker::CircuitBreakerLayer;
    /// use weir_core::classify::HttpStatus;
    /// use tower_layer::Layer;
    ///
    /// let sim = Simulation::new(Duration::from_secs(60))
    ///     .arrivals(Arrivals::steady(50.0))
    ///     .upstream(Upstream::new(Latency::fixed(Duration::from_millis(5)))
    ///         .outage(Duration::from_secs(20), Duration::from_secs(10)));
    /// let report = sim.run_observed(|upstream, observer| {
    ///     CircuitBreakerLayer::builder()
    ///         .classifier(HttpStatus::new())
    ///         .observer(observer)
    ///         .build()
    ///         .unwrap()
    ///         .layer(upstream)
    /// });
    /// // It opened during the outage, and closed again after it.
    /// assert!(report.transitions().len() >= 2);
    /// assert!(report.transitions()[0].at >= Duration::from_secs(20));
    /// ```
    ///
    /// The run has a thread of its own (the stack is built on it, and need not be `Send`):
    /// state a layer keeps per thread (weir-retry's budget counts requests in thread-local
    /// stripes and reads the clock every so many) starts afresh, so one run does not shift the
    /// next.
    ///
    /// # Panics
    ///
    /// When the runtime cannot be built, or when the stack panics.
    pub fn run_observed<S, F, B>(&self, stack: F) -> Report
    where
        F: FnOnce(UpstreamService, SimObserver) -> S + Send,
        S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + 'static,
        S::Error: Into<BoxError>,
        S::Future: 'static,
    {
        std::thread::scope(|scope| {
            let run = scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .start_paused(true)
                    .build()
                    .expect("a current-thread runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, self.drive(stack))
            });
            match run.join() {
                Ok(report) => report,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    async fn drive<S, F, B>(&self, stack: F) -> Report
    where
        F: FnOnce(UpstreamService, SimObserver) -> S,
        S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>> + Clone + 'static,
        S::Error: Into<BoxError>,
        S::Future: 'static,
    {
        let start = Instant::now();
        let upstream = UpstreamService::new(
            self.upstream.clone(),
            self.seed ^ 0x005E_ED0F_u64.rotate_left(32),
            start,
            self.tick,
        );
        let load = std::sync::Arc::clone(upstream.load());
        let observer = SimObserver::new(start, self.tick);
        let svc = stack(upstream, observer.clone());
        let recorder = Rc::new(RefCell::new(Recorder::new(start, self.tick)));
        let resends = self.arrivals.resends();
        let mut rng = FastRandom::seeded(self.seed);
        // Steady arrivals start at once; the others after their first gap.
        let mut at = match self.arrivals {
            Arrivals::Steady(_) => Duration::ZERO,
            arrivals => arrivals.gap(Duration::ZERO, &mut rng),
        };
        while at < self.duration {
            tokio::time::sleep_until(start + at).await;
            let mut svc = svc.clone();
            let recorder = Rc::clone(&recorder);
            recorder.borrow_mut().begin();
            // Detached: the recorder counts what is still in flight.
            drop(tokio::task::spawn_local(async move {
                let mut resent = 0;
                loop {
                    let sent = Instant::now();
                    recorder.borrow_mut().sent(resent > 0);
                    let result = match poll_fn(|cx| svc.poll_ready(cx)).await {
                        Ok(()) => {
                            let req = http::Request::get("http://upstream/")
                                .body(Empty::new())
                                .expect("a valid request");
                            svc.call(req).await.map_err(Into::into)
                        }
                        Err(e) => Err(e.into()),
                    };
                    let outcome = Outcome::of(&result);
                    recorder
                        .borrow_mut()
                        .answered(sent, Instant::now(), outcome);
                    match resends {
                        Some((times, after)) if outcome != Outcome::Success && resent < times => {
                            resent += 1;
                            tokio::time::sleep(after).await;
                        }
                        _ => break,
                    }
                }
                recorder.borrow_mut().end();
            }));
            at += self.arrivals.gap(at, &mut rng);
        }
        let drain_end = start + self.duration + self.drain;
        while recorder.borrow().pending() > 0 && Instant::now() < drain_end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let calls = load.calls.lock().map(|c| c.clone()).unwrap_or_default();
        let recorder = recorder.borrow();
        recorder.report(
            self.duration,
            UpstreamLoad {
                calls: &calls,
                total: load.total.load(Relaxed),
                max_in_flight: load.max_in_flight.load(Relaxed),
            },
            observer.take(),
        )
    }
}
