//! The handle: an idempotency layer's counts.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use weir_core::Name;

use crate::shared::Counters;

/// Reads an idempotency layer's counts; from
/// [`IdempotencyBuilder::build_with_handle`](crate::IdempotencyBuilder::build_with_handle) or
/// [`IdempotencyLayer::handle`](crate::IdempotencyLayer::handle).
#[derive(Clone, Debug)]
pub struct IdempotencyHandle {
    counters: Arc<Counters>,
    name: Name,
}

impl IdempotencyHandle {
    pub(crate) const fn new(counters: Arc<Counters>, name: Name) -> Self {
        Self { counters, name }
    }

    /// The layer's name.
    #[must_use]
    pub const fn name(&self) -> &Name {
        &self.name
    }

    /// A snapshot of the counts.
    #[must_use]
    pub fn stats(&self) -> IdempotencyStats {
        let c = &self.counters;
        IdempotencyStats {
            executed: c.executed.load(Relaxed),
            replayed: c.replayed.load(Relaxed),
            stored: c.stored.load(Relaxed),
            not_stored: c.not_stored.load(Relaxed),
            released: c.released.load(Relaxed),
            in_flight: c.in_flight.load(Relaxed),
            mismatched: c.mismatched.load(Relaxed),
            not_replayable: c.not_replayable.load(Relaxed),
            refused: c.refused.load(Relaxed),
            unavailable: c.unavailable.load(Relaxed),
            bypassed: c.bypassed.load(Relaxed),
        }
    }
}

/// An idempotency layer's counts at one moment (requests with a key only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyStats {
    /// Requests that claimed their key and ran the handler.
    pub executed: u64,
    /// Repeats answered with the stored response.
    pub replayed: u64,
    /// Responses kept for replay.
    pub stored: u64,
    /// Responses not kept: a status the policy does not keep (the claim is released), or a
    /// body over the limit (the key is done and not replayable).
    pub not_stored: u64,
    /// Claims released: the handler failed, panicked, was cancelled, or its response is not
    /// kept.
    pub released: u64,
    /// Repeats answered 409 while the first still ran.
    pub in_flight: u64,
    /// Keys reused with another request, answered 422.
    pub mismatched: u64,
    /// Repeats of a request whose response was not kept, answered 409.
    pub not_replayable: u64,
    /// Requests refused with 400 or 413 (missing, malformed or over-long key; unreadable or
    /// over-long body).
    pub refused: u64,
    /// Requests answered 503: the store was unavailable (failing closed) or full.
    pub unavailable: u64,
    /// Requests run without the store, which was unavailable (failing open).
    pub bypassed: u64,
}
