//! The process's own phase: starting, serving, draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::status::Health;
use crate::tag::Tag;

/// Where the process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not yet ready: startup and readiness probes fail, liveness passes.
    Starting,
    /// Taking traffic.
    Serving,
    /// Shutting down gracefully: readiness fails first (load balancers stop sending traffic)
    /// while liveness still passes (so the process is not killed before it has drained).
    Draining,
}

impl Phase {
    /// The phase in lower case.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Serving => "serving",
            Self::Draining => "draining",
        }
    }

    const fn of(word: u8) -> Self {
        match word {
            0 => Self::Starting,
            1 => Self::Serving,
            _ => Self::Draining,
        }
    }

    const fn word(self) -> u8 {
        match self {
            Self::Starting => 0,
            Self::Serving => 1,
            Self::Draining => 2,
        }
    }
}

/// A shared, cheap handle on the process's [`Phase`]: from
/// [`HealthRegistry::lifecycle`](crate::HealthRegistry::lifecycle). Clones share the phase.
/// It is read on every probe (one atomic load, never cached), so a change shows at once.
#[derive(Clone, Debug)]
pub struct Lifecycle(Arc<AtomicU8>);

impl Lifecycle {
    pub(crate) fn new(phase: Phase) -> Self {
        Self(Arc::new(AtomicU8::new(phase.word())))
    }

    /// The phase now.
    #[must_use]
    pub fn phase(&self) -> Phase {
        Phase::of(self.0.load(Ordering::Acquire))
    }

    /// Sets the phase.
    pub fn set(&self, phase: Phase) {
        self.0.store(phase.word(), Ordering::Release);
    }

    /// Started: readiness and startup pass (if the checks do).
    pub fn serving(&self) {
        self.set(Phase::Serving);
    }

    /// Graceful shutdown began: readiness fails from now on, liveness does not.
    pub fn draining(&self) {
        self.set(Phase::Draining);
    }

    /// Begins a graceful shutdown: draining now (readiness fails at once), then waits `grace`
    /// so the load balancers see it and stop sending traffic (a bit more than the readiness
    /// probe's period times its failure threshold). Give it to the server as its shutdown
    /// signal, after the process's own signal:
    /// `axum::serve(..).with_graceful_shutdown(async move { ctrl_c.await; lifecycle.drain(grace).await })`.
    pub async fn drain(&self, grace: Duration) {
        self.draining();
        tokio::time::sleep(grace).await;
    }

    /// What the phase says for a probe of `tag`; `None` for liveness and custom tags (the
    /// phase has no say there).
    pub(crate) fn health_for(&self, tag: &Tag) -> Option<Health> {
        let phase = self.phase();
        match (tag, phase) {
            (Tag::Ready | Tag::Startup, Phase::Serving) | (Tag::Startup, Phase::Draining) => {
                Some(Health::healthy())
            }
            (Tag::Ready | Tag::Startup, _) => Some(Health::unhealthy(phase.as_str())),
            (Tag::Live | Tag::Custom(_), _) => None,
        }
    }
}
