//! What an idempotency layer shows a status page or a metrics exporter: `impl Inspect` for its
//! handle.

use weir_core::inspect::{Inspect, Snapshot};

use crate::handle::IdempotencyHandle;

/// The pattern name an idempotency layer's snapshot carries.
const PATTERN: &str = "idempotency";

impl Inspect for IdempotencyHandle {
    /// Counters of requests with a key, by what became of them: `executed`, `replayed`,
    /// `stored`, `not_stored`, `released`, `in_flight` (409 while the first ran), `mismatched`
    /// (422), `not_replayable`, `refused` (400, 413), `unavailable` (503), `bypassed`. No state
    /// and no actions.
    fn snapshot(&self) -> Snapshot {
        let s = self.stats();
        Snapshot::new(PATTERN, self.name().clone())
            .counter("executed", s.executed)
            .counter("replayed", s.replayed)
            .counter("stored", s.stored)
            .counter("not_stored", s.not_stored)
            .counter("released", s.released)
            .counter("in_flight", s.in_flight)
            .counter("mismatched", s.mismatched)
            .counter("not_replayable", s.not_replayable)
            .counter("refused", s.refused)
            .counter("unavailable", s.unavailable)
            .counter("bypassed", s.bypassed)
    }
}
