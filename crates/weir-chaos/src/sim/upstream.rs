//! The modelled upstream: latency, errors, capacity, and a schedule of outages and slowdowns.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use tokio::time::Instant;
use tower_service::Service;
use weir_core::backoff::{FastRandom, Random};

use crate::settings::Latency;

/// A change to the upstream over a span of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Episode {
    /// Every call fails at once (503 after 1 ms).
    Outage { start: Duration, end: Duration },
    /// Every latency is multiplied by `factor`.
    Slowdown {
        start: Duration,
        end: Duration,
        factor: f64,
    },
    /// The error rate is `rate` instead.
    Errors {
        start: Duration,
        end: Duration,
        rate: f64,
    },
}

/// The model of the upstream a simulated stack calls: a latency distribution, an error rate, a
/// capacity, and a schedule of outages, slowdowns and error spikes (times from the start of the
/// run).
///
/// A call's latency is drawn from the distribution, multiplied by the slowdown in force, and by
/// `in_flight / capacity` when more calls than the capacity are in flight (a saturated server
/// queues). A failed call answers `503 Service Unavailable` after its latency; during an outage
/// every call answers 503 after 1 ms (a load balancer with no healthy backend).
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    latency: Latency,
    error_rate: f64,
    capacity: Option<usize>,
    schedule: Vec<Episode>,
}

impl Upstream {
    /// An upstream whose calls take `latency`, never fail, and have no capacity limit.
    #[must_use]
    pub const fn new(latency: Latency) -> Self {
        Self {
            latency,
            error_rate: 0.0,
            capacity: None,
            schedule: Vec::new(),
        }
    }

    /// The probability that a call fails (503), within `0.0..=1.0`.
    #[must_use]
    pub const fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate;
        self
    }

    /// Calls in flight beyond which latency grows in proportion (`in_flight / capacity`).
    #[must_use]
    pub const fn capacity(mut self, calls: usize) -> Self {
        self.capacity = Some(calls);
        self
    }

    /// Every call from `start` for `length` fails at once.
    #[must_use]
    pub fn outage(mut self, start: Duration, length: Duration) -> Self {
        self.schedule.push(Episode::Outage {
            start,
            end: start + length,
        });
        self
    }

    /// Every latency from `start` for `length` is multiplied by `factor`.
    #[must_use]
    pub fn slowdown(mut self, start: Duration, length: Duration, factor: f64) -> Self {
        self.schedule.push(Episode::Slowdown {
            start,
            end: start + length,
            factor,
        });
        self
    }

    /// The error rate from `start` for `length` is `rate`.
    #[must_use]
    pub fn error_spike(mut self, start: Duration, length: Duration, rate: f64) -> Self {
        self.schedule.push(Episode::Errors {
            start,
            end: start + length,
            rate,
        });
        self
    }

    /// (outage, slowdown factor, error rate) at `t` from the start.
    fn at(&self, t: Duration) -> (bool, f64, f64) {
        let mut state = (false, 1.0, self.error_rate);
        for episode in &self.schedule {
            match *episode {
                Episode::Outage { start, end } if (start..end).contains(&t) => state.0 = true,
                Episode::Slowdown { start, end, factor } if (start..end).contains(&t) => {
                    state.1 *= factor;
                }
                Episode::Errors { start, end, rate } if (start..end).contains(&t) => {
                    state.2 = rate;
                }
                _ => {}
            }
        }
        state
    }
}

/// What the simulated upstream records, per tick.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) calls: Mutex<Vec<u64>>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
    pub(crate) total: AtomicU64,
}

/// The upstream as a service: any `http::Request<B>` in, an empty `http::Response` out (200, or
/// 503 for a failure). Clones share the model, the random source and the load counters. Made
/// by the simulation and handed to the stack builder given to
/// [`Simulation::run`](super::Simulation::run).
#[derive(Clone)]
pub struct UpstreamService {
    model: Arc<Upstream>,
    rng: Arc<Mutex<FastRandom>>,
    load: Arc<Load>,
    start: Instant,
    tick: Duration,
}

impl UpstreamService {
    pub(crate) fn new(model: Upstream, seed: u64, start: Instant, tick: Duration) -> Self {
        Self {
            model: Arc::new(model),
            rng: Arc::new(Mutex::new(FastRandom::seeded(seed))),
            load: Arc::new(Load {
                calls: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                total: AtomicU64::new(0),
            }),
            start,
            tick,
        }
    }

    pub(crate) fn load(&self) -> &Arc<Load> {
        &self.load
    }
}

impl fmt::Debug for UpstreamService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamService")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// Counts a call out of flight when its future ends or is dropped (the caller gave up).
struct InFlight(Arc<Load>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// The upstream's response future.
pub type UpstreamFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Empty<Bytes>>, Infallible>> + Send>>;

impl<B> Service<http::Request<B>> for UpstreamService {
    type Response = http::Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<B>) -> Self::Future {
        let now = Instant::now();
        let since = now.saturating_duration_since(self.start);
        let tick = (since.as_nanos() / self.tick.as_nanos().max(1)) as usize;
        {
            let mut calls = self
                .load
                .calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if calls.len() <= tick {
                calls.resize(tick + 1, 0);
            }
            calls[tick] += 1;
        }
        self.load.total.fetch_add(1, Relaxed);
        let in_flight = self.load.in_flight.fetch_add(1, Relaxed) + 1;
        self.load.max_in_flight.fetch_max(in_flight, Relaxed);
        let guard = InFlight(Arc::clone(&self.load));
        let (outage, slowdown, error_rate) = self.model.at(since);
        let (latency, failed) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            let latency = self.model.latency.sample(rng.next_u64());
            let failed = crate::state::hit(crate::state::threshold(error_rate), rng.next_u64());
            (latency, failed)
        };
        let (delay, status) = if outage {
            (Duration::from_millis(1), 503)
        } else {
            let crowd = self
                .model
                .capacity
                .map_or(1.0, |c| (in_flight as f64 / c.max(1) as f64).max(1.0));
            let delay = latency.mul_f64(slowdown * crowd);
            (delay, if failed { 503 } else { 200 })
        };
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            drop(guard);
            let mut response = http::Response::new(Empty::new());
            *response.status_mut() =
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
            Ok(response)
        })
    }
}
