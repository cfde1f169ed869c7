//! A scripted upstream: attempt `i` (in call order) answers after `plan[i].0` with `plan[i].1`;
//! every attempt in flight is counted, so a test sees which were dropped.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;
use weir_core::{Classify, Failure, Outcome, wire::ServerHint};

/// How an attempt ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ok,
    /// A transient failure: the next hedge goes at once.
    Transient,
    /// A permanent failure: fatal.
    Fatal,
    /// A transient failure with "do not retry" pushback.
    Pushback,
    /// A transient failure with a pushback of 40 ms.
    Wait40,
    /// weir's own "circuit open" (an open breaker inside): ignored by `AnyError`.
    CircuitOpen,
}

/// What an attempt returns: its index in call order, and how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub attempt: usize,
    pub kind: Kind,
}

pub type Reply = Result<Answer, Answer>;

/// The classifier the tests use.
pub fn classify(result: &Reply) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(a) => match a.kind {
            Kind::Fatal => Outcome::Failure(Failure::permanent()),
            Kind::Pushback => {
                Outcome::Failure(Failure::transient().with_hint(Some(ServerHint::DoNotRetry)))
            }
            Kind::Wait40 => Outcome::Failure(
                Failure::transient().with_hint(Some(ServerHint::RetryAfter(ms(40)))),
            ),
            Kind::CircuitOpen => weir_core::classify::AnyError
                .classify(&Err::<(), _>(weir_core::Error::circuit_open())),
            _ => Outcome::Failure(Failure::transient()),
        },
    }
}

#[derive(Clone, Debug)]
pub struct Upstream {
    plan: Arc<Vec<(Duration, Kind)>>,
    pub calls: Arc<AtomicUsize>,
    pub live: Arc<AtomicUsize>,
    pub starts: Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl Upstream {
    pub fn new(plan: Vec<(Duration, Kind)>) -> Self {
        Self {
            plan: Arc::new(plan),
            calls: Arc::default(),
            live: Arc::default(),
            starts: Arc::default(),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// When each attempt started, relative to `origin`.
    pub fn started_at(&self, origin: Instant) -> Vec<Duration> {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - origin)
            .collect()
    }
}

struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<Req> Service<Req> for Upstream {
    type Response = Answer;
    type Error = Answer;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Answer>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        let attempt = self.calls.fetch_add(1, Ordering::SeqCst);
        self.starts.lock().unwrap().push(Instant::now());
        let (after, kind) = self
            .plan
            .get(attempt)
            .copied()
            .unwrap_or((Duration::from_secs(3600), Kind::Ok));
        self.live.fetch_add(1, Ordering::SeqCst);
        let live = Live(Arc::clone(&self.live));
        Box::pin(async move {
            let _live = live;
            tokio::time::sleep(after).await;
            let answer = Answer { attempt, kind };
            if kind == Kind::Ok {
                Ok(answer)
            } else {
                Err(answer)
            }
        })
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
